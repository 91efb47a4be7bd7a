import { closeSync, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { ownedBuffer } from '../../util/owned-buffer.js';
import { AdaptiveReader } from '../../util/adaptive-io.js';
import { Chunker, type ChunkerParams } from './chunker.js';
import { compressIfSmaller } from '../format/compression.js';
import { blobId, seal, sealedLength, sealInto } from '../format/crypto.js';
import type { BatchResult, FileToEncode } from './file-encoder.js';
import { osPath } from '../../util/os-path.js';
import { GarbageHint } from '../../util/garbage-hint.js';
import { changedSince } from '../../util/file-mark.js';

/**
 * Reads a file and turns it into stored blobs: chunk, hash, compress, encrypt. Up to
 * AHEAD blobs of a file may wait for the main thread; each "more" it sends frees one, so
 * a slow consumer bounds what is in flight while a fast one never leaves the worker idle.
 * Large files are encoded one at a time, through one window this thread reuses (batches
 * of small files go on meanwhile): three at a time, each with a window of its own, took
 * the same time and 60-80 MiB more memory on a backup of /usr/lib (docs/performance.md,
 * sixth session).
 */
const AHEAD = 4;
/** Sealed blobs are fresh memory the main thread takes over; sealing leaves as much behind here. */
const garbage = new GarbageHint(8 * 1024 * 1024);
const data = workerData as { seed: Uint8Array; params: ChunkerParams; idKey: Uint8Array; key: Uint8Array | null };
const chunker = new Chunker(Buffer.from(data.seed), data.params);
const idKey = Buffer.from(data.idKey);
const key = data.key ? Buffer.from(data.key) : null;

type Request =
  | ({ type: 'file'; job: number } & FileToEncode)
  | { type: 'batch'; job: number; files: FileToEncode[] }
  | { type: 'chunk'; job: number; id: string; data: Uint8Array }
  | { type: 'more'; job: number }
  | { type: 'cancel'; job: number };
/**
 * Files too large for a batch are read with blocking calls while those are fast: this
 * thread has nothing else to do meanwhile, and the thread pool is busy writing packs
 * (measured: a 1 GiB backup 5.78 s -> 5.61 s). Slow storage turns their reads asynchronous.
 */
const reader = new AdaptiveReader(undefined, Number.POSITIVE_INFINITY);
const waiting = new Map<number, () => void>();
const unacknowledged = new Map<number, number>();
const cancelled = new Set<number>();

type Queued = ({ job: number } & FileToEncode) | { job: number; files: FileToEncode[] };
const queued: Queued[] = [];
/** a large file is being encoded */
let streaming = false;

function startQueued(): void {
  while (queued.length > 0 && ('files' in queued[0]! || !streaming)) {
    const next = queued.shift()!;
    if (cancelled.delete(next.job)) continue;
    if ('files' in next) {
      encodeBatch(next.job, next.files);
      continue;
    }
    streaming = true;
    void encodeFile(next.job, next.path, next).finally(() => {
      streaming = false;
      startQueued();
    });
  }
}

parentPort!.on('message', (msg: Request) => {
  if (msg.type === 'chunk') {
    // A chunk of a stream (a database dump), already hashed (and found new) by the main thread: compress and encrypt it.
    try {
      const data = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
      const compressed = compressIfSmaller(data);
      const stored = ownedBuffer(seal(key, compressed ?? data));
      garbage.dropping(data.length + stored.length);
      parentPort!.postMessage({ type: 'blob', job: msg.job, id: msg.id, rawLength: data.length, compressed: compressed !== null, stored }, [stored.buffer as ArrayBuffer]);
    } catch (err) {
      parentPort!.postMessage({ type: 'error', job: msg.job, message: (err as Error).message });
    }
    return;
  }
  if (msg.type === 'file' || msg.type === 'batch') {
    queued.push(msg);
    startQueued();
  } else if (msg.type === 'cancel') cancelled.add(msg.job);
  else unacknowledged.set(msg.job, (unacknowledged.get(msg.job) ?? 1) - 1);
  const resume = waiting.get(msg.job);
  waiting.delete(msg.job);
  resume?.();
});

/** A file's content as the main thread knows it stored (its previous version's blobs), or null. */
function knownSet(file: FileToEncode): ReadonlySet<string> | null {
  return file.known && file.known.length > 0 ? new Set(file.known) : null;
}

/**
 * Files of a batch, many per message: their blobs go back in one buffer, with each file's
 * blobs (or its error) in order. A message per small file would cost more than the file.
 * Done with blocking calls from start to end: this thread has nothing else to do, and a
 * promise, a read buffer and an async generator per file were most of a small file's cost.
 */
function encodeBatch(job: number, files: FileToEncode[]): void {
  const results: BatchResult[] = [];
  let total = 0;
  for (const file of files) {
    const { path } = file;
    const known = knownSet(file);
    let fd: number | undefined;
    const blobs: Array<{ id: string; rawLength: number; compressed: boolean; offset: number; length: number; known?: true }> = [];
    try {
      fd = openSync(osPath(path), 'r');
      chunker.chunkFdSync(fd, (chunk) => {
        const id = blobId(idKey, chunk);
        if (known?.has(id)) {
          blobs.push({ id, rawLength: chunk.length, compressed: false, offset: 0, length: 0, known: true });
          return;
        }
        const compressed = compressIfSmaller(chunk, 'file');
        const plain = compressed ?? chunk;
        makeRoom(total + sealedLength(key, plain.length));
        const length = sealInto(key, plain, staging, total);
        blobs.push({ id, rawLength: chunk.length, compressed: compressed !== null, offset: total, length });
        total += length;
      });
      results.push(changedSince(fd, file) ? { blobs, changed: true } : { blobs });
    } catch (err) {
      // The file's blobs so far stay in the buffer unreferenced: the main thread takes only listed ones.
      const e = err as NodeJS.ErrnoException;
      results.push({ error: { message: e.message, code: e.code, syscall: e.syscall, path: e.path ?? path } });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  // Its own memory, of its exact size: the staging buffer stays here for the next batch.
  garbage.dropping(total);
  const bytes = Buffer.allocUnsafeSlow(total);
  staging.copy(bytes, 0, 0, total);
  parentPort!.postMessage({ type: 'batch', job, results, bytes }, [bytes.buffer as ArrayBuffer]);
}

/**
 * Where a batch's blobs are sealed one after another, reused from batch to batch: sealing
 * each blob into a buffer of its own and joining them after allocated every byte twice
 * (and faulted in fresh pages for it; see compressIfSmaller).
 */
let staging = Buffer.allocUnsafeSlow(8 * 1024 * 1024);

function makeRoom(bytes: number): void {
  if (staging.length >= bytes) return;
  const larger = Buffer.allocUnsafeSlow(Math.max(bytes, staging.length * 2));
  staging.copy(larger);
  staging = larger;
}

/** What large files are read through, one at a time (batches use the chunker's own window). */
let streamWindow: Buffer | undefined;

async function encodeFile(job: number, path: string, mark: FileToEncode): Promise<void> {
  let file: Awaited<ReturnType<AdaptiveReader['open']>> | undefined;
  streamWindow ??= Buffer.allocUnsafeSlow(chunker.windowBytes);
  const known = knownSet(mark);
  try {
    file = await reader.open(path, mark.size);
    // Each chunk is a view into the window: encoded (copied) before the next is read.
    for await (const chunk of chunker.chunkFile(file, mark.size, streamWindow)) {
      if (cancelled.has(job)) break;
      const id = blobId(idKey, chunk);
      if (known?.has(id)) {
        parentPort!.postMessage({ type: 'known', job, id, rawLength: chunk.length });
      } else {
        const compressed = compressIfSmaller(chunk, 'file');
        const sealed = seal(key, compressed ?? chunk);
        garbage.dropping(sealed.length);
        const stored = ownedBuffer(sealed);
        parentPort!.postMessage({ type: 'blob', job, id, rawLength: chunk.length, compressed: compressed !== null, stored }, [stored.buffer as ArrayBuffer]);
      }
      unacknowledged.set(job, (unacknowledged.get(job) ?? 0) + 1);
      while ((unacknowledged.get(job) ?? 0) >= AHEAD && !cancelled.has(job)) await new Promise<void>((resolve) => waiting.set(job, resolve));
    }
    parentPort!.postMessage({ type: 'done', job, changed: file.changedSince(mark) });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    parentPort!.postMessage({ type: 'error', job, message: e.message, code: e.code, syscall: e.syscall, path: e.path });
  } finally {
    cancelled.delete(job);
    unacknowledged.delete(job);
    await file?.close().catch(() => undefined);
  }
}

// Modules loaded, buffers set up: the main thread may hand over files now.
parentPort!.postMessage({ type: 'ready' });
