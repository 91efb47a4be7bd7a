import { createHash, randomBytes } from 'node:crypto';
import type { BlobServiceClient as ServiceClient, ContainerClient } from '@azure/storage-blob';
import { azureSdk } from './azure-sdk.js';
import { ObjectNotFoundError, StackvaultError, UsageError, errorMessage } from '../../util/errors.js';
import type { Backend, ByteRange, ObjectInfo } from './backend.js';
import { alreadyStored, refuseIfNotEmpty, shortRead, streamToFile, truncated } from './objects.js';
import { TransientError, isTransientNetworkError, isTransientStatus, redact, untrustedCertificate } from './transient.js';

const { BlobServiceClient, RestError, StorageSharedKeyCredential } = azureSdk;

/** Blocks of a chunked upload: each is checked by the service against its MD5 on arrival. */
const BLOCK_BYTES = 4 * 1024 * 1024;

export interface AzureOptions {
  container: string;
  /** folder inside the container, "" for its root */
  prefix: string;
  /** a connection string (Azurite, or an account with a key or SAS); else account + key or SAS from env */
  connectionString?: string;
  account?: string;
  accountKey?: string;
  sasToken?: string;
  /** per-blob immutability policies: unlocked ones an account owner can still shorten, locked ones nobody can */
  policyMode: 'Unlocked' | 'Locked';
  /** per-request time limit */
  timeoutMs: number;
}

/**
 * Azure Blob Storage. Writes are put-if-absent (If-None-Match: * on the commit of a block
 * list whose blocks the service checked by MD5), so a failed upload never leaves a visible
 * blob. On a container with version-level WORM every blob gets an immutability policy for
 * the repository's period; a container with a time-based retention policy protects
 * everything by itself. Which of the two holds is checked when the repository is opened.
 */
export class AzureBackend implements Backend {
  readonly location: string;
  private readonly container: ContainerClient;
  private immutabilityDays = 0;
  private perBlobPolicy = false;

  constructor(private readonly options: AzureOptions) {
    this.location = `azure://${options.container}/${options.prefix}`.replace(/\/$/, '');
    const pipeline = { retryOptions: { maxTries: 1, tryTimeoutInMs: options.timeoutMs } };
    let service: ServiceClient;
    if (options.connectionString) {
      service = BlobServiceClient.fromConnectionString(options.connectionString, pipeline);
    } else if (options.account && options.accountKey) {
      service = new BlobServiceClient(`https://${options.account}.blob.core.windows.net`, new StorageSharedKeyCredential(options.account, options.accountKey), pipeline);
    } else if (options.account && options.sasToken) {
      service = new BlobServiceClient(`https://${options.account}.blob.core.windows.net?${options.sasToken.replace(/^\?/, '')}`, undefined, pipeline);
    } else {
      throw new UsageError(
        `repository ${this.location}: no Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN`,
      );
    }
    this.container = service.getContainerClient(options.container);
  }

  private blobName(key: string): string {
    return this.options.prefix ? `${this.options.prefix}/${key}` : key;
  }

  private fail(err: unknown, what: string): never {
    const untrusted = untrustedCertificate(err);
    if (untrusted) throw new StackvaultError(`${what} on ${this.location}: ${untrusted}`);
    const status = err instanceof RestError ? err.statusCode : undefined;
    const code = err instanceof RestError ? (err.code ?? '') : '';
    const message = `${what} on ${this.location}: ${redact(code ? `${code} (${status})` : errorMessage(err))}`;
    if ((err instanceof RestError && isTransientStatus(status) && status !== undefined) || isTransientNetworkError(err)) throw new TransientError(message);
    // No status: the request never got a whole answer (a cut body fails to parse, a socket fails to send).
    if (err instanceof RestError && status === undefined) throw new TransientError(message);
    if (status === 403) throw new StackvaultError(`${message}: the credentials may not do this`);
    throw new StackvaultError(message);
  }

  async prepare(): Promise<void> {
    try {
      await this.container.createIfNotExists();
    } catch (err) {
      this.fail(err, 'creating the container');
    }
    await refuseIfNotEmpty(this, 'container or folder');
  }

  async useImmutability(days: number): Promise<void> {
    this.immutabilityDays = days;
    if (days <= 0) return;
    let props;
    try {
      props = await this.container.getProperties();
    } catch (err) {
      this.fail(err, 'reading the container properties');
    }
    if (props.isImmutableStorageWithVersioningEnabled) {
      this.perBlobPolicy = true;
      return;
    }
    if (props.hasImmutabilityPolicy) return;
    throw new StackvaultError(
      `the repository at ${this.location} promises ${days} days of immutability, but container "${this.options.container}" has neither version-level immutability (WORM) nor a time-based retention policy: enable one in Azure, or create the repository with --immutability 0`,
    );
  }

  async put(key: string, data: Uint8Array): Promise<{ created: boolean }> {
    const blob = this.container.getBlockBlobClient(this.blobName(key));
    const upload = randomBytes(6).toString('hex');
    const blockIds: string[] = [];
    try {
      for (let offset = 0, n = 0; offset < data.length || n === 0; offset += BLOCK_BYTES, n++) {
        const block = data.subarray(offset, offset + BLOCK_BYTES);
        const id = Buffer.from(`${upload}-${String(n).padStart(6, '0')}`).toString('base64');
        await blob.stageBlock(id, block, block.length, { transactionalContentMD5: md5(block) });
        blockIds.push(id);
      }
      await blob.commitBlockList(blockIds, {
        conditions: { ifNoneMatch: '*' },
        blobHTTPHeaders: { blobContentMD5: md5(data), blobContentType: 'application/octet-stream' },
        ...(this.perBlobPolicy ? { immutabilityPolicy: { expiriesOn: new Date(Date.now() + this.immutabilityDays * 86_400_000), policyMode: this.options.policyMode } } : {}),
      });
      return { created: true };
    } catch (err) {
      if (err instanceof RestError && (err.statusCode === 409 || err.statusCode === 412)) {
        const info = await this.stat(key);
        if (info) return alreadyStored(this.location, key, info.size, data.length);
      }
      this.fail(err, `storing ${key}`);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const blob = this.container.getBlobClient(this.blobName(key));
    let body: Buffer;
    let contentMD5: Uint8Array | undefined;
    try {
      const response = range ? await blob.download(range.offset, range.length) : await blob.download();
      contentMD5 = range ? undefined : response.blobContentMD5 ?? response.contentMD5;
      body = await readAll(response.readableStreamBody);
    } catch (err) {
      if (err instanceof RestError && err.statusCode === 416 && range) throw truncated(this.location, key, range);
      if (err instanceof RestError && err.statusCode === 404) throw new ObjectNotFoundError(key, this.location);
      this.fail(err, `reading ${key}`);
    }
    if (range && body.length !== range.length) await shortRead(this, key, range, body.length);
    if (contentMD5 && !Buffer.from(contentMD5).equals(md5(body))) {
      throw new TransientError(`reading ${key} from ${this.location}: the content does not match its MD5 (damaged in transit)`);
    }
    return body;
  }

  /** The whole blob streamed into a file (BackendExtras.downloadToFile), its MD5 checked as get() checks it. */
  async downloadToFile(key: string, path: string): Promise<void> {
    const hash = createHash('md5');
    let contentMD5: Uint8Array | undefined;
    try {
      const response = await this.container.getBlobClient(this.blobName(key)).download();
      contentMD5 = response.blobContentMD5 ?? response.contentMD5;
      const bytes = await streamToFile(response.readableStreamBody!, path, hash);
      if (response.contentLength !== undefined && bytes !== response.contentLength) {
        throw new TransientError(`reading ${key} from ${this.location}: the answer was cut short (${bytes} of ${response.contentLength} bytes)`);
      }
    } catch (err) {
      if (err instanceof TransientError) throw err;
      if (err instanceof RestError && err.statusCode === 404) throw new ObjectNotFoundError(key, this.location);
      this.fail(err, `reading ${key}`);
    }
    if (contentMD5 && !Buffer.from(contentMD5).equals(hash.digest())) {
      throw new TransientError(`reading ${key} from ${this.location}: the content does not match its MD5 (damaged in transit)`);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const props = await this.container.getBlobClient(this.blobName(key)).getProperties();
      return { key, size: props.contentLength ?? 0, created: props.createdOn ?? props.lastModified ?? new Date(0) };
    } catch (err) {
      if (err instanceof RestError && err.statusCode === 404) return undefined;
      this.fail(err, `looking up ${key}`);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const strip = this.options.prefix ? this.options.prefix.length + 1 : 0;
    const pages = this.container.listBlobsFlat({ prefix: this.blobName(prefix) }).byPage({ maxPageSize: 5000 });
    for (;;) {
      let page;
      try {
        page = await pages.next();
      } catch (err) {
        this.fail(err, `listing ${prefix}`);
      }
      if (page.done) return;
      for (const item of page.value.segment.blobItems) {
        yield { key: item.name.slice(strip), size: item.properties.contentLength ?? 0, created: item.properties.createdOn ?? item.properties.lastModified };
      }
    }
  }

  /** Only per-blob policies need extending; a container-level policy covers every blob by itself. */
  async extendRetention(key: string, until: Date): Promise<void> {
    if (!this.perBlobPolicy) return;
    try {
      await this.container.getBlobClient(this.blobName(key)).setImmutabilityPolicy({ expiriesOn: until, policyMode: this.options.policyMode });
    } catch (err) {
      this.fail(err, `extending the immutability policy of ${key}`);
    }
  }

  /** The SDK keeps no helper and no connection that would hold the process open. */
  async close(): Promise<void> {}

  async delete(key: string): Promise<void> {
    try {
      await this.container.getBlobClient(this.blobName(key)).deleteIfExists();
    } catch (err) {
      this.fail(err, `deleting ${key}`);
    }
  }
}

function md5(data: Uint8Array): Buffer {
  return createHash('md5').update(data).digest();
}

async function readAll(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  if (!stream) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}
