import { createHash } from 'node:crypto';
import type { S3Client as Client } from '@aws-sdk/client-s3';
import { s3Sdk } from './s3-sdk.js';
import { jitteredBackoff, retry } from '../../util/retry.js';
import { ObjectNotFoundError, StackvaultError, UsageError, errorMessage } from '../../util/errors.js';
import type { Backend, ByteRange, ObjectInfo } from './backend.js';
import { PerKeyQueue, alreadyStored, refuseIfNotEmpty, shortRead, streamToFile, truncated } from './objects.js';
import { TransientError, isTransientNetworkError, isTransientStatus, redact, untrustedCertificate } from './transient.js';

const {
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectRetentionCommand,
  S3Client,
  S3ServiceException,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
} = s3Sdk;

const MULTIPART_ABOVE = 64 * 1024 * 1024;
const PART_SIZE = 16 * 1024 * 1024;
const PART_ATTEMPTS = 5;

export interface S3Options {
  bucket: string;
  /** folder inside the bucket, "" for its root */
  prefix: string;
  /** another S3 service than AWS (MinIO, Ceph, Wasabi, a test server) */
  endpoint?: string;
  region: string;
  /** bucket in the path instead of the host name: what most non-AWS services want */
  pathStyle: boolean;
  /** Object Lock mode for every object: GOVERNANCE can be lifted with a special permission, COMPLIANCE by nobody */
  lockMode: 'GOVERNANCE' | 'COMPLIANCE';
  timeoutMs: number;
  /** objects larger than this go up in parts of partSize, each checked and retried on its own */
  multipartAbove?: number;
  partSize?: number;
  /** keys given explicitly; otherwise the SDK's chain (environment, profile, instance role) */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/**
 * Amazon S3 and S3-compatible services. Writes are put-if-absent (If-None-Match: *, and a
 * HEAD first, so a service that ignores the condition still never gets an overwrite from
 * us) with a SHA-256 checksum the service verifies. When the repository promises
 * immutability the bucket must have Object Lock, and every object is written with a
 * retain-until date; `extendRetention` moves that date for objects still needed.
 */
export class S3Backend implements Backend {
  readonly location: string;
  private readonly client: Client;
  private immutabilityDays = 0;
  private readonly uploads = new PerKeyQueue();

  constructor(private readonly options: S3Options) {
    this.location = `s3://${options.bucket}/${options.prefix}`.replace(/\/$/, '');
    this.client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.pathStyle,
      credentials: options.credentials,
      maxAttempts: 1,
      requestHandler: { requestTimeout: options.timeoutMs, connectionTimeout: Math.min(options.timeoutMs, 10_000) },
      // The checksum we send is the one the service verifies; no second, streaming one.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_SUPPORTED',
    });
  }

  private objectKey(key: string): string {
    return this.options.prefix ? `${this.options.prefix}/${key}` : key;
  }

  private fail(err: unknown, what: string): never {
    const untrusted = untrustedCertificate(err);
    if (untrusted) throw new StackvaultError(`${what} on ${this.location}: ${untrusted}`);
    const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
    const name = err instanceof S3ServiceException ? err.name : '';
    const message = `${what} on ${this.location}: ${redact(name ? `${name} (${status ?? 'no status'})` : errorMessage(err))}`;
    if ((status !== undefined && isTransientStatus(status)) || isTransientNetworkError(err)) throw new TransientError(message);
    // An answer the SDK could not even parse (cut short, garbled on the way) is worth another try.
    if (!(err instanceof S3ServiceException) && /parse error|unexpected (content|end)|deserializ/i.test(errorMessage(err))) throw new TransientError(message);
    if (name === 'CredentialsProviderError' || (err as Error).name === 'CredentialsProviderError') {
      throw new UsageError(`${what} on ${this.location}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)`);
    }
    if (status === 403) throw new StackvaultError(`${message}: the credentials may not do this`);
    if (name === 'NoSuchBucket') throw new UsageError(`${what} on ${this.location}: bucket "${this.options.bucket}" does not exist`);
    throw new StackvaultError(message);
  }

  async prepare(): Promise<void> {
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.options.bucket }));
    } catch (err) {
      const name = err instanceof S3ServiceException ? err.name : '';
      // An existing bucket is the usual case: buckets with Object Lock are made by an administrator.
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists' && !(err instanceof S3ServiceException && err.$metadata.httpStatusCode === 409)) {
        this.fail(err, 'creating the bucket');
      }
    }
    await refuseIfNotEmpty(this, 'bucket or folder');
  }

  async useImmutability(days: number): Promise<void> {
    this.immutabilityDays = days;
    if (days <= 0) return;
    let enabled = false;
    try {
      const lock = await this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.options.bucket }));
      enabled = lock.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
    } catch (err) {
      const name = err instanceof S3ServiceException ? err.name : '';
      if (name !== 'ObjectLockConfigurationNotFoundError' && name !== 'NotImplemented' && name !== 'InvalidRequest') this.fail(err, 'reading the Object Lock configuration');
    }
    if (!enabled) {
      throw new StackvaultError(
        `the repository at ${this.location} promises ${days} days of immutability, but bucket "${this.options.bucket}" has no Object Lock: create the bucket with Object Lock enabled, or create the repository with --immutability 0`,
      );
    }
  }

  private retainUntil(): Date {
    return new Date(Date.now() + this.immutabilityDays * 86_400_000);
  }

  async put(key: string, data: Uint8Array): Promise<{ created: boolean }> {
    return this.uploads.run(key, () => this.upload(key, data));
  }

  private async upload(key: string, data: Uint8Array): Promise<{ created: boolean }> {
    const existing = await this.stat(key);
    if (existing) return alreadyStored(this.location, key, existing.size, data.length);
    try {
      if (data.length > (this.options.multipartAbove ?? MULTIPART_ABOVE)) {
        await this.putInParts(key, data);
        return { created: true };
      }
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.options.bucket,
          Key: this.objectKey(key),
          Body: data,
          ContentLength: data.length,
          IfNoneMatch: '*',
          ChecksumSHA256: createHash('sha256').update(data).digest('base64'),
          ...(this.immutabilityDays > 0 ? { ObjectLockMode: this.options.lockMode, ObjectLockRetainUntilDate: this.retainUntil() } : {}),
        }),
      );
      return { created: true };
    } catch (err) {
      const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
      if (status === 412 || status === 409) {
        const info = await this.stat(key);
        if (info) return alreadyStored(this.location, key, info.size, data.length);
      }
      this.fail(err, `storing ${key}`);
    }
  }

  /**
   * A multipart upload: parts carry their own SHA-256 and are retried one by one, and the
   * object appears only when the upload is completed with If-None-Match: *. A failed
   * upload is aborted, so its parts never linger (they were never an object).
   */
  private async putInParts(key: string, data: Uint8Array): Promise<void> {
    const Bucket = this.options.bucket;
    const Key = this.objectKey(key);
    const partSize = this.options.partSize ?? PART_SIZE;
    const { UploadId } = await this.client.send(
      new CreateMultipartUploadCommand({
        Bucket,
        Key,
        ChecksumAlgorithm: 'SHA256',
        ...(this.immutabilityDays > 0 ? { ObjectLockMode: this.options.lockMode, ObjectLockRetainUntilDate: this.retainUntil() } : {}),
      }),
    );
    try {
      const parts: Array<{ PartNumber: number; ETag?: string; ChecksumSHA256?: string }> = [];
      for (let offset = 0, PartNumber = 1; offset < data.length; offset += partSize, PartNumber++) {
        const body = data.subarray(offset, offset + partSize);
        const ChecksumSHA256 = createHash('sha256').update(body).digest('base64');
        const { ETag } = await retry(() => this.client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: body, ContentLength: body.length, ChecksumSHA256 })), {
          attempts: PART_ATTEMPTS,
          retryable: (err) => {
            const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
            return (status !== undefined && isTransientStatus(status)) || isTransientNetworkError(err);
          },
          delayMs: jitteredBackoff(400),
        });
        parts.push({ PartNumber, ETag, ChecksumSHA256 });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, IfNoneMatch: '*', MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    let body: Buffer;
    try {
      const response = await this.client.send(
        new GetObjectCommand({
          Bucket: this.options.bucket,
          Key: this.objectKey(key),
          ...(range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : { ChecksumMode: 'ENABLED' }),
        }),
      );
      body = Buffer.from(await response.Body!.transformToByteArray());
      if (response.ContentLength !== undefined && body.length !== response.ContentLength) {
        throw new TransientError(`reading ${key} from ${this.location}: the answer was cut short (${body.length} of ${response.ContentLength} bytes)`);
      }
    } catch (err) {
      if (err instanceof TransientError) throw err;
      const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
      if (status === 416 && range) throw truncated(this.location, key, range);
      if (status === 404) throw new ObjectNotFoundError(key, this.location);
      this.fail(err, `reading ${key}`);
    }
    if (range && body.length !== range.length) await shortRead(this, key, range, body.length);
    return body;
  }

  /** The whole object streamed into a file (BackendExtras.downloadToFile): a restore reads packs from there. */
  async downloadToFile(key: string, path: string): Promise<void> {
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key), ChecksumMode: 'ENABLED' }));
      const bytes = await streamToFile(response.Body as NodeJS.ReadableStream, path);
      if (response.ContentLength !== undefined && bytes !== response.ContentLength) {
        throw new TransientError(`reading ${key} from ${this.location}: the answer was cut short (${bytes} of ${response.ContentLength} bytes)`);
      }
    } catch (err) {
      if (err instanceof TransientError) throw err;
      const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
      if (status === 404) throw new ObjectNotFoundError(key, this.location);
      this.fail(err, `reading ${key}`);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }));
      return { key, size: head.ContentLength ?? 0, created: head.LastModified ?? new Date(0) };
    } catch (err) {
      const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
      if (status === 404) return undefined;
      this.fail(err, `looking up ${key}`);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const strip = this.options.prefix ? this.options.prefix.length + 1 : 0;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: this.objectKey(prefix), ContinuationToken: token }));
      } catch (err) {
        this.fail(err, `listing ${prefix}`);
      }
      for (const item of page.Contents ?? []) {
        yield { key: item.Key!.slice(strip), size: item.Size ?? 0, created: item.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      this.fail(err, `deleting ${key}`);
    }
  }

  /** Move an object's retain-until date to `until` (Object Lock only ever lets it grow). */
  async extendRetention(key: string, until: Date): Promise<void> {
    try {
      await this.client.send(
        new PutObjectRetentionCommand({ Bucket: this.options.bucket, Key: this.objectKey(key), Retention: { Mode: this.options.lockMode, RetainUntilDate: until } }),
      );
    } catch (err) {
      this.fail(err, `extending the retention of ${key}`);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
