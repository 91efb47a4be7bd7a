import { parentPort, workerData } from 'node:worker_threads';
import { PlainFile } from '../util/plain-file.js';
import { Chunker, type ChunkerParams } from './chunker.js';
import { compressIfSmaller } from './compression.js';
import { blobId, seal } from './crypto.js';

/**
 * Reads a file and turns it into stored blobs: chunk, hash, compress, encrypt. Up to
 * AHEAD blobs of a file may wait for the main thread; each "more" it sends frees one, so
 * a slow consumer bounds what is in flight while a fast one never leaves the worker idle.
 */
const AHEAD = 2;
const data = workerData as { seed: Uint8Array; params: ChunkerParams; idKey: Uint8Array; key: Uint8Array | null };
const chunker = new Chunker(Buffer.from(data.seed), data.params);
const idKey = Buffer.from(data.idKey);
const key = data.key ? Buffer.from(data.key) : null;

type Request = { type: 'file'; job: number; path: string; size: number } | { type: 'more'; job: number } | { type: 'cancel'; job: number };
const waiting = new Map<number, () => void>();
const unacknowledged = new Map<number, number>();
const cancelled = new Set<number>();

parentPort!.on('message', (msg: Request) => {
  if (msg.type === 'file') void encodeFile(msg.job, msg.path, msg.size);
  else if (msg.type === 'cancel') cancelled.add(msg.job);
  else unacknowledged.set(msg.job, (unacknowledged.get(msg.job) ?? 1) - 1);
  const resume = waiting.get(msg.job);
  waiting.delete(msg.job);
  resume?.();
});

async function encodeFile(job: number, path: string, size: number): Promise<void> {
  let file: PlainFile | undefined;
  try {
    file = await PlainFile.open(path);
    for await (const chunk of chunker.chunkFile(file, size)) {
      if (cancelled.has(job)) break;
      const id = blobId(idKey, chunk);
      const compressed = compressIfSmaller(chunk);
      const sealed = seal(key, compressed ?? chunk);
      const stored = sealed.byteOffset === 0 && sealed.buffer.byteLength === sealed.length ? sealed : Buffer.from(sealed);
      parentPort!.postMessage({ type: 'blob', job, id, rawLength: chunk.length, compressed: compressed !== null, stored }, [stored.buffer as ArrayBuffer]);
      unacknowledged.set(job, (unacknowledged.get(job) ?? 0) + 1);
      while ((unacknowledged.get(job) ?? 0) >= AHEAD && !cancelled.has(job)) await new Promise<void>((resolve) => waiting.set(job, resolve));
    }
    parentPort!.postMessage({ type: 'done', job });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    parentPort!.postMessage({ type: 'error', job, message: e.message, code: e.code, syscall: e.syscall, path: e.path });
  } finally {
    cancelled.delete(job);
    unacknowledged.delete(job);
    await file?.close().catch(() => undefined);
  }
}
