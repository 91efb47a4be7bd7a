import { randomBytes } from 'node:crypto';
import { IntegrityError, ObjectNotFoundError, RepositoryNotFoundError, StackvaultError, UsageError, WrongPasswordError, errorMessage } from '../util/errors.js';
import { backendExtra, type Backend, type BackendExtras, type ObjectInfo } from './backends/backend.js';
import { BlobWriter } from './encode/blob-writer.js';
import { Chunker, DEFAULT_CHUNKER, checkChunkerParams, type ChunkerParams } from './encode/chunker.js';
import { compress, decompress } from './format/compression.js';
import { blobId, newMasterKey, objectHash, seal, unseal, unwrapMasterKey, wrapMasterKey, type KeyFile, type MasterKey } from './format/crypto.js';
import { MasterIndex, type IndexEntry, type IndexFile } from './master-index.js';
import { CONFIG_KEY, idFromKey, objectKey, type ObjectKind } from './format/layout.js';
import { PACK_TRAILER_BYTES, headerLengthFromTrailer, parsePackHeader, type BlobType, type PackedBlob } from './format/pack.js';
import { decodeBlob } from './format/pack-verify.js';
import { PackWindows } from './decode/pack-windows.js';
import { PackSpool, type PackFiles, type SpoolOptions } from './decode/pack-spool.js';
import { EarlyReads, OBJECTS_IN_FLIGHT, collect, takeEarlyReads } from './early-reads.js';
import { earlyKeysWaiting, takeEarlyKey } from './early-keys.js';
import type { KeyFileBytes } from '../util/key-cache.js';
import { mapConcurrent } from '../util/concurrency.js';

/** An object that could not be loaded, among others that could (see Repository.loadObjects). */
export class LoadFailure {
  constructor(readonly error: unknown) {}
}

export const FORMAT_VERSION = 1;

export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

const OBJECT_NAMES: Record<Exclude<ObjectKind, 'data' | 'keys'>, string> = {
  snapshots: 'snapshot',
  forget: 'forget record',
  index: 'index file',
  deletions: 'deletion record',
  binlog: 'binary log segment',
};

/** The repository's plaintext config object, written once by init. */
export interface RepoConfig {
  version: number;
  id: string;
  created: string;
  encryption: 'aes-256-gcm' | 'none';
  compression: 'zstd';
  chunker: ChunkerParams;
  packSize: number;
  /** objects may not be deleted before they are this many days old */
  immutabilityDays: number;
  /** only for unencrypted repositories: the non-secret keys that otherwise live in key files */
  plainKeys?: { idKey: string; chunkerSeed: string };
  /** a folder repository whose objects carry the file system's immutable flag (chattr +i) */
  immutableFlag?: boolean;
}

export interface KeyInfo {
  id: string;
  /** when the key was made, as its file says */
  created: string;
  host: string;
  username: string;
  current: boolean;
  /** when the storage stored it: its immutability period counts from here */
  stored: Date;
}

export interface InitOptions {
  /** null for an unencrypted repository */
  password: string | null;
  immutabilityDays: number;
  packSize?: number;
  chunker?: ChunkerParams;
  /** a folder repository: flag every object immutable (chattr +i) */
  immutableFlag?: boolean;
}

function parseObjectJson<T>(json: Buffer, what: string): T {
  try {
    return JSON.parse(json.toString('utf8')) as T;
  } catch (err) {
    throw new IntegrityError(`${what} is damaged: ${errorMessage(err)}`);
  }
}

/**
 * Prune's safety margin: packs named in a deletion record are deleted no sooner than this
 * after the record was written. Writers read new records at every index checkpoint, at
 * least every minute while they work, and right before they commit, so any writer that
 * relies on such a pack has written its blobs again long before.
 */
export const DELETION_MARGIN_MS = 60 * 60_000;
/** Deletion records stay at least this long after their packs are gone, for writers that were held up. */
export const DELETION_RECORDS_KEPT_MS = 7 * 86_400_000;

/** A deletion record: packs that prune's first phase means to delete (see docs/format.md). */
export interface DeletionRecord {
  version: 1;
  time: string;
  packs: string[];
}

/** A deletion record as found in the repository, with when the storage says it was written. */
export interface KnownDeletion {
  id: string;
  /** the record as listed: its key, size and creation time on the storage */
  info: ObjectInfo;
  packs: string[];
}

export class Repository {
  /** STACKVAULT_INDEX_MEMORY_BLOBS: how many blobs the index keeps wholly in memory before the rest of each entry goes to a scratch file (see BlobTable). */
  readonly index = new MasterIndex({ spillAbove: Number(process.env.STACKVAULT_INDEX_MEMORY_BLOBS) || undefined });
  private chunkerMade: Chunker | undefined;
  private indexLoaded = false;
  /** stored index files that another index file supersedes (prune may delete them) */
  private readonly supersededIndexIds = new Set<string>();
  /** index files whose packs are in `index` */
  private readonly loadedIndexIds = new Set<string>();
  private readonly deletions = new Map<string, KnownDeletion>();
  /**
   * Damaged objects found so far (key -> what is wrong). On WORM storage a damaged object
   * can never be replaced or deleted early, so it is reported and skipped, never allowed
   * to block the rest of the repository.
   */
  readonly damage = new Map<string, string>();
  /** told once about each damaged object (the CLI prints a warning) */
  onDamage?: (key: string, message: string) => void;
  /** blob reads from a network backend, a window of a pack at a time */
  private packWindows: PackWindows | undefined;
  /** the key file whose password opened the repository (or that init made), and every key file it listed then (for a cache of key files, util/key-cache.ts); none when it is not encrypted */
  openedWith: { keyFile: KeyFileBytes; listed: ReadonlySet<string> } | undefined;

  /** the id of the key file whose password opened the repository */
  get openedWithKey(): string | undefined {
    return this.openedWith?.keyFile.id;
  }
  private readonly packBlobsEnd = new Map<string, number>();

  private constructor(
    readonly backend: Backend,
    readonly config: RepoConfig,
    readonly master: MasterKey,
    /** the backend's extras for a folder on this machine, looked up once */
    private readonly local: LocalExtras,
    /** what open() started reading while it derived the key */
    private readonly early?: EarlyReads,
  ) {
    // A config with chunker parameters this version cannot use is refused at open.
    checkChunkerParams(config.chunker);
  }

  /**
   * The repository's chunker, made when first used: its gear table (256 hashes) and
   * WebAssembly scanner took 1.5-6 ms alone, 12 ms of the main thread in a restore's
   * profile, as a restore or a check opened the repository, commands that never chunk.
   */
  get chunker(): Chunker {
    return (this.chunkerMade ??= new Chunker(this.master.chunkerSeed, this.config.chunker));
  }

  static async init(backend: Backend, options: InitOptions): Promise<Repository> {
    if (await backend.stat(CONFIG_KEY)) {
      throw new StackvaultError(`a repository already exists at ${backend.location}`);
    }
    if (!Number.isFinite(options.immutabilityDays) || options.immutabilityDays < 0) {
      throw new UsageError('immutability must be zero or more days');
    }
    const encrypted = options.password !== null;
    if (encrypted && !options.password) throw new UsageError('the password is empty');
    const packSize = options.packSize ?? DEFAULT_PACK_SIZE;
    if (packSize < 1 << 20 || packSize > 1 << 30) throw new UsageError('pack size must be between 1 MiB and 1 GiB');
    const master = newMasterKey(encrypted);
    const config: RepoConfig = {
      version: FORMAT_VERSION,
      id: randomBytes(16).toString('hex'),
      created: new Date().toISOString(),
      encryption: encrypted ? 'aes-256-gcm' : 'none',
      compression: 'zstd',
      chunker: options.chunker ?? DEFAULT_CHUNKER,
      packSize,
      immutabilityDays: options.immutabilityDays,
      ...(encrypted ? {} : { plainKeys: { idKey: master.idKey.toString('base64'), chunkerSeed: master.chunkerSeed.toString('base64') } }),
    };
    await backend.prepare();
    // Before any object: a repository that promises immutability the storage cannot enforce is refused.
    await (await backendExtra(backend, 'useImmutability'))?.(options.immutabilityDays);
    if (options.immutableFlag) {
      const useImmutableFlag = await backendExtra(backend, 'useImmutableFlag');
      if (!useImmutableFlag) throw new UsageError(`the immutable flag (chattr +i) is for a folder repository; ${backend.location} is not one`);
      await useImmutableFlag();
      config.immutableFlag = true;
    }
    // The key file first: a config without a key would be a repository nobody can open.
    let keyFile: KeyFileBytes | undefined;
    if (encrypted) {
      const bytes = Buffer.from(JSON.stringify(await wrapMasterKey(master, options.password!)));
      keyFile = { id: objectHash(bytes), bytes };
      await backend.put(objectKey('keys', keyFile.id), bytes);
    }
    const { created } = await backend.put(CONFIG_KEY, Buffer.from(JSON.stringify(config, null, 2) + '\n'));
    if (!created) throw new StackvaultError(`a repository already exists at ${backend.location}`);
    const repo = new Repository(backend, config, master, await localExtras(backend));
    // As if opened with the key it was made with: the CLI keeps that key file for the next command.
    if (keyFile) repo.openedWith = { keyFile, listed: new Set([keyFile.id]) };
    return repo;
  }

  /**
   * Open a repository; a password is needed only when it is encrypted. `password` may be a
   * function that asks for it (a prompt), called only then. `passwordHint` says where this
   * repository's password is given, for the error when there is none.
   */
  static async open(
    backend: Backend,
    password: string | undefined | (() => Promise<string | undefined>),
    passwordHint = 'give its password in STACKVAULT_PASSWORD, STACKVAULT_PASSWORD_FILE or --password-file',
  ): Promise<Repository> {
    // The key files are listed meanwhile: over a network, one round trip fewer. So are the
    // snapshots and the index, which are read next (through rclone, three round trips
    // earlier than once the key file is read). Through rclone they began before the
    // command loaded (see cli/prestart.ts); a read older than EarlyReads keeps is made now.
    const early = takeEarlyReads(backend) ?? new EarlyReads(backend, OBJECTS_IN_FLIGHT);
    const keyFiles = early.takeListing('keys') ?? collect(backend.list('keys/'));
    keyFiles.catch(() => undefined);
    // The first key file too, as soon as it is listed: most repositories have one, and
    // through rclone its read waited for the config's (50 ms a round trip). Not when its
    // bytes were read before the command loaded (deriveKeysEarly): then it is read only
    // if that guess fails.
    const firstKeyFile = earlyKeysWaiting() ? Promise.resolve(undefined) : keyFiles.then((infos) => (infos[0] ? backend.get(infos[0].key) : undefined));
    firstKeyFile.catch(() => undefined);
    let raw: Buffer;
    try {
      raw = await (early.takeObject(CONFIG_KEY) ?? backend.get(CONFIG_KEY));
    } catch (err) {
      // A missing bucket or folder may answer otherwise than a missing object: asked plainly.
      if (err instanceof ObjectNotFoundError || !(await backend.stat(CONFIG_KEY).catch(() => true))) throw new RepositoryNotFoundError(backend.location);
      if (err instanceof StackvaultError) throw err;
      throw new StackvaultError(`cannot open repository at ${backend.location}: ${errorMessage(err)}`);
    }
    let config: RepoConfig;
    try {
      config = JSON.parse(raw.toString('utf8')) as RepoConfig;
    } catch {
      throw new IntegrityError(`the config of the repository at ${backend.location} is damaged (not JSON)`);
    }
    if (config.version > FORMAT_VERSION) {
      throw new StackvaultError(`the repository at ${backend.location} has format version ${config.version}; this stackvault reads up to ${FORMAT_VERSION}`);
    }
    await (await backendExtra(backend, 'useImmutability'))?.(config.immutabilityDays);
    // Every writer flags what it stores, as the repository was made to.
    if (config.immutableFlag) await (await backendExtra(backend, 'useImmutableFlag'))?.({ readOnly: true });
    const extras = await localExtras(backend);
    if (config.encryption === 'none') {
      if (!config.plainKeys) throw new IntegrityError(`the config of the repository at ${backend.location} has no keys`);
      return new Repository(
        backend,
        config,
        {
          encryptionKey: null,
          idKey: Buffer.from(config.plainKeys.idKey, 'base64'),
          chunkerSeed: Buffer.from(config.plainKeys.chunkerSeed, 'base64'),
        },
        extras,
        early,
      );
    }
    const given = typeof password === 'function' ? await password() : password;
    if (given === undefined) throw new UsageError(`the repository at ${backend.location} is encrypted: ${passwordHint}`);
    const listed = await keyFiles;
    const listedIds = new Set(listed.map((info) => idFromKey(info.key)));
    const opened = (keyFile: KeyFileBytes, master: MasterKey): Repository => {
      const repo = new Repository(backend, config, master, extras, early);
      repo.openedWith = { keyFile, listed: listedIds };
      return repo;
    };
    // Keys derived while the command loaded (deriveKeysEarly) count only for key files
    // this repository lists: their ids are the hashes of their bytes.
    const tried = new Set<string>();
    for (const info of listed) {
      const id = idFromKey(info.key);
      const derived = takeEarlyKey(id, given);
      if (!derived || derived.keyFile.bytes.length !== info.size) continue;
      tried.add(id);
      const master = await derived.master;
      if (master) return opened(derived.keyFile, master);
    }
    for (const [i, info] of listed.entries()) {
      const id = idFromKey(info.key);
      if (tried.has(id)) continue;
      const bytes = (i === 0 ? await firstKeyFile : undefined) ?? (await backend.get(info.key));
      const master = await unwrapMasterKey(JSON.parse(bytes.toString('utf8')) as KeyFile, given);
      if (master) return opened({ id, bytes }, master);
    }
    throw new WrongPasswordError(backend.location);
  }

  /** Add a key file so that another passphrase opens the repository too. */
  async addKey(password: string): Promise<string> {
    if (!this.master.encryptionKey) throw new UsageError('the repository is not encrypted: it has no keys');
    const keyFile = Buffer.from(JSON.stringify(await wrapMasterKey(this.master, password)));
    const id = objectHash(keyFile);
    await this.backend.put(objectKey('keys', id), keyFile);
    return id;
  }

  /** The key files, each with who made it and when; the one whose password opened this repository is `current`. */
  async listKeys(): Promise<KeyInfo[]> {
    const out: KeyInfo[] = [];
    for (const info of await this.listObjects('keys')) {
      const id = idFromKey(info.key);
      let file: Partial<KeyFile> = {};
      try {
        file = JSON.parse((await this.backend.get(info.key)).toString('utf8')) as KeyFile;
      } catch (err) {
        this.reportDamage(info.key, err);
      }
      out.push({ id, created: file.created ?? info.created.toISOString(), host: file.host ?? '?', username: file.username ?? '?', current: id === this.openedWithKey, stored: info.created });
    }
    return out.sort((a, b) => a.created.localeCompare(b.created));
  }

  /**
   * Remove a key file: never the last one, not the one in use unless `evenCurrent` (a
   * password change, once the new key is stored), and never before the storage's immutability period has passed
   * for it. Returns the full id removed.
   */
  async removeKey(idOrPrefix: string, options: { evenCurrent?: boolean } = {}): Promise<string> {
    const keys = await this.listKeys();
    const matches = keys.filter((k) => k.id.startsWith(idOrPrefix));
    if (matches.length === 0) throw new UsageError(`no key ${idOrPrefix} in the repository at ${this.backend.location} (see "stackvault key list")`);
    if (matches.length > 1) throw new UsageError(`${idOrPrefix} names ${matches.length} keys: give more of the id`);
    const key = matches[0]!;
    if (keys.length === 1) throw new UsageError(`key ${key.id.slice(0, 8)} is the repository's only key: without it nobody could open the repository`);
    if (key.current && !options.evenCurrent) throw new UsageError(`key ${key.id.slice(0, 8)} is the one this password opens: open the repository with another key's password to remove it`);
    const until = new Date(key.stored.getTime() + this.config.immutabilityDays * 86_400_000);
    if (until.getTime() > Date.now()) {
      throw new UsageError(`key ${key.id.slice(0, 8)} is immutable until ${until.toISOString()} (the repository's ${this.config.immutabilityDays}-day period): remove it after that`);
    }
    await this.backend.delete(objectKey('keys', key.id));
    return key.id;
  }

  // ---- whole objects: index files, snapshots, forget records ----

  encodeObject(value: unknown): Buffer {
    const json = Buffer.from(JSON.stringify(value));
    const body = Buffer.concat([Uint8Array.of(1), compress(json, 'json')]);
    return seal(this.master.encryptionKey, body);
  }

  decodeObject<T>(bytes: Buffer, what: string): T {
    return parseObjectJson<T>(this.decodeObjectJson(bytes, what), what);
  }

  /** An object's JSON bytes, decrypted and decompressed, not parsed. */
  private decodeObjectJson(bytes: Buffer, what: string): Buffer {
    const body = unseal(this.master.encryptionKey, bytes, what);
    try {
      return body[0] === 1 ? decompress(body.subarray(1)) : body.subarray(1);
    } catch (err) {
      throw new IntegrityError(`${what} is damaged: ${errorMessage(err)}`);
    }
  }

  async saveObject(kind: Exclude<ObjectKind, 'data' | 'keys'>, value: unknown): Promise<string> {
    const bytes = this.encodeObject(value);
    const id = objectHash(bytes);
    await this.backend.put(objectKey(kind, id), bytes);
    return id;
  }

  async loadObject<T>(kind: Exclude<ObjectKind, 'data' | 'keys'>, id: string): Promise<T> {
    return parseObjectJson<T>(await this.loadObjectJson(kind, id), `${OBJECT_NAMES[kind]} ${id}`);
  }

  /** An object's JSON bytes, verified, decrypted and decompressed, for a reader that parses them itself. */
  async loadObjectJson(kind: Exclude<ObjectKind, 'data' | 'keys'>, id: string): Promise<Buffer> {
    const what = `${OBJECT_NAMES[kind]} ${id}`;
    const key = objectKey(kind, id);
    const bytes = await (this.early?.takeObject(key) ?? this.backend.get(key));
    if (objectHash(bytes) !== id) throw new IntegrityError(`${what} is damaged: its content does not match its name`);
    return this.decodeObjectJson(bytes, what);
  }

  /**
   * Several whole objects, fetched a few at a time: on S3 or Azure each is a round trip,
   * and a repository holds one index file per backup. Each result is the object or the
   * error loading it gave, in the order of `ids`.
   */
  loadObjects<T>(kind: Exclude<ObjectKind, 'data' | 'keys'>, ids: readonly string[]): Promise<Array<T | LoadFailure>> {
    return mapConcurrent(ids, OBJECTS_IN_FLIGHT, (id) => this.loadObject<T>(kind, id).catch((error: unknown) => new LoadFailure(error)));
  }

  async listObjects(kind: ObjectKind): Promise<ObjectInfo[]> {
    const early = this.early?.takeListing(kind);
    if (early) return early;
    this.early?.listedAfresh(kind);
    return collect(this.backend.list(`${kind}/`));
  }

  async listIds(kind: ObjectKind): Promise<string[]> {
    return (await this.listObjects(kind)).map((o) => idFromKey(o.key));
  }

  /** Record a damaged object once: it is skipped, and whoever watches is told. */
  reportDamage(key: string, err: unknown): void {
    if (this.damage.has(key)) return;
    const message = errorMessage(err);
    this.damage.set(key, message);
    this.onDamage?.(key, message);
  }

  /**
   * The objects loaded, in the order of `ids`, skipping what is damaged (reported) or gone
   * (deleted by prune since the listing). Any other failure, such as an unreachable
   * server, is thrown: only proven damage may be skipped.
   */
  async loadIntact<T>(kind: Exclude<ObjectKind, 'data' | 'keys'>, ids: readonly string[]): Promise<Array<{ id: string; value: T }>> {
    const loaded = await this.loadObjects<T>(kind, ids);
    const out: Array<{ id: string; value: T }> = [];
    for (const [i, id] of ids.entries()) {
      const result = loaded[i]!;
      if (!(result instanceof LoadFailure)) out.push({ id, value: result });
      else if (result.error instanceof IntegrityError) this.reportDamage(objectKey(kind, id), result.error);
      else if (!(result.error instanceof ObjectNotFoundError)) throw result.error;
    }
    return out;
  }

  // ---- index ----

  /**
   * Load every index file once, dropping those that a newer index supersedes. A damaged
   * index file is reported and skipped: its packs are missing from the index until
   * `repair index` writes one that lists them again (and supersedes the damaged file).
   */
  async loadIndex(): Promise<void> {
    if (this.indexLoaded) return;
    // Deletion records first: a blob stored twice then comes from the copy prune keeps.
    await this.refreshDeletions();
    await this.addIndexFiles(await this.listIds('index'));
    this.indexLoaded = true;
  }

  /** Load the index files written since the index was loaded (a long-lived process, such as the runner's console, sees new backups). */
  async refreshIndex(): Promise<void> {
    if (!this.indexLoaded) return this.loadIndex();
    await this.refreshDeletions();
    await this.addIndexFiles(await this.listIds('index'));
  }

  /**
   * Load the index files not loaded yet. An index file that vanished between the listing
   * and the read was deleted by prune, which deletes only superseded files: the files
   * superseding it are then listed again.
   */
  private async addIndexFiles(ids: readonly string[]): Promise<void> {
    const wanted = ids.filter((id) => !this.loadedIndexIds.has(id));
    /** index files that do not verify: damage, unless another index file replaces them */
    const damaged = new Map<string, unknown>();
    let vanished = false;
    // Each file goes into the index as it arrives: ten million blobs parsed all at once
    // would take gigabytes. A file superseded by one read later is withdrawn then.
    const superseding = (id: string, supersedes: readonly unknown[]) => {
      for (const s of supersedes) {
        if (typeof s !== 'string') continue;
        this.supersededIndexIds.add(s);
        this.index.supersede(s);
      }
      return !this.supersededIndexIds.has(id);
    };
    await mapConcurrent(wanted, OBJECTS_IN_FLIGHT, async (id) => {
      const what = `${OBJECT_NAMES.index} ${id}`;
      try {
        const json = await this.loadObjectJson('index', id);
        this.loadedIndexIds.add(id);
        if (this.index.addIndexFileJson(id, json, (supersedes) => superseding(id, supersedes)) !== 'other') return;
        // Laid out otherwise than this version writes: parsed as JSON.
        const file = parseObjectJson<IndexFile>(json, what);
        if (superseding(id, Array.isArray(file?.supersedes) ? file.supersedes : [])) this.index.addIndexFile(id, file);
      } catch (err) {
        if (err instanceof ObjectNotFoundError) vanished = true;
        else if (!(err instanceof IntegrityError)) throw err;
        else {
          // What it listed before the damage showed stays out of the index too.
          this.index.supersede(id);
          damaged.set(id, err);
        }
      }
    });
    // A damaged index file that `repair index` (or prune) has replaced is harmless: it waits for prune.
    for (const [id, err] of damaged) {
      this.loadedIndexIds.add(id);
      if (!this.supersededIndexIds.has(id)) this.reportDamage(objectKey('index', id), err);
    }
    if (vanished) {
      const again = (await this.listIds('index')).filter((id) => !this.loadedIndexIds.has(id));
      if (again.length > 0) await this.addIndexFiles(again);
    }
  }

  /**
   * Read deletion records not seen yet and doom their packs in the index. Returns the
   * new records. A damaged record is reported and skipped: prune cannot read it either,
   * so it never deletes the packs it names.
   */
  async refreshDeletions(): Promise<KnownDeletion[]> {
    const infos = (await this.listObjects('deletions')).filter((i) => !this.deletions.has(idFromKey(i.key)) && !this.damage.has(i.key));
    const listed = new Map(infos.map((i) => [idFromKey(i.key), i]));
    const found: KnownDeletion[] = [];
    for (const { id, value } of await this.loadIntact<DeletionRecord>('deletions', [...listed.keys()])) {
      if (!Array.isArray(value.packs)) {
        this.reportDamage(objectKey('deletions', id), new IntegrityError(`deletion record ${id} has an unknown format`));
        continue;
      }
      const known = { id, info: listed.get(id)!, packs: value.packs };
      this.deletions.set(id, known);
      this.index.doom(known.packs);
      found.push(known);
    }
    return found;
  }

  /** Deletion records read so far (refreshDeletions). */
  knownDeletions(): KnownDeletion[] {
    return [...this.deletions.values()];
  }

  /** index files read so far (damaged ones included): a new index may supersede these and no others */
  loadedIndexFiles(): string[] {
    return [...this.loadedIndexIds];
  }

  /** index files superseded by another, as read by loadIndex */
  supersededIndexFiles(): string[] {
    return [...this.supersededIndexIds];
  }

  // ---- blobs ----

  newBlobWriter(): BlobWriter {
    return new BlobWriter(this);
  }

  blobId(data: Uint8Array): string {
    return blobId(this.master.idKey, data);
  }

  /** Load, decrypt, decompress and verify one blob. Never returns data that does not hash to its id. */
  async loadBlob(id: string, expectedType?: BlobType): Promise<Buffer> {
    const { entry, stored } = await this.loadStoredBlob(id, expectedType);
    return this.decodeBlob(id, entry, stored);
  }

  /** A blob's length once loaded, from the index. */
  blobLength(id: string): number | undefined {
    return this.index.get(id)?.rawLength;
  }

  /** A blob's bytes as stored (encrypted, maybe compressed), not yet verified, and where they are. */
  async loadStoredBlob(id: string, expectedType?: BlobType): Promise<{ entry: IndexEntry; stored: Buffer }> {
    const entry = this.blobEntry(id, expectedType);
    if (this.packsAreLocal) return { entry, stored: await this.backend.get(objectKey('data', entry.pack), { offset: entry.offset, length: entry.length }) };
    this.packWindows ??= new PackWindows(this.backend, (packId) => this.blobsEnd(packId));
    return { entry, stored: await this.packWindows.read(entry.pack, entry.offset, entry.length) };
  }

  /** Where a pack's blobs end, by the index (its header follows). */
  private blobsEnd(packId: string): number {
    let end = this.packBlobsEnd.get(packId);
    if (end === undefined) {
      end = this.index.packBlobsEnd(packId) ?? 0;
      this.packBlobsEnd.set(packId, end);
    }
    return end;
  }

  /** Where a blob is stored; an IntegrityError if the index does not have it (as that type). */
  blobEntry(id: string, expectedType?: BlobType): IndexEntry {
    const entry = this.index.get(id);
    if (!entry) throw new IntegrityError(`blob ${id} is missing: no index entry (run "stackvault check")`);
    if (expectedType && entry.type !== expectedType) {
      throw new IntegrityError(`blob ${id} is a ${entry.type} blob, expected ${expectedType}`);
    }
    return entry;
  }

  /** A pack's blobs as its own header lists them: two ranged reads, whatever the index says. */
  async readPackHeader(packId: string, size: number): Promise<PackedBlob[]> {
    const key = objectKey('data', packId);
    const trailer = await this.backend.get(key, { offset: size - PACK_TRAILER_BYTES, length: PACK_TRAILER_BYTES });
    const headerLength = headerLengthFromTrailer(trailer, packId);
    const tailLength = Math.min(size, headerLength + PACK_TRAILER_BYTES);
    const tail = await this.backend.get(key, { offset: size - tailLength, length: tailLength });
    return parsePackHeader(tail, size, this.master.encryptionKey, packId);
  }

  /** Whether pack files can be read straight from this machine's file system (a folder repository). */
  get packsAreLocal(): boolean {
    return this.local.localFile !== undefined;
  }

  /** The file of a pack of a folder repository; undefined for other backends. */
  localPackFile(packId: string): string | undefined {
    return this.local.localFile?.(objectKey('data', packId));
  }

  /**
   * Pack files a restore's threads read blobs from: a folder repository's own, packs of a
   * network repository brought over as the restore says it will need them (see
   * PackSpool), or undefined where blobs are read through the backend.
   */
  async packFiles(spool: Pick<SpoolOptions, 'hashFile'> = {}): Promise<PackFiles | undefined> {
    const { localFile, downloadToFile } = this.local;
    if (localFile) return { take: (pack) => this.localPackFile(pack), release: () => undefined, close: async () => undefined };
    if (!downloadToFile) return undefined;
    return PackSpool.create(
      (pack) => this.blobsEnd(pack),
      (pack, file) => downloadToFile(objectKey('data', pack), file),
      spool,
    );
  }

  decodeBlob(id: string, entry: { pack: string; compressed: boolean; rawLength: number }, stored: Buffer): Buffer {
    return decodeBlob(this.master, id, entry, stored);
  }
}

type LocalExtras = Partial<Pick<BackendExtras, 'localFile' | 'downloadToFile'>>;

/** The extras that put packs on this machine's disk, used for every pack: looked up once at open. */
async function localExtras(backend: Backend): Promise<LocalExtras> {
  const [localFile, downloadToFile] = await Promise.all([backendExtra(backend, 'localFile'), backendExtra(backend, 'downloadToFile')]);
  return { localFile, downloadToFile };
}
