import { after, before } from 'node:test';
import { randomBytes } from 'node:crypto';
import { openBackend } from '../../src/repo/backends/open.js';
import { withRetries } from '../../src/repo/backends/retry.js';
import { S3Backend } from '../../src/repo/backends/s3.js';
import { backendContract } from '../support/backend-contract.js';
import { startS3rver, type StorageServer } from '../support/storage-servers.js';

let s3: StorageServer;
const env = () => ({ AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: s3.url });
before(async () => {
  s3 = await startS3rver(undefined, 'backups');
});
after(() => s3.stop());

backendContract('s3 (s3rver)', async () => openBackend(`s3://backups/${randomBytes(6).toString('hex')}`, { env: env() }));

backendContract('s3 (s3rver), multipart uploads', async () =>
  withRetries(
    new S3Backend({
      bucket: 'backups',
      prefix: randomBytes(6).toString('hex'),
      endpoint: s3.url,
      region: 'us-east-1',
      pathStyle: true,
      lockMode: 'GOVERNANCE',
      timeoutMs: 30_000,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      multipartAbove: 1 << 20,
      partSize: 5 << 20,
    }),
  ),
);
