import { ObjectNotFoundError } from '../../src/util/errors.js';
import type { Backend, ByteRange, ObjectInfo } from '../../src/repo/backends/backend.js';
import { alreadyStored, refuseIfNotEmpty, truncated } from '../../src/repo/backends/objects.js';

/**
 * A backend in this process's memory: the contract suite runs against it, and tests of the
 * wrappers (retries, lazy loading) use it where no storage server is needed.
 */
export class MemoryBackend implements Backend {
  readonly objects = new Map<string, { data: Buffer; created: Date }>();

  constructor(readonly location = 'memory:') {}

  async prepare(): Promise<void> {
    await refuseIfNotEmpty(this, 'place');
  }

  async put(key: string, data: Uint8Array): Promise<{ created: boolean }> {
    const existing = this.objects.get(key);
    if (existing) return alreadyStored(this.location, key, existing.data.length, data.length);
    this.objects.set(key, { data: Buffer.from(data), created: new Date() });
    return { created: true };
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const object = this.objects.get(key);
    if (!object) throw new ObjectNotFoundError(key, this.location);
    if (!range) return object.data;
    if (range.offset + range.length > object.data.length) throw truncated(this.location, key, range, object.data.length);
    return object.data.subarray(range.offset, range.offset + range.length);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const object = this.objects.get(key);
    return object && { key, size: object.data.length, created: object.created };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (const [key, object] of [...this.objects]) if (key.startsWith(prefix)) yield { key, size: object.data.length, created: object.created };
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }

  async close(): Promise<void> {}
}
