import type { Backend, ObjectInfo } from './backends/backend.js';
import { CONFIG_KEY, type ObjectKind } from './format/layout.js';
import { Semaphore } from '../util/concurrency.js';

/** Whole objects (index files, snapshots, forget records) fetched at once. */
export const OBJECTS_IN_FLIGHT = 8;
/**
 * Bytes fetched ahead at most, by kind: most commands read the index; those started early
 * (startReadsEarly) also read every forget record and snapshot (to list snapshots or find
 * "latest"), which through rclone's SFTP remote took 20-50 ms each after their listing.
 * Others (a binlog archive every few minutes) read no snapshot, and fetch none.
 */
const AHEAD_BYTES: Record<'forget' | 'snapshots' | 'index', number> = { forget: 4 * 1024 * 1024, snapshots: 8 * 1024 * 1024, index: 32 * 1024 * 1024 };
/** How long what nobody took is kept. */
const KEPT_MS = 30_000;

/**
 * Reads started while the password's key is derived (a third of a second of scrypt), or
 * before the command has loaded (startReadsEarly): the config, the listings of key files,
 * forget records, snapshots and index files, and their bytes. Over a network each is a round
 * trip that would otherwise follow the derivation; a repository with a year of nightly
 * backups holds hundreds of index files. Each result is handed out once,
 * to the first caller; a listing taken a moment before it is asked for is as good as one
 * taken then, since a listing only ever sees what was committed before it. Nothing needs
 * the key: the bytes are verified and decrypted when they are taken.
 */
export class EarlyReads {
  private readonly listings = new Map<ObjectKind, Promise<ObjectInfo[]>>();
  private readonly objects = new Map<string, Pending>();

  constructor(backend: Backend, inFlight: number, { withSnapshots = false } = {}) {
    this.listings.set('keys', collect(backend.list('keys/')));
    const config = new Pending();
    this.objects.set(CONFIG_KEY, config);
    backend.get(CONFIG_KEY).then(config.resolve, config.reject);
    // Forget records first, then snapshots, then index files, each once the one before is
    // done. A backup writes its index before its snapshot, so every listed snapshot's blobs
    // are in a listed index file (listed side by side, a snapshot committed between the two
    // listings had no index). Retention forgets a snapshot only after the backup that
    // replaces it, so every forget listed comes with that backup's snapshot (snapshots
    // listed before forget records showed a forget without the snapshot that replaced the
    // one it hid: one snapshot where there were two at every moment).
    const forgets = collect(backend.list('forget/'));
    const snapshots = forgets.catch(() => undefined).then(() => collect(backend.list('snapshots/')));
    const indexFiles = snapshots.catch(() => undefined).then(() => collect(backend.list('index/')));
    this.listings.set('forget', forgets);
    this.listings.set('snapshots', snapshots);
    this.listings.set('index', indexFiles);
    const inFlightNow = new Semaphore(inFlight);
    const fetched = withSnapshots ? ([['forget', forgets], ['snapshots', snapshots], ['index', indexFiles]] as const) : ([['index', indexFiles]] as const);
    for (const [kind, listing] of fetched) {
      void listing.then(
        (infos) => {
          let bytes = 0;
          for (const info of infos.filter((info) => (bytes += info.size) <= AHEAD_BYTES[kind])) {
            const slot = new Pending();
            this.objects.set(info.key, slot);
            void inFlightNow.acquire().then((release) => backend.get(info.key).then(slot.resolve, slot.reject).finally(release));
          }
        },
        () => undefined,
      );
    }
    // An error nobody asks for is not an unhandled rejection; one that is asked for is thrown then.
    for (const listing of this.listings.values()) listing.catch(() => undefined);
    setTimeout(() => this.drop(), KEPT_MS).unref();
  }

  /** The listing of `kind` started at open, once; undefined when there is none (any more). */
  takeListing(kind: ObjectKind): Promise<ObjectInfo[]> | undefined {
    const listing = this.listings.get(kind);
    this.listings.delete(kind);
    return listing;
  }

  /**
   * A listing of `kind` was just made afresh. The index files listed at open cover every
   * snapshot listed no later than they were, not one listed now: a backup may have
   * committed in between, and its snapshot would have no index. They are listed again
   * (the index bytes fetched stay good: objects never change).
   */
  listedAfresh(kind: ObjectKind): void {
    // What is listed after it must not come from before: for forget records the snapshots
    // (see the constructor), and for those the index files.
    if (kind === 'forget') this.listings.delete('snapshots');
    if (kind === 'forget' || kind === 'snapshots') this.listings.delete('index');
  }

  /** The bytes of the object under `key` fetched at open, once. */
  takeObject(key: string): Promise<Buffer> | undefined {
    const slot = this.objects.get(key);
    this.objects.delete(key);
    return slot?.bytes;
  }

  private drop(): void {
    this.listings.clear();
    this.objects.clear();
  }
}

/** Reads started before the command loaded, by the backend they read, until taken. */
const startedEarly = new Map<Backend, EarlyReads>();

/**
 * Start a repository's reads before the command has loaded: an rclone repository's first
 * answers take its helper a round trip each through the remote (through SFTP the first
 * one also sets up the connection: 0.1-0.2 s here), time in which Node loads the rest
 * of stackvault. Only for commands that list snapshots: their bytes are fetched ahead too.
 * Repository.open takes them (takeEarlyReads) if it opens this backend.
 */
export function startReadsEarly(backend: Backend): void {
  if (!startedEarly.has(backend)) startedEarly.set(backend, new EarlyReads(backend, OBJECTS_IN_FLIGHT, { withSnapshots: true }));
}

/** Whether reads were started early that no Repository.open has taken. */
export function earlyReadsUntaken(): boolean {
  return startedEarly.size > 0;
}

/** The reads started early for this backend, once. */
export function takeEarlyReads(backend: Backend): EarlyReads | undefined {
  const reads = startedEarly.get(backend);
  startedEarly.delete(backend);
  return reads;
}

/** A fetch a taker may wait for before it has started: it is settled from outside. */
class Pending {
  readonly bytes: Promise<Buffer>;
  resolve!: (value: Buffer) => void;
  reject!: (err: unknown) => void;

  constructor() {
    this.bytes = new Promise<Buffer>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.bytes.catch(() => undefined);
  }
}

/** Every object a listing yields. */
export async function collect(listing: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of listing) out.push(info);
  return out;
}
