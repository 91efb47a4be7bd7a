import { mkdtempSync, statSync } from 'node:fs';
import { readdir, rm, stat, statfs, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256OfFileSync } from '../../util/file-hash.js';
import { processLives } from '../../util/process-alive.js';

/**
 * Where a restore's writer threads read a pack's stored blobs: a pack file on this
 * machine (a folder repository's own, or a copy brought over for the restore).
 */
export interface PackFiles {
  /**
   * The restore will read `storedBytes` of `pack`, once per call: told during its first
   * walk, before any take(), so that packs it needs most of can be brought over meanwhile.
   * `walkedShare`, when known (a whole snapshot restored): the share of the restore's bytes
   * the walk has found so far, the needs found included.
   */
  willRead?(pack: string, storedBytes: number, walkedShare?: number): void;
  /**
   * The restore will read from each of these packs (a whole snapshot, from a repository
   * that holds little else), as often as it may: all are brought over at once, without
   * waiting for a walk to find them, and kept until close(). False, with nothing done,
   * where they would not all fit.
   */
  willReadAll?(packs: ReadonlyArray<{ pack: string; storedBytes: number }>): boolean;
  /** Every willRead() has been said (the first walk is done, or stopped). */
  planned?(): void;
  /**
   * The file holding `pack`, kept until release(pack) is called for this take: at once when
   * it is there, a promise while it is brought over. Undefined (then or once settled): read
   * this pack's blobs through the repository instead, and call no release.
   *
   * With `end`, the file may be given while it is still being brought over, once its first
   * `end` bytes are there: a caller that reads no further than that can start before the
   * copy is whole. What it reads then is not yet known to be the pack's (see settled()).
   */
  take(pack: string, end?: number): string | undefined | Promise<string | undefined>;
  /**
   * Whether what a take of `pack` gives now is final: the copy is whole and checked (or there
   * is none). A blob that did not verify from a file taken before that may have been read
   * from a copy still under way; it is read again once the pack has settled.
   */
  settled?(pack: string): boolean;
  /**
   * A take for reading again what did not verify from a file taken before `pack` settled,
   * made while that first take is still held: once the pack has settled, its file
   * (undefined: read through the repository). Not counted as another of the reads the walk
   * said the restore would make.
   */
  takeSettled?(pack: string): Promise<string | undefined>;
  release(pack: string): void;
  /** Removes what was brought over; every take must have been released or abandoned. */
  close(): Promise<void>;
}

/**
 * A pack is brought over whole once the restore needs at least this share of its blobs'
 * bytes; from a pack it needs less of (a restore of a few files, or the latest snapshot of
 * a long history whose unchanged files lie in old packs) it reads ranges, as before. A
 * quarter, not a half: the first walk finds a pack's need growing as it goes (a backup
 * packs many folders at once), and the copy starts as soon as it crosses; at a half both
 * packs of /usr/share/perl, vim and icons crossed at the walk's very end, and the restore
 * then waited for them (0.15 s through WebDAV, 0.3 s through SFTP). Reading a quarter in
 * 4 MiB windows would fetch most of the pack anyway.
 */
const WHOLE_PACK_SHARE = 0.25;
/**
 * Where the walk tells how far it has come, a pack's need is judged by what it will be at
 * the walk's end at this rate, from this share of the walk on (before it, as at this share):
 * a pack the walk found a tenth of the way into needing 2.5% of it is brought over then.
 * Found only once crossed, both packs of /usr/share/perl, vim and icons (9,600 files) went
 * 44% and 56% of the way through the walk, and through SFTP the restore waited 0.16-0.19 s
 * for the larger after the walk. A pack whose need all lies early in the walk may be
 * brought over for less than a quarter of it: at most its whole size where 4 MiB windows
 * would have read one or more of its windows (a pack is 16 MiB).
 */
const EARLIEST_JUDGED_SHARE = 0.1;
/** Copies in flight at once: enough to keep a network busy while one waits for its first byte. */
const DOWNLOADS = 3;
/**
 * How often a copy under way is looked at while takes wait for its next bytes: a pack of
 * 16 MiB comes over in 100-250 ms on loopback (WebDAV, SFTP).
 */
const ARRIVAL_POLL_MS = 4;
/** The most the spool holds, and the share of its file system's free space it may take. */
const MAX_SPOOL_BYTES = 1024 * 1024 * 1024;
const FREE_SPACE_SHARE = 0.25;
/** A spool's folder: the prefix, the process's id, a random part. */
const SPOOL_PREFIX = 'stackvault-restore-';
const SPOOL_NAME = new RegExp(`^${SPOOL_PREFIX}(\\d+)-`);

/**
 * Spools a killed restore left behind (SIGKILL, a power cut: no chance to clean up), up to
 * a gigabyte each: those whose process is gone. One whose process id lives on (its own,
 * another restore's, or an unrelated process that reuses the number) is left alone.
 */
async function removeStaleSpools(parent: string): Promise<void> {
  for (const name of await readdir(parent)) {
    const pid = Number(SPOOL_NAME.exec(name)?.[1]);
    if (!pid || processLives(pid)) continue;
    await rm(join(parent, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

/** planned: read in ranges unless the restore comes to need most of it */
type PackState = 'planned' | 'waiting' | 'fetching' | 'ready' | 'failed' | 'gone';

interface SpooledPack {
  state: PackState;
  /** stored bytes the restore will read from it */
  needed: number;
  /** blob reads the restore still will take it for */
  uses: number;
  /** takes not yet released: its file must stay */
  refs: number;
  /** the pack's size, counted against the budget from its download's start */
  bytes: number;
  /**
   * the file of its latest copy: each copy has a name of its own, so that deleting one
   * (still under way when the pack is asked for again) never deletes the next
   */
  file?: string;
  fetched?: Promise<string | undefined>;
  /** bytes of the copy under way seen on disk so far */
  arrived: number;
  /** takes waiting for the copy under way to reach their end */
  early: Array<{ end: number; resolve: () => void }>;
}

/**
 * Packs of a network repository brought into a temporary folder for a restore, so that
 * the writer threads read them as from a folder repository: the storage's own client
 * (rclone) moves the bytes, none pass through this process. Through `rclone serve webdav`
 * the main thread had spent most of a restore receiving bytes and handing them on.
 *
 * Packs come over in the order the restore's first walk finds it needs most of them,
 * while it walks, a few at once, as far ahead as the budget allows (a quarter of the free
 * space of the temporary folder's file system, at most 1 GiB); a pack the restore asks
 * for goes first, past the budget if it must, deleting packs read before that nothing
 * holds now (they come over again if needed again). Each is deleted once the restore's
 * last read of it is released. A pack that cannot be copied (a full disk, a failed copy)
 * is read through the repository instead.
 */
export class PackSpool implements PackFiles {
  private readonly packs = new Map<string, SpooledPack>();
  /** packs to bring over, in the order found, and how far the prefetch has gone through them */
  private readonly order: string[] = [];
  private next = 0;
  private downloads = 0;
  private spooledBytes = 0;
  /** packs on disk that nothing holds, least recently released first: the first to go past the budget */
  private readonly idle = new Set<string>();
  /** the first walk is done: a pack it did not find most of needed is read in ranges */
  private planComplete = false;
  /** takes of packs the walk has not decided on yet, waiting for it */
  private readonly undecided = new Map<string, Array<() => void>>();
  /**
   * the folder, made with the first copy in a blocking call: the first walk decides on
   * copies while it keeps the event loop busy, and the copy's request must go out then,
   * not after a file system call that waits for the loop's next turn
   */
  private dir: string | undefined;
  private copies = 0;
  private closed = false;
  private watching: NodeJS.Timeout | undefined;

  private constructor(
    private readonly parent: string,
    private readonly budget: number,
    private readonly packBytes: (pack: string) => number,
    private readonly download: (pack: string, file: string) => Promise<void>,
    private readonly hashFile: (file: string) => Promise<string>,
  ) {}

  /**
   * A spool whose folder will be made under `parent` (the system's temporary folder), or
   * undefined where that cannot be used. `hashFile` gives a copy's SHA-256 (hex): by
   * default on this thread, blocking it; a restore has its writer threads do it (see SpoolOptions).
   */
  static async create(
    packBytes: (pack: string) => number,
    download: (pack: string, file: string) => Promise<void>,
    { parent = tmpdir(), maxBytes = MAX_SPOOL_BYTES, hashFile = async (file) => sha256OfFileSync(file) }: SpoolOptions = {},
  ): Promise<PackSpool | undefined> {
    try {
      await removeStaleSpools(parent);
      const fs = await statfs(parent);
      return new PackSpool(parent, Math.min(maxBytes, fs.bavail * fs.bsize * FREE_SPACE_SHARE), packBytes, download, hashFile);
    } catch {
      return undefined;
    }
  }

  willRead(pack: string, storedBytes: number, walkedShare = 1): void {
    let p = this.packs.get(pack);
    if (!p) {
      p = { state: 'planned', needed: 0, uses: 0, refs: 0, bytes: this.packBytes(pack), arrived: 0, early: [] };
      this.packs.set(pack, p);
    }
    p.uses++;
    p.needed += storedBytes;
    // Whole, once most of it is needed (or will be, at the walk's rate so far); never a pack
    // two of which would not fit.
    const share = Math.min(1, Math.max(EARLIEST_JUDGED_SHARE, walkedShare));
    if (p.state === 'planned' && p.bytes > 0 && p.needed >= p.bytes * WHOLE_PACK_SHARE * share && 2 * p.bytes <= this.budget) {
      p.state = 'waiting';
      this.order.push(pack);
      this.prefetch();
      this.decided(pack);
    }
  }

  willReadAll(packs: ReadonlyArray<{ pack: string; storedBytes: number }>): boolean {
    let bytes = 0;
    for (const { pack } of packs) bytes += this.packBytes(pack);
    if (this.packs.size > 0 || bytes > this.budget) return false;
    for (const { pack, storedBytes } of packs) {
      // Read as often as it may be: never deleted before close() for having been read as often as counted.
      this.packs.set(pack, { state: 'waiting', needed: storedBytes, uses: Infinity, refs: 0, bytes: this.packBytes(pack), arrived: 0, early: [] });
      this.order.push(pack);
    }
    this.prefetch();
    return true;
  }

  planned(): void {
    this.planComplete = true;
    for (const pack of [...this.undecided.keys()]) this.decided(pack);
    // Packs read as often as the walk found, while it still walked, go now.
    for (const pack of [...this.idle]) {
      const p = this.packs.get(pack)!;
      if (p.uses <= 0) this.remove(pack, p);
    }
  }

  take(pack: string, end?: number): string | undefined | Promise<string | undefined> {
    const p = this.packs.get(pack);
    if (!p || p.state === 'planned') {
      if (this.planComplete) return undefined;
      // The first walk, still going, may yet find most of this pack needed: its word first.
      return new Promise<void>((resolve) => {
        const waiting = this.undecided.get(pack);
        if (waiting) waiting.push(resolve);
        else this.undecided.set(pack, [resolve]);
      }).then(() => this.take(pack, end));
    }
    if (p.state === 'failed') return undefined;
    if (p.state === 'ready') {
      p.refs++;
      this.idle.delete(pack);
      return p.file;
    }
    if (p.state === 'waiting' || p.state === 'gone') this.fetch(pack, p);
    p.refs++;
    const settledFile = () => {
      if (p.state === 'ready') return p.file;
      p.refs--;
      return undefined;
    };
    // Part of a copy under way: the file as soon as its first `end` bytes are there.
    if (end !== undefined && end <= p.bytes) {
      if (end <= p.arrived) return p.file;
      const arrived = new Promise<void>((resolve) => p.early.push({ end, resolve }));
      this.watchArrivals();
      return Promise.race([arrived, p.fetched!]).then(() => (p.state === 'fetching' ? p.file : settledFile()));
    }
    return p.fetched!.then(settledFile);
  }

  settled(pack: string): boolean {
    const state = this.packs.get(pack)?.state;
    return state !== 'fetching' && state !== 'waiting' && state !== 'gone';
  }

  async takeSettled(pack: string): Promise<string | undefined> {
    const p = this.packs.get(pack);
    await p?.fetched;
    if (!p || p.state !== 'ready') return undefined;
    p.refs++;
    // Its release counts one read: this one was never planned.
    p.uses++;
    return p.file;
  }

  /**
   * While takes wait for part of a copy under way, how far each copy has come is looked
   * at every few milliseconds: the storage's client (rclone) writes it in order under its
   * name, and a byte below a file's size is there to be read. A client that writes
   * otherwise (to another name, or out of order) costs only the wait: a take is then given
   * the file when the copy is whole, and a blob read from a hole does not verify and is
   * read again (see settled()).
   */
  private watchArrivals(): void {
    if (this.watching) return;
    this.watching = setInterval(() => {
      let waiting = false;
      for (const p of this.packs.values()) {
        if (p.early.length === 0) continue;
        if (p.state !== 'fetching') {
          // Settled meanwhile: the takes follow the copy's own outcome.
          p.early = [];
          continue;
        }
        try {
          p.arrived = Math.max(p.arrived, statSync(p.file!).size);
        } catch {
          // Not made yet, or under another name until it is whole.
        }
        const still: SpooledPack['early'] = [];
        for (const w of p.early) {
          if (w.end <= p.arrived) w.resolve();
          else still.push(w);
        }
        p.early = still;
        waiting ||= still.length > 0;
      }
      if (!waiting) {
        clearInterval(this.watching);
        this.watching = undefined;
      }
    }, ARRIVAL_POLL_MS);
  }

  release(pack: string): void {
    const p = this.packs.get(pack);
    if (!p || p.state === 'planned') return;
    p.refs--;
    p.uses--;
    if (p.refs > 0 || p.state !== 'ready') return;
    this.unheld(pack, p);
    this.prefetch();
  }

  /** A pack on disk that nothing holds: deleted once read as often as the walk found, else idle. */
  private unheld(pack: string, p: SpooledPack): void {
    if (p.uses <= 0 && this.planComplete) this.remove(pack, p);
    else this.idle.add(pack);
  }

  private decided(pack: string): void {
    const waiting = this.undecided.get(pack);
    this.undecided.delete(pack);
    for (const resume of waiting ?? []) resume();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watching);
    this.planned();
    // Copies still running write into the folder: they finish (or fail) first.
    await Promise.allSettled([...this.packs.values()].map((p) => p.fetched));
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** Starts copies in the plan's order while there are free slots and room in the budget. */
  private prefetch(): void {
    while (!this.closed && this.downloads < DOWNLOADS && this.next < this.order.length) {
      const pack = this.order[this.next]!;
      const p = this.packs.get(pack)!;
      if (p.state !== 'waiting') {
        this.next++;
        continue;
      }
      // Packs read before and needed again are not made room for: the restore is sure to
      // want them, the next pack only later.
      if (this.spooledBytes + p.bytes > this.budget) return;
      this.next++;
      this.fetch(pack, p);
    }
  }

  /** Deletes idle packs, least recently released first, until the spool is within its budget. */
  private makeRoom(): void {
    for (const pack of this.idle) {
      if (this.spooledBytes <= this.budget) return;
      this.remove(pack, this.packs.get(pack)!);
    }
  }

  private fetch(pack: string, p: SpooledPack): void {
    p.state = 'fetching';
    p.arrived = 0;
    this.downloads++;
    this.spooledBytes += p.bytes;
    // A pack the restore waits for goes past the budget if it must.
    this.makeRoom();
    p.fetched = this.copy(pack, p).then(
      () => {
        p.state = 'ready';
        if (p.refs === 0) this.unheld(pack, p);
        return p.file;
      },
      async () => {
        p.state = 'failed';
        this.spooledBytes -= p.bytes;
        if (p.file) await unlink(p.file).catch(() => undefined);
        return undefined;
      },
    );
    p.fetched.finally(() => {
      this.downloads--;
      this.prefetch();
    });
  }

  /** The copy, checked to be whole: a file cut short would look like a damaged pack. */
  private async copy(pack: string, p: SpooledPack): Promise<void> {
    this.dir ??= mkdtempSync(join(this.parent, `${SPOOL_PREFIX}${process.pid}-`));
    const file = join(this.dir, `${pack}.${++this.copies}`);
    p.file = file;
    await this.download(pack, file);
    const { size } = await stat(file);
    if (size < p.bytes) throw new Error(`the copy of pack ${pack} has ${size} of at least ${p.bytes} bytes`);
    // A pack is named by the SHA-256 of its bytes: a copy damaged on its way (rclone is
    // asked not to compare checksums, see RcloneBackend.downloadToFile) is not used, and
    // its blobs are read in ranges instead, as if the copy had failed.
    if ((await this.hashFile(file)) !== pack) throw new Error(`the copy of pack ${pack} does not match its name: damaged in transit`);
    // Counted until now by where its blobs end; its header follows them.
    this.spooledBytes += size - p.bytes;
    p.bytes = size;
  }

  private remove(pack: string, p: SpooledPack): void {
    p.state = 'gone';
    this.idle.delete(pack);
    this.spooledBytes -= p.bytes;
    if (p.file) void unlink(p.file).catch(() => undefined);
  }
}

export interface SpoolOptions {
  parent?: string;
  maxBytes?: number;
  /**
   * A copy's SHA-256 (hex). Copies arrive while the restore's first walk keeps the main
   * thread busy, and the writer threads wait for that walk: hashed there, a copy held up
   * the walk (24 MB: 15-25 ms; 136 MB of /usr/share and /usr/lib/python3: 70 ms of 0.8 s).
   */
  hashFile?: (file: string) => Promise<string>;
}
