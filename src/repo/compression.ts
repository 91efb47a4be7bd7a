import { Compressor, Decompressor } from 'zstd-napi';

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
