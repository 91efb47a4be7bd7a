import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';

/**
 * zstd-napi's native binding alone, loaded with require(): every thread that packs or
 * reads blobs loads it (a restore's main thread and writers, a backup's encoders, a
 * check's verifiers), and imported as an ES module it took 15-17 ms of a fresh thread
 * against 9-10; the package's own front (Decompressor) also loaded node:stream and
 * node:assert for streams this never uses, 3-4 ms more per thread.
 */
const zstdBinding = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof ZstdBinding;

export const COMPRESSION_LEVEL = 3;
const JSON_COMPRESSION_LEVEL = 1;

/**
 * What a blob holds, for zstd's level and match tables. Files' content: level 3 with smaller
 * tables than its own (hash 2^15 entries, not 2^17; chain 2^14, not 2^16), which stay in a
 * core's cache: on the real bench's tree (543 MB of /usr) zstd took 16% less time for 0.8%
 * more output (shared libraries 20% and 1.7%, JavaScript 10% and 0.5%, text the same).
 * Database dumps (and every other stream): level 3 as zstd has it. With the
 * small tables the bench's dump came out 2.9% larger (181 MiB against 176), in the time its
 * dumps took the session before with zstd's own (6.6-7.1 s against 6.3-7.2): a dump's size
 * is paid for every night (docs/performance.md, twenty-second session). JSON (trees,
 * content lists, index files and snapshots): level 1, which on them is both faster and
 * smaller than level 3 (the real tree's 1,815 trees, 9.83 MB: 25 ms and 2.09 MB against
 * 40 ms and 2.18 MB; its index files 5% smaller in a third of the time; twenty-fifth
 * session). The frames are zstd's own either way, read as any other.
 */
export type ContentKind = 'file' | 'json' | 'other';

const SMALL_TABLES = { hashLog: 15, chainLog: 14 };

// One reusable context per kind: creating a zstd context per blob costs more than compressing a small blob.
const contexts = new Map<ContentKind, InstanceType<typeof zstdBinding.CCtx>>();

function contextFor(kind: ContentKind): InstanceType<typeof zstdBinding.CCtx> {
  let context = contexts.get(kind);
  if (context) return context;
  context = new zstdBinding.CCtx();
  context.setParameter(zstdBinding.CParameter.compressionLevel, kind === 'json' ? JSON_COMPRESSION_LEVEL : COMPRESSION_LEVEL);
  if (kind === 'file') {
    context.setParameter(zstdBinding.CParameter.hashLog, SMALL_TABLES.hashLog);
    context.setParameter(zstdBinding.CParameter.chainLog, SMALL_TABLES.chainLog);
  }
  contexts.set(kind, context);
  return context;
}

/** Compressed bytes land here, reused by every compression in this thread. */
let scratch: Buffer | undefined;

/**
 * `data` compressed into memory this thread reuses: a view, valid until its next
 * compression. Compressor.compress allocated room for the worst case per blob and copied
 * the result into another buffer; a backup's encoder threads faulted in 9,500 fresh pages
 * for them.
 */
function compressIntoScratch(data: Uint8Array, kind: ContentKind): Buffer {
  const bound = zstdBinding.compressBound(data.length);
  if (!scratch || scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  return scratch.subarray(0, contextFor(kind).compress2(scratch, data));
}

/**
 * zstd-compressed bytes, or null when compression would not save at least 3%. The bytes
 * are a view valid only until this thread compresses again: seal or copy them at once.
 */
export function compressIfSmaller(data: Uint8Array, kind: ContentKind = 'other'): Buffer | null {
  if (data.length < 64) return null;
  const out = compressIntoScratch(data, kind);
  return out.length < data.length * 0.97 ? out : null;
}

/** zstd-compressed bytes of their own. */
export function compress(data: Uint8Array, kind: ContentKind = 'other'): Buffer {
  return Buffer.from(compressIntoScratch(data, kind));
}

let decompressContext: InstanceType<typeof zstdBinding.DCtx> | undefined;

/**
 * Decompressed into memory of its own, sized by the frames' headers (compress() always
 * writes the content's size there); frames that do not say are decompressed as a stream.
 */
export function decompress(data: Uint8Array): Buffer {
  let size = 0;
  for (let frame = data; frame.length > 0; frame = frame.subarray(zstdBinding.findFrameCompressedSize(frame))) {
    const frameSize = zstdBinding.getFrameContentSize(frame);
    if (frameSize === null) return decompressStreamed(data);
    size += frameSize;
  }
  const out = Buffer.allocUnsafe(size);
  decompressContext ??= new zstdBinding.DCtx();
  const produced = decompressContext.decompress(out, data);
  if (produced !== size) throw new Error(`zstd content is ${produced} bytes, its frames say ${size}`);
  return out;
}

function decompressStreamed(data: Uint8Array): Buffer {
  const context = new zstdBinding.DCtx();
  const chunkBytes = zstdBinding.dStreamOutSize();
  const chunks: Buffer[] = [];
  let rest = data;
  // Until every byte is read and the last frame is whole (its output flushed too).
  for (let wanted = 1; rest.length > 0 || wanted !== 0; ) {
    const chunk = Buffer.allocUnsafe(Math.max(chunkBytes, rest.length));
    const [next, produced, consumed] = context.decompressStream(chunk, rest);
    if (produced === 0 && consumed === 0) throw new Error('zstd content is cut short');
    chunks.push(chunk.subarray(0, produced));
    rest = rest.subarray(consumed);
    wanted = next;
  }
  return Buffer.concat(chunks);
}

/**
 * Decompresses `data` into `out` (memory the caller reuses: no fresh pages per blob);
 * returns how many bytes it holds. Throws when the content does not fit.
 */
export function decompressInto(data: Uint8Array, out: Uint8Array): number {
  decompressContext ??= new zstdBinding.DCtx();
  return decompressContext.decompress(out, data);
}
