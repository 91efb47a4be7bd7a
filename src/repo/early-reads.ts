import type { Backend, ObjectInfo } from './backends/backend.js';
import type { ObjectKind } from './format/layout.js';
import { mapConcurrent } from '../util/concurrency.js';

/** Index bytes fetched ahead at most, and for how long what nobody took is kept. */
const INDEX_BYTES = 32 * 1024 * 1024;
const KEPT_MS = 30_000;

/**
 * Reads started while the password's key is derived (a third of a second of scrypt):
 * the listings of index files and snapshots, and the index files' bytes. Over a network
 * each is a round trip that would otherwise follow the derivation; a repository with a
 * year of nightly backups holds hundreds of index files. Each result is handed out once,
 * to the first caller; a listing taken a moment before it is asked for is as good as one
 * taken then, since a listing only ever sees what was committed before it. Nothing needs
 * the key: the bytes are verified and decrypted when they are taken.
 */
export class EarlyReads {
  private readonly listings = new Map<ObjectKind, Promise<ObjectInfo[]>>();
  private readonly objects = new Map<string, Pending>();

  constructor(backend: Backend, inFlight: number) {
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
    void indexFiles.then(
      (infos) => {
        let bytes = 0;
        const wanted = infos.filter((info) => (bytes += info.size) <= INDEX_BYTES);
        const pending = wanted.map((info) => {
          const slot = new Pending();
          this.objects.set(info.key, slot);
          return { key: info.key, slot };
        });
        void mapConcurrent(pending, inFlight, ({ key, slot }) => backend.get(key).then(slot.resolve, slot.reject));
      },
      () => undefined,
    );
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
