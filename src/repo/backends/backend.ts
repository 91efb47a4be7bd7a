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

export interface Backend {
  /** where the repository lives, safe to print (never contains credentials) */
  readonly location: string;
  /** prepare an empty location for a new repository (create the folder, check it is writable) */
  prepare(): Promise<void>;
  /** store data under key if no object has that key; never overwrites */
  put(key: string, data: Uint8Array): Promise<{ created: boolean }>;
  /**
   * put() of the concatenation of parts, without concatenating them first: a backend that
   * writes to a local file system writes them as they are. Optional: callers concatenate
   * for backends without it.
   */
  putParts?(key: string, parts: readonly Uint8Array[]): Promise<{ created: boolean }>;
  /**
   * The whole object, or the bytes of range; fails if the object is shorter than asked.
   * The buffer may share memory with other reads: callers read it, never change it.
   */
  get(key: string, range?: ByteRange): Promise<Buffer>;
  /**
   * The file holding an object, when the repository is a folder on this machine: worker
   * threads can then read blobs themselves instead of through this thread.
   */
  localFile?(key: string): string;
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** every object whose key starts with prefix, in no particular order */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(key: string): Promise<void>;
  /**
   * Check that the storage enforces `days` of immutability, or fail naming what is
   * missing; new objects are protected for that long from then on. Called when a
   * repository is created or opened. Backends without the method rely on prune's age rule.
   */
  useImmutability?(days: number): Promise<void>;
  /**
   * Keep an object immutable until `until` (S3 Object Lock retain-until, an Azure blob's
   * immutability policy); locks only ever grow. Absent where the storage protects objects
   * by itself or not at all.
   */
  extendRetention?(key: string, until: Date): Promise<void>;
  /**
   * A folder on this machine: give every object stored from now on the file system's
   * immutable flag (chattr +i), lifted only by a deletion. Fails naming why it cannot.
   */
  useImmutableFlag?(options?: { readOnly?: boolean }): Promise<void>;
  /** stop helper processes and connections; the backend is unusable afterwards */
  close?(): Promise<void>;
  /** leftovers of interrupted uploads older than the given age, for prune to remove */
  staleUploads?(olderThanMs: number, now: Date): Promise<ObjectInfo[]>;
  deleteStaleUpload?(key: string): Promise<void>;
}
