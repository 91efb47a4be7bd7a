/**
 * The contract every storage backend fulfils (test/backend-contract.ts holds the tests
 * every backend passes). Backends store opaque objects under keys such as
 * "data/ab/ab12..."; they know nothing of packs, snapshots or encryption.
 *
 * WORM rules every backend upholds:
 * - put() never replaces: if the key exists it leaves it untouched and reports created=false.
 *   Keys are content hashes, so an existing object of the same key holds the same bytes;
 *   one of another size is damage and put() says so.
 * - Nothing but delete() removes an object, and only prune calls delete().
 * - A failed put() leaves no object under its key that get() or list() would show.
 *
 * Network backends throw TransientError for what a retry may cure (a dropped connection,
 * a 5xx, a stall, a short body); withRetries() retries those and nothing else.
 */
export interface ObjectInfo {
  key: string;
  size: number;
  /** when the object was stored; immutability periods count from here */
  created: Date;
}

export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * What every backend does. Some backends can do more (see BackendExtras); those extras are
 * reached through backendExtra(), never as optional methods here, so a wrapper (retries,
 * lazy loading) need not know them to pass them on.
 */
export interface Backend {
  /** where the repository lives, safe to print (never contains credentials) */
  readonly location: string;
  /** prepare an empty location for a new repository (create the folder, check it is writable) */
  prepare(): Promise<void>;
  /** store data under key if no object has that key; never overwrites */
  put(key: string, data: Uint8Array): Promise<{ created: boolean }>;
  /**
   * The whole object, or the bytes of range; fails if the object is shorter than asked.
   * The buffer may share memory with other reads: callers read it, never change it.
   */
  get(key: string, range?: ByteRange): Promise<Buffer>;
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** every object whose key starts with prefix, in no particular order */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(key: string): Promise<void>;
  /** stop helper processes and connections; the backend is unusable afterwards */
  close(): Promise<void>;
}

/**
 * An object written piece by piece (a pack as its blobs come), so that it is never whole
 * in memory; stored under its key, by put()'s rules, once complete.
 */
export interface ObjectFile {
  /**
   * Appends `bytes`: undefined when they were taken at once, else a promise resolved once
   * they are; the caller leaves them unchanged until then. Appends keep their order.
   */
  append(bytes: Uint8Array): Promise<void> | undefined;
  /** Stores what was appended under `key` as put() would (never replacing an object); the writing is over either way. */
  store(key: string): Promise<{ created: boolean }>;
  /** Drops what was appended. */
  discard(): Promise<void>;
}

/** What some backends can do beyond the core; each is absent where the storage cannot. */
export interface BackendExtras {
  /**
   * The file holding an object, when the repository is a folder on this machine: worker
   * threads can then read blobs themselves instead of through this thread.
   */
  localFile(key: string): string;
  /**
   * A new object written into a file of the storage's own as it grows (a folder
   * repository's temporary file), instead of being handed to put() whole.
   */
  createObjectFile(): ObjectFile;
  /**
   * Copy a whole object into a file on this machine (which it creates or replaces), with
   * the bytes moved by the storage's own client rather than through this process: a
   * restore then reads those packs as from a folder. Fails, leaving no promise of a
   * complete file, when the copy does not finish. The caller checks the file's bytes
   * against the object's name (a pack's is their SHA-256).
   */
  downloadToFile(key: string, path: string): Promise<void>;
  /**
   * Check that the storage enforces `days` of immutability, or fail naming what is
   * missing; new objects are protected for that long from then on. Called when a
   * repository is created or opened. Backends without it rely on prune's age rule.
   */
  useImmutability(days: number): Promise<void>;
  /**
   * Keep an object immutable until `until` (S3 Object Lock retain-until, an Azure blob's
   * immutability policy); locks only ever grow. Absent where the storage protects objects
   * by itself or not at all.
   */
  extendRetention(key: string, until: Date): Promise<void>;
  /**
   * A folder on this machine: give every object stored from now on the file system's
   * immutable flag (chattr +i), lifted only by a deletion. Fails naming why it cannot.
   */
  useImmutableFlag(options?: { readOnly?: boolean }): Promise<void>;
  /** leftovers of interrupted uploads older than the given age, for prune to remove */
  staleUploads(olderThanMs: number, now: Date): Promise<ObjectInfo[]>;
  deleteStaleUpload(key: string): Promise<void>;
}

export type ExtraName = keyof BackendExtras;

/** A backend that stands in front of another one (retries, lazy loading). */
export interface BackendWrapper extends Backend {
  /** the backend behind this one, loaded if it was not yet */
  unwrap(): Promise<Backend>;
  /** how an extra of the backend behind passes through this wrapper; absent: as it is */
  wrapExtra?<N extends ExtraName>(name: N, extra: BackendExtras[N]): BackendExtras[N];
}

function isWrapper(backend: Backend): backend is BackendWrapper {
  return typeof (backend as Partial<BackendWrapper>).unwrap === 'function';
}

/**
 * An extra of the backend behind any wrappers, passed through each of them (so that a
 * network extra is retried like the core methods), or undefined where the storage has none.
 */
export async function backendExtra<N extends ExtraName>(backend: Backend, name: N): Promise<BackendExtras[N] | undefined> {
  const wrappers: BackendWrapper[] = [];
  let inner = backend;
  while (isWrapper(inner)) {
    wrappers.push(inner);
    inner = await inner.unwrap();
  }
  const own = (inner as Backend & Partial<BackendExtras>)[name];
  if (typeof own !== 'function') return undefined;
  let extra = (own as (...args: unknown[]) => unknown).bind(inner) as BackendExtras[N];
  for (const wrapper of wrappers.reverse()) if (wrapper.wrapExtra) extra = wrapper.wrapExtra(name, extra);
  return extra;
}
