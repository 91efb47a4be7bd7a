import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Backend, ObjectInfo } from '../../src/repo/backends/backend.js';
import { openBackend, type OpenOptions } from '../../src/repo/backends/open.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { check } from '../../src/snapshot/maintenance/check.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { StackvaultError } from '../../src/util/errors.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { makeRichTree, tempDir } from '../support/helpers.js';
import { AZURITE_KEY, azuriteConnectionString, startAzurite, startRcloneServe, startS3rver } from '../support/storage-servers.js';

/** Quick retries and short time limits, so a test meets many faults in a few seconds. */
const impatient: OpenOptions = { timeoutMs: 1500, retry: { attempts: 10, baseDelayMs: 5, maxDelayMs: 100 } };

async function listing(backend: Backend): Promise<Map<string, ObjectInfo>> {
  const out = new Map<string, ObjectInfo>();
  for await (const info of backend.list('')) out.set(info.key, info);
  return out;
}

/**
 * Under faults a backup completes or fails with a clear error; a later backup (still under
 * a lighter rain of faults) succeeds; check reads every byte; restore is byte-equal; and no
 * object that existed before a backup is changed or removed by it.
 */
async function underFaults(t: TestContext, proxy: FaultProxy, open: () => Backend, options: { deletesBrokenUploads?: boolean } = {}): Promise<void> {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await makeRichTree(source);
  const sources = [{ name: 'data', path: source, exclusionClasses: {} }];

  proxy.rate = 0;
  const backend = open();
  t.after(() => backend.close?.());
  await Repository.init(backend, { password: 'pw', immutabilityDays: 0, packSize: 1 << 20 });

  proxy.rate = 0.3;
  try {
    await backup(await Repository.open(backend, 'pw'), { sources });
  } catch (err) {
    assert.ok(err instanceof StackvaultError, `a clear error, not ${String(err)}`);
    if (process.env.SV_DEBUG) console.error("first backup failed:", err.message);
    assert.match(err.message, /failed \d+ times|on (azure|s3|rclone):/);
  }
  proxy.rate = 0;
  const before = await listing(backend);

  proxy.rate = 0.1;
  const saved = await backup(await Repository.open(backend, 'pw'), { sources });
  assert.equal(saved.errorCount, 0);
  proxy.rate = 0;
  const after = await listing(backend);
  for (const [key, info] of before) {
    const now = after.get(key);
    assert.ok(now, `${key} is still there`);
    assert.equal(now.size, info.size, `${key} kept its size`);
    assert.equal(now.created.getTime(), info.created.getTime(), `${key} was not written again`);
  }
  // rclone's WebDAV may show a half-written file after a cut upload, which stackvault removes; nothing else is ever deleted.
  if (!options.deletesBrokenUploads) assert.deepEqual(proxy.forwarded.filter((r) => r.method === 'DELETE'), [], 'backups delete nothing');

  // Reading goes on under faults too: check reads every pack, restore every blob.
  proxy.rate = 0.1;
  const repo = await Repository.open(backend, 'pw');
  const checked = await check(repo, { readData: true });
  assert.deepEqual(checked.errors, []);
  const target = join(dir, 'target');
  const restored = await restore(repo, { id: saved.id, snapshot: saved.snapshot }, { target });
  proxy.rate = 0;
  assert.deepEqual(restored.errors, []);
  assert.deepEqual((await compareTrees(source, join(target, 'data'), { owners: false })).differences, []);
  // How many depends on timing (which requests meet the seeded faults); the issue asks for about 10 to 40.
  // Restores send few requests (a pack in a few windows): when the faults fell short of
  // 10, more checks read everything again under faults, so every run meets enough of them.
  const injectedSoFar = () => Object.values(proxy.injected).reduce((a, b) => a + b, 0);
  for (let round = 0; injectedSoFar() < 10 && round < 5; round++) {
    proxy.rate = 0.2;
    const again = await check(repo, { readData: true });
    proxy.rate = 0;
    assert.deepEqual(again.errors, []);
  }
  const injected = injectedSoFar();
  if (process.env.SV_DEBUG) console.error("faults injected:", JSON.stringify(proxy.injected));
  assert.ok(injected >= 10, `faults were injected: ${JSON.stringify(proxy.injected)}`);
}

test('Azure: backups survive dropped connections, 503s, cut bodies and stalls', async (t) => {
  const azurite = await startAzurite(t);
  const proxy = await startFaultProxy(azurite.url, { seed: 7, rate: 0 });
  t.after(() => proxy.stop());
  await underFaults(t, proxy, () => openBackend(`azure://faults/repo`, { ...impatient, env: { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(proxy.url) } }));
});

test('S3: backups survive dropped connections, 503s, cut bodies and stalls', async (t) => {
  const s3 = await startS3rver(t, 'faults');
  const proxy = await startFaultProxy(s3.url, { seed: 11, rate: 0 });
  t.after(() => proxy.stop());
  await underFaults(t, proxy, () =>
    openBackend('s3://faults/repo', { ...impatient, env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: proxy.url } }),
  );
});

test('rclone (WebDAV): backups survive dropped connections, 503s, cut bodies and stalls', async (t) => {
  const dav = await startRcloneServe(t, 'webdav', 'faulty');
  const proxy = await startFaultProxy(dav.url, { seed: 13, rate: 0 });
  t.after(() => proxy.stop());
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...dav.env, RCLONE_CONFIG_FAULTY_URL: proxy.url };
  await underFaults(t, proxy, () => openBackend('rclone:faulty:repo', { ...impatient, timeoutMs: 20_000, env }), { deletesBrokenUploads: true });
});

test('a repository that promises immutability is refused where the storage cannot enforce it, and nothing is written', async (t) => {
  const [azurite, s3] = await Promise.all([startAzurite(t), startS3rver(t, 'nolock')]);
  const azure = openBackend(`azure://c${randomBytes(4).toString('hex')}/repo`, { env: { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(azurite.url) } });
  await assert.rejects(Repository.init(azure, { password: 'pw', immutabilityDays: 30 }), /promises 30 days of immutability, but container "c[0-9a-f]+" has neither version-level immutability/);
  assert.equal((await listing(azure)).size, 0);
  const bucket = openBackend('s3://nolock/repo', { env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: s3.url } });
  await assert.rejects(Repository.init(bucket, { password: 'pw', immutabilityDays: 30 }), /promises 30 days of immutability, but bucket "nolock" has no Object Lock/);
  assert.equal((await listing(bucket)).size, 0);
});

test('credentials never appear in errors', async (t) => {
  const azurite = await startAzurite(t);
  const wrongKey = Buffer.from('not the key, but a secret all the same').toString('base64');
  const connection = azuriteConnectionString(azurite.url).replace(AZURITE_KEY, wrongKey);
  const azure = openBackend('azure://secrets/repo', { ...impatient, env: { AZURE_STORAGE_CONNECTION_STRING: connection } });
  const err = await Repository.init(azure, { password: 'pw', immutabilityDays: 0 }).then(
    () => assert.fail('a wrong key must not work'),
    (e: unknown) => e as Error,
  );
  assert.ok(err instanceof StackvaultError);
  assert.ok(!err.message.includes(wrongKey) && !err.message.includes(AZURITE_KEY), err.message);
  assert.match(err.message, /azure:\/\/secrets\/repo/);

  const unreachable = openBackend('s3://bucket/repo', { ...impatient, retry: { attempts: 2, baseDelayMs: 1 }, env: { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'top-secret-value', AWS_ENDPOINT_URL: 'http://127.0.0.1:9' } });
  const s3err = await Repository.open(unreachable, 'pw').then(
    () => assert.fail('nothing listens there'),
    (e: unknown) => e as Error,
  );
  assert.ok(s3err instanceof StackvaultError);
  assert.match(s3err.message, /s3:\/\/bucket\/repo/);
  assert.ok(!s3err.message.includes('top-secret-value'), s3err.message);

  // An rclone remote given on the fly carries its password in the location.
  const onTheFly = openBackend('rclone::sftp,host=127.0.0.1,port=9,user=bob,pass=top-secret-value:backups');
  assert.equal(onTheFly.location, 'rclone::sftp,host=127.0.0.1,port=9,user=bob,pass=***:backups');
});

test('a listing cut short is read again, on Azure and S3', async (t) => {
  const [azurite, s3] = await Promise.all([startAzurite(t), startS3rver(t, 'cut')]);
  for (const [server, open] of [
    [azurite, (url: string) => openBackend('azure://cut/repo', { ...impatient, env: { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(url) } })],
    [s3, (url: string) => openBackend('s3://cut/repo', { ...impatient, env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: url } })],
  ] as const) {
    const proxy = await startFaultProxy(server.url, { seed: 5, rate: 0 });
    t.after(() => proxy.stop());
    const backend = open(proxy.url);
    await backend.prepare();
    for (let i = 0; i < 30; i++) await backend.put(`index/${String(i).padStart(4, '0')}`, Buffer.from(`index file ${i}`));
    const cut = await startFaultProxy(server.url, { seed: 5, rate: 1, faults: ['truncate'], budget: 2 });
    t.after(() => cut.stop());
    assert.equal((await listing(open(cut.url))).size, 30);
    assert.equal(cut.injected.truncate, 2);
  }
});
