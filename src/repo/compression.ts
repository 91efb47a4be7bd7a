import { Compressor, Decompressor } from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';

// One reusable context each: creating a zstd context per blob costs more than compressing a small blob.
let compressor: Compressor | undefined;
let decompressor: Decompressor | undefined;

export const COMPRESSION_LEVEL = 3;

/** zstd-compressed bytes, or null when compression would not save at least 3%. */
export function compressIfSmaller(data: Uint8Array): Buffer | null {
  if (data.length < 64) return null;
  if (!compressor) {
    compressor = new Compressor();
    compressor.setParameters({ compressionLevel: COMPRESSION_LEVEL });
  }
  const out = compressor.compress(data);
  return out.length < data.length * 0.97 ? out : null;
}

let transientContext: InstanceType<typeof zstdBinding.CCtx> | undefined;
let transientOut: Buffer | undefined;

/**
 * compressIfSmaller into memory this thread reuses: a view, valid until the next call. For
 * a caller that seals it at once (the encoder threads): Compressor.compress allocates
 * room for the worst case per blob and copies the result into another buffer, and a
 * backup's encoder threads faulted in 9,500 fresh pages for them.
 */
export function compressIfSmallerTransient(data: Uint8Array): Buffer | null {
  if (data.length < 64) return null;
  const bound = zstdBinding.compressBound(data.length);
  if (!transientOut || transientOut.length < bound) transientOut = Buffer.allocUnsafeSlow(bound);
  transientContext ??= new zstdBinding.CCtx();
  const length = transientContext.compress(transientOut, data, COMPRESSION_LEVEL);
  return length < data.length * 0.97 ? transientOut.subarray(0, length) : null;
}

export function compress(data: Uint8Array): Buffer {
  if (!compressor) {
    compressor = new Compressor();
    compressor.setParameters({ compressionLevel: COMPRESSION_LEVEL });
  }
  return compressor.compress(data);
}

export function decompress(data: Uint8Array): Buffer {
  decompressor ??= new Decompressor();
  return decompressor.decompress(data);
}
