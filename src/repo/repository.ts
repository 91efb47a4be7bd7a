import { randomBytes } from 'node:crypto';
import { IntegrityError, RepositoryNotFoundError, StackvaultError, UsageError, WrongPasswordError, errorMessage } from '../util/errors.js';
import type { Backend, ObjectInfo } from './backends/backend.js';
import { BlobWriter } from './blob-writer.js';
import { Chunker, DEFAULT_CHUNKER, type ChunkerParams } from './chunker.js';
import { compress, decompress } from './compression.js';
import { blobId, newMasterKey, objectHash, seal, unseal, unwrapMasterKey, wrapMasterKey, type KeyFile, type MasterKey } from './crypto.js';
import { MasterIndex, decodeIndexFile, type IndexEntry, type IndexFile } from './index.js';
import { CONFIG_KEY, idFromKey, objectKey, type ObjectKind } from './layout.js';
import type { BlobType } from './pack.js';
import { decodeBlob } from './pack-verify.js';
import { mapConcurrent } from '../util/concurrency.js';

/** whole objects (index files, snapshots) fetched at once */
const OBJECTS_IN_FLIGHT = 8;

/** An object that could not be loaded, among others that could (see Repository.loadObjects). */
export class LoadFailure {
  constructor(readonly error: unknown) {}
}

export const FORMAT_VERSION = 1;
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

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
}

export interface InitOptions {
  /** null for an unencrypted repository */
  password: string | null;
  immutabilityDays: number;
  packSize?: number;
  chunker?: ChunkerParams;
}

export class Repository {
  readonly index = new MasterIndex();
  readonly chunker: Chunker;
  private indexLoaded = false;
  /** stored index files that another index file supersedes (prune may delete them) */
  private readonly supersededIndexIds = new Set<string>();

  private constructor(
    readonly backend: Backend,
    readonly config: RepoConfig,
    readonly master: MasterKey,
  ) {
    this.chunker = new Chunker(master.chunkerSeed, config.chunker);
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
    await backend.useImmutability?.(options.immutabilityDays);
    // The key file first: a config without a key would be a repository nobody can open.
    if (encrypted) {
      const keyFile = Buffer.from(JSON.stringify(await wrapMasterKey(master, options.password!)));
      await backend.put(objectKey('keys', objectHash(keyFile)), keyFile);
    }
    const { created } = await backend.put(CONFIG_KEY, Buffer.from(JSON.stringify(config, null, 2) + '\n'));
    if (!created) throw new StackvaultError(`a repository already exists at ${backend.location}`);
    return new Repository(backend, config, master);
  }

  /** Open a repository; `password` is needed only when it is encrypted. */
  static async open(backend: Backend, password: string | undefined): Promise<Repository> {
    let raw: Buffer;
    try {
      if (!(await backend.stat(CONFIG_KEY))) throw new RepositoryNotFoundError(backend.location);
      raw = await backend.get(CONFIG_KEY);
    } catch (err) {
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
    await backend.useImmutability?.(config.immutabilityDays);
    if (config.encryption === 'none') {
      if (!config.plainKeys) throw new IntegrityError(`the config of the repository at ${backend.location} has no keys`);
      return new Repository(backend, config, {
        encryptionKey: null,
        idKey: Buffer.from(config.plainKeys.idKey, 'base64'),
        chunkerSeed: Buffer.from(config.plainKeys.chunkerSeed, 'base64'),
      });
    }
    if (password === undefined) {
      throw new UsageError(
        `the repository at ${backend.location} is encrypted: give its password in STACKVAULT_PASSWORD, STACKVAULT_PASSWORD_FILE or --password-file`,
      );
    }
    for await (const info of backend.list('keys/')) {
      const keyFile = JSON.parse((await backend.get(info.key)).toString('utf8')) as KeyFile;
      const master = await unwrapMasterKey(keyFile, password);
      if (master) return new Repository(backend, config, master);
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

  // ---- whole objects: index files, snapshots, forget records ----

  encodeObject(value: unknown): Buffer {
    const json = Buffer.from(JSON.stringify(value));
    const body = Buffer.concat([Uint8Array.of(1), compress(json)]);
    return seal(this.master.encryptionKey, body);
  }

  decodeObject<T>(bytes: Buffer, what: string): T {
    const body = unseal(this.master.encryptionKey, bytes, what);
    let json: Buffer;
    try {
      json = body[0] === 1 ? decompress(body.subarray(1)) : body.subarray(1);
      return JSON.parse(json.toString('utf8')) as T;
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
    const what = `${kind === 'snapshots' ? 'snapshot' : kind === 'forget' ? 'forget record' : 'index file'} ${id}`;
    const bytes = await this.backend.get(objectKey(kind, id));
    if (objectHash(bytes) !== id) throw new IntegrityError(`${what} is damaged: its content does not match its name`);
    return this.decodeObject<T>(bytes, what);
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
    const out: ObjectInfo[] = [];
    for await (const info of this.backend.list(`${kind}/`)) out.push(info);
    return out;
  }

  async listIds(kind: ObjectKind): Promise<string[]> {
    return (await this.listObjects(kind)).map((o) => idFromKey(o.key));
  }

  // ---- index ----

  /**
   * Load every index file once, dropping those that a newer index supersedes. A damaged
   * index file fails the load unless `onDamaged` takes it (check does, to report it).
   */
  async loadIndex(onDamaged?: (id: string, err: unknown) => void): Promise<void> {
    if (this.indexLoaded) return;
    const files = new Map<string, IndexFile>();
    const ids = await this.listIds('index');
    const loaded = await this.loadObjects<IndexFile>('index', ids);
    for (const [i, id] of ids.entries()) {
      const file = loaded[i]!;
      if (!(file instanceof LoadFailure)) files.set(id, file);
      else if (onDamaged) onDamaged(id, file.error);
      else throw file.error;
    }
    for (const file of files.values()) for (const s of file.supersedes ?? []) this.supersededIndexIds.add(s);
    for (const [id, file] of files) {
      if (this.supersededIndexIds.has(id)) continue;
      for (const [packId, blobs] of decodeIndexFile(file, id)) this.index.addPack(packId, blobs);
    }
    this.indexLoaded = true;
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
    return { entry, stored: await this.backend.get(objectKey('data', entry.pack), { offset: entry.offset, length: entry.length }) };
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

  /** Whether pack files can be read straight from this machine's file system (a folder repository). */
  get packsAreLocal(): boolean {
    return this.backend.localFile !== undefined;
  }

  /** The file holding a pack, when the repository is a local folder (see Backend.localFile). */
  packFile(packId: string): string | undefined {
    return this.backend.localFile?.(objectKey('data', packId));
  }

  decodeBlob(id: string, entry: { pack: string; compressed: boolean; rawLength: number }, stored: Buffer): Buffer {
    return decodeBlob(this.master, id, entry, stored);
  }
}
