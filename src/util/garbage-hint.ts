import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/*
 * V8 frees the memory of a dead ArrayBuffer only when a collection finds it dead, and it
 * collects for memory outside its heap only after about 64 MiB more of it, in every
 * thread. A thread whose JavaScript objects are few but whose buffers are large (an
 * encoder thread seals every blob into fresh memory; the main thread receives them all)
 * went many megabytes between collections: each encoder thread held up to 60-70 MiB of
 * dead buffers during a backup of /usr/lib. A young-generation collection of such a
 * thread takes well under a millisecond (docs/performance.md, sixth session).
 */
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as (options: { type: 'minor' | 'major' }) => void;

/** Counts the bytes of short-lived buffers a thread drops, and collects its young generation every `everyBytes`. */
export class GarbageHint {
  private dropped = 0;

  constructor(private readonly everyBytes: number) {}

  dropping(bytes: number): void {
    this.dropped += bytes;
    if (this.dropped < this.everyBytes) return;
    this.dropped = 0;
    collect({ type: 'minor' });
  }
}
