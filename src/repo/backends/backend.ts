/**
 * The contract every storage backend fulfils. Backends store opaque objects under keys
 * such as "data/ab/ab12..."; they know nothing of packs, snapshots or encryption.
 *
 * WORM rules every backend upholds:
 * - put() never replaces: if the key exists it leaves it untouched and reports created=false.
 * - Nothing but delete() removes an object, and only prune calls delete().
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
  /** the whole object, or the bytes of range; fails if the object is shorter than asked */
  get(key: string, range?: ByteRange): Promise<Buffer>;
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** every object whose key starts with prefix, in no particular order */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(key: string): Promise<void>;
  /** leftovers of interrupted uploads older than the given age, for prune to remove */
  staleUploads?(olderThanMs: number, now: Date): Promise<ObjectInfo[]>;
  deleteStaleUpload?(key: string): Promise<void>;
}
