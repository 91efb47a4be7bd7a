/**
 * Formats whose content is compressed by definition, known by the first bytes of a file:
 * zstd finds nothing left in them, and trying costs it about a millisecond per MB, more
 * for small files (Debian's 21,506 gzipped manual pages, 38.5 MB: 381 ms of zstd for 0.1%).
 * A stack holds many such files: rotated logs, call recordings, photos, archives.
 *
 * Only formats that are always compressed: ZIP (and the documents and packages built on
 * it) may store entries as they are, PNG and GIF leave some to zstd (the real bench's icons
 * came out 5% smaller), WAV is raw samples; all of those are compressed as any other file.
 */
const SIGNATURES: ReadonlyArray<{ at: number; bytes: readonly number[] }> = [
  { at: 0, bytes: [0x1f, 0x8b, 0x08] }, // gzip (deflate)
  { at: 0, bytes: [0x28, 0xb5, 0x2f, 0xfd] }, // zstd frame
  { at: 0, bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] }, // xz
  { at: 0, bytes: [0x42, 0x5a, 0x68] }, // bzip2 ("BZh")
  { at: 0, bytes: [0x04, 0x22, 0x4d, 0x18] }, // lz4 frame
  { at: 0, bytes: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] }, // 7z
  { at: 0, bytes: [0xff, 0xd8, 0xff] }, // JPEG
  { at: 0, bytes: [0x4f, 0x67, 0x67, 0x53] }, // Ogg ("OggS": Opus, Vorbis)
  { at: 0, bytes: [0x66, 0x4c, 0x61, 0x43] }, // FLAC ("fLaC")
  { at: 0, bytes: [0x49, 0x44, 0x33] }, // MP3 with an ID3v2 tag ("ID3")
  { at: 4, bytes: [0x66, 0x74, 0x79, 0x70] }, // MP4, M4A, MOV, HEIC ("ftyp")
  { at: 0, bytes: [0x1a, 0x45, 0xdf, 0xa3] }, // Matroska, WebM
];

/** Whether `head` (a file's first bytes) begins one of the always-compressed formats above. */
export function isCompressedFormat(head: Uint8Array): boolean {
  return SIGNATURES.some(({ at, bytes }) => head.length >= at + bytes.length && bytes.every((b, i) => head[at + i] === b));
}
