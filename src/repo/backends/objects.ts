import { createWriteStream } from 'node:fs';
import type { Hash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { IntegrityError, StackvaultError } from '../../util/errors.js';
import type { Backend, ByteRange } from './backend.js';
import { TransientError } from './transient.js';

/**
 * Rules every backend applies alike, and says alike: what a taken key means, what a
 * short read means, where a new repository may go.
 */

/** put() found the key taken. Keys are content hashes: the same size is the same bytes; another size is damage. */
export function alreadyStored(location: string, key: string, storedSize: number, size: number): { created: boolean } {
  if (storedSize !== size) {
    throw new IntegrityError(`object ${key} already exists in ${location} with ${storedSize} bytes instead of ${size}: it is damaged (run "stackvault check")`);
  }
  return { created: false };
}

export function truncated(location: string, key: string, range: ByteRange, endsAt?: number): IntegrityError {
  return new IntegrityError(
    `object ${key} in ${location} is truncated: wanted bytes ${range.offset}..${range.offset + range.length}${endsAt === undefined ? '' : `, it ends at ${endsAt}`}`,
  );
}

/** A ranged read came back short: past the object's end that is damage; before it, a cut connection worth a retry. */
export async function shortRead(backend: Backend, key: string, range: ByteRange, got: number): Promise<never> {
  const info = await backend.stat(key);
  if (info && range.offset + range.length > info.size) throw truncated(backend.location, key, range, info.size);
  throw new TransientError(`reading ${key} from ${backend.location}: the answer was cut short (${got} of ${range.length} bytes)`);
}

/** A repository goes only into an empty place: never scatter objects among someone's files. */
export async function refuseIfNotEmpty(backend: Backend, place: string): Promise<void> {
  for await (const _ of backend.list('')) {
    throw new StackvaultError(`${backend.location} is not empty and holds no repository: give a new or empty ${place}`);
  }
}

/**
 * Puts of one key, one at a time: a second put of a key waits for the first and then finds
 * the object. Some stores show an object while it is still being written (rclone's SFTP,
 * some S3 servers), and a look in the middle would see a short, seemingly damaged object.
 */
export class PerKeyQueue {
  private readonly running = new Map<string, Promise<unknown>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const earlier = this.running.get(key);
    if (earlier) await earlier.catch(() => undefined);
    const current = work();
    this.running.set(key, current);
    try {
      return await current;
    } finally {
      if (this.running.get(key) === current) this.running.delete(key);
    }
  }
}

/**
 * An object's body streamed into a file (BackendExtras.downloadToFile), through `hash`
 * when given; returns the bytes written. The bytes cross this thread once, as a stream,
 * instead of being gathered into a buffer.
 */
export async function streamToFile(body: NodeJS.ReadableStream, path: string, hash?: Hash): Promise<number> {
  let bytes = 0;
  await pipeline(
    body,
    async function* (source: AsyncIterable<string | Buffer>) {
      for await (const chunk of source) {
        bytes += chunk.length;
        hash?.update(chunk);
        yield chunk;
      }
    },
    createWriteStream(path),
  );
  return bytes;
}
