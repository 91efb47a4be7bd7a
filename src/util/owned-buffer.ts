/*
 * Buffers that own their memory (not a view into a larger one, not Node's shared pool):
 * the only kind whose memory can be transferred to a worker thread instead of copied.
 */

/** The buffer itself if it owns its memory, else a copy that does: what can be transferred to a thread. */
export function ownedBuffer(buf: Buffer): Buffer {
  // Not Buffer.from: a copy under 4 KiB would come from the shared pool again.
  return buf.byteOffset === 0 && buf.buffer.byteLength === buf.length ? buf : concatOwned([buf]);
}

/** The parts in one buffer of its own (not Node's shared pool), so it can be transferred to a worker. */
export function concatOwned(parts: readonly Uint8Array[], total = parts.reduce((n, p) => n + p.length, 0)): Buffer {
  const out = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
