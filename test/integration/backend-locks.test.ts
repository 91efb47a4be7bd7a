import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { openBackend } from '../../src/repo/backends/open.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { check } from '../../src/snapshot/maintenance/check.js';
import { planPrune } from '../../src/snapshot/maintenance/prune.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { extendRetentionOfKept } from '../../src/snapshot/maintenance/extend-retention.js';
import { forgetSnapshots } from '../../src/snapshot/snapshot.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { makeRichTree, tempDir } from '../support/helpers.js';
import { azuriteConnectionString, startAzurite, startS3rver } from '../support/storage-servers.js';

const DAY = 86_400_000;

/*
 * Neither test server enforces immutability: s3rver has no Object Lock, Azurite neither
 * reports version-level WORM nor sets blob policies. These tests put the fault proxy in
 * between, answer those few requests as the real services do, and check what stackvault
 * sends: every object written with its lock, and locks extended for what is still needed.
 */

test('S3 Object Lock: every object carries a retain-until, and extend-locks renews what kept snapshots need', async (t) => {
  const s3 = await startS3rver(t, 'locked');
  const proxy = await startFaultProxy(s3.url, {
    seed: 1,
    rate: 0,
    intercept: (method, path) => {
      if (method === 'GET' && /^\/locked\/?\?object-lock/.test(path)) {
        return { status: 200, headers: { 'content-type': 'application/xml' }, body: '<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>' };
      }
      if (method === 'PUT' && /\?retention/.test(path)) return { status: 200 };
      return undefined;
    },
  });
  t.after(() => proxy.stop());
  const backend = openBackend('s3://locked/repo?lock_mode=COMPLIANCE', { env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: proxy.url } });
  const dir = await tempDir(t);
  await makeRichTree(join(dir, 'a'), 1);
  await makeRichTree(join(dir, 'b'), 2);
  const started = Date.now();
  const repo = await Repository.init(backend, { password: 'pw', immutabilityDays: 30, packSize: 1 << 20 });
  const first = await backup(repo, { sources: [{ name: 'data', path: join(dir, 'a'), exclusionClasses: {} }] });
  await backup(repo, { sources: [{ name: 'data', path: join(dir, 'b'), exclusionClasses: {} }] });

  const puts = proxy.forwarded.filter((r) => r.method === 'PUT' && r.path.startsWith('/locked/repo/') && !r.path.includes('retention'));
  assert.ok(puts.length > 20, `${puts.length} objects written`);
  for (const put of puts) {
    assert.equal(put.headers['if-none-match'], '*', `${put.path} is put-if-absent`);
    assert.ok(put.headers['x-amz-checksum-sha256'], `${put.path} carries a checksum`);
    assert.equal(put.headers['x-amz-object-lock-mode'], 'COMPLIANCE');
    const until = Date.parse(String(put.headers['x-amz-object-lock-retain-until-date']));
    assert.ok(Math.abs(until - (started + 30 * DAY)) < 5 * 60_000, `${put.path} is locked for 30 days`);
  }

  // Twenty days on, with the first snapshot forgotten: what the second needs is locked for another 30 days.
  await forgetSnapshots(repo, [first.id]);
  const now = new Date(Date.now() + 20 * DAY);
  const reopened = await Repository.open(backend, 'pw');
  const dry = await extendRetentionOfKept(reopened, { now, dryRun: true });
  assert.equal(proxy.forwarded.filter((r) => r.path.includes('?retention')).length, 0, 'a dry run changes nothing');
  const result = await extendRetentionOfKept(reopened, { now });
  assert.deepEqual(result, dry);
  assert.ok(result.unneeded > 0, 'objects only the forgotten snapshot used are left to expire');
  const renewals = proxy.forwarded.filter((r) => r.method === 'PUT' && r.path.includes('?retention'));
  assert.equal(renewals.length, result.extended);
  assert.ok(result.extended > 10);
  for (const r of renewals) {
    const body = r.body.toString();
    assert.match(body, /<Mode>COMPLIANCE<\/Mode>/);
    const until = Date.parse(/<RetainUntilDate>([^<]+)</.exec(body)![1]!);
    assert.equal(until, now.getTime() + 30 * DAY);
  }
});

test('Azure version-level WORM: every blob gets an immutability policy for the period', async (t) => {
  const azurite = await startAzurite(t);
  const proxy = await startFaultProxy(azurite.url, {
    seed: 1,
    rate: 0,
    // What the real service says of a container with version-level immutability.
    rewrite: (_method, path, headers) => {
      if (/restype=container/.test(path) && !/comp=/.test(path)) headers['x-ms-immutable-storage-with-versioning-enabled'] = 'true';
    },
    intercept: (method, path) => (method === 'PUT' && /comp=immutabilityPolicies/.test(path) ? { status: 200, headers: { 'x-ms-version': '2023-11-03' } } : undefined),
  });
  t.after(() => proxy.stop());
  const backend = openBackend('azure://worm/repo?lock_mode=locked', { env: { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(proxy.url) } });
  const dir = await tempDir(t);
  await makeRichTree(join(dir, 'a'), 3);
  const started = Date.now();
  const repo = await Repository.init(backend, { password: 'pw', immutabilityDays: 7, packSize: 1 << 20 });
  await backup(repo, { sources: [{ name: 'data', path: join(dir, 'a'), exclusionClasses: {} }] });
  const commits = proxy.forwarded.filter((r) => r.method === 'PUT' && r.path.includes('comp=blocklist'));
  assert.ok(commits.length > 10);
  for (const c of commits) {
    assert.equal(c.headers['if-none-match'], '*');
    assert.equal(String(c.headers['x-ms-immutability-policy-mode']).toLowerCase(), 'locked');
    const until = Date.parse(String(c.headers['x-ms-immutability-policy-until-date']));
    assert.ok(Math.abs(until - (started + 7 * DAY)) < 5 * 60_000);
  }
  const result = await extendRetentionOfKept(await Repository.open(backend, 'pw'), { now: new Date(Date.now() + 5 * DAY) });
  assert.equal(proxy.forwarded.filter((r) => r.path.includes('comp=immutabilityPolicies')).length, result.extended);
  assert.ok(result.extended > 10);
});

test('Azure container with a time-based retention policy: backups, check and restore work where nothing can be deleted or overwritten', async (t) => {
  const azurite = await startAzurite(t);
  let refusedDeletes = 0;
  const proxy = await startFaultProxy(azurite.url, {
    seed: 1,
    rate: 0,
    // The real service reports the policy on the container and refuses every delete;
    // overwrites Azurite refuses itself, since every write is If-None-Match: *.
    rewrite: (_method, path, headers) => {
      if (/restype=container/.test(path) && !/comp=/.test(path)) headers['x-ms-has-immutability-policy'] = 'true';
    },
    intercept: (method, path) => {
      if (method !== 'DELETE' || /restype=container/.test(path)) return undefined;
      refusedDeletes++;
      return { status: 409, headers: { 'x-ms-error-code': 'BlobImmutableDueToPolicy' }, body: '' };
    },
  });
  t.after(() => proxy.stop());
  const backend = openBackend('azure://retained/acme', { env: { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(proxy.url) } });
  const dir = await tempDir(t);
  const source = join(dir, 'data');
  await makeRichTree(source, 4);
  const repo = await Repository.init(backend, { password: 'pw', immutabilityDays: 30, packSize: 1 << 20 });
  await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  await writeFile(join(source, 'docs', 'changed.txt'), 'a change for the second night');
  const second = await backup(await Repository.open(backend, 'pw'), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  assert.equal(refusedDeletes, 0, 'backups never try to delete');
  assert.equal(proxy.forwarded.filter((r) => r.method === 'PUT' && r.path.includes('comp=immutabilityPolicies')).length, 0, 'the container policy covers every blob: no per-blob policies');
  const reopened = await Repository.open(backend, 'pw');
  assert.deepEqual((await check(reopened, { readData: true })).errors, []);
  await restore(reopened, { id: second.id, snapshot: second.snapshot }, { target: join(dir, 'restored') });
  assert.deepEqual((await compareTrees(source, join(dir, 'restored', 'data'), { owners: false })).differences, []);
  // Prune inside the period deletes nothing, so it never meets the policy either.
  const plan = await planPrune(reopened);
  assert.equal(Object.values(plan.delete).flat().length, 0);
});
