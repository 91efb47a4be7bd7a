import { Decompressor } from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';

export const COMPRESSION_LEVEL = 3;

// One reusable context each: creating a zstd context per blob costs more than compressing a small blob.
let context: InstanceType<typeof zstdBinding.CCtx> | undefined;
let decompressor: Decompressor | undefined;
/** Compressed bytes land here, reused by every compression in this thread. */
let scratch: Buffer | undefined;

/**
 * `data` compressed into memory this thread reuses: a view, valid until its next
 * compression. Compressor.compress allocated room for the worst case per blob and copied
 * the result into another buffer; a backup's encoder threads faulted in 9,500 fresh pages
 * for them.
 */
function compressIntoScratch(data: Uint8Array): Buffer {
  const bound = zstdBinding.compressBound(data.length);
  if (!scratch || scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  context ??= new zstdBinding.CCtx();
  return scratch.subarray(0, context.compress(scratch, data, COMPRESSION_LEVEL));
}

/**
 * zstd-compressed bytes, or null when compression would not save at least 3%. The bytes
 * are a view valid only until this thread compresses again: seal or copy them at once.
 */
export function compressIfSmaller(data: Uint8Array): Buffer | null {
  if (data.length < 64) return null;
  const out = compressIntoScratch(data);
  return out.length < data.length * 0.97 ? out : null;
}

/** zstd-compressed bytes of their own. */
export function compress(data: Uint8Array): Buffer {
  return Buffer.from(compressIntoScratch(data));
}

export function decompress(data: Uint8Array): Buffer {
  decompressor ??= new Decompressor();
  return decompressor.decompress(data);
}

let decompressContext: InstanceType<typeof zstdBinding.DCtx> | undefined;

/**
 * Decompresses `data` into `out` (memory the caller reuses: no fresh pages per blob);
 * returns how many bytes it holds. Throws when the content does not fit.
 */
export function decompressInto(data: Uint8Array, out: Uint8Array): number {
  decompressContext ??= new zstdBinding.DCtx();
  return decompressContext.decompress(out, data);
}
