import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, get } from 'node:https';
import { dirname, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { trustExtraCaOnFirstUse } from '../../src/util/extra-ca-on-first-use.js';
import { tempDir } from '../support/helpers.js';
import { azuriteConnectionString, startAzurite, startS3rver } from '../support/storage-servers.js';

const LAUNCHER = fileURLToPath(new URL('../../../bin/stackvault', import.meta.url));

/** A certificate authority of the test's own, and a certificate it signed for 127.0.0.1 (files in `dir`). */
function privateCa(dir: string, name: string): { ca: string; key: string; cert: string } {
  const [ca, caKey, key, request, cert] = ['ca.pem', 'ca.key', 'server.key', 'server.csr', 'server.pem'].map((f) => join(dir, `${name}-${f}`)) as [string, string, string, string, string];
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '2', '-subj', `/CN=${name} test CA`], { stdio: 'pipe' });
  execFileSync('openssl', ['req', ...ec, '-keyout', key, '-out', request, '-subj', '/CN=127.0.0.1'], { stdio: 'pipe' });
  const extensions = join(dir, `${name}-ext`);
  writeFileSync(extensions, 'subjectAltName=IP:127.0.0.1\n');
  execFileSync('openssl', ['x509', '-req', '-in', request, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', extensions], { stdio: 'pipe' });
  return { ca, key, cert };
}

/**
 * The launcher, run in an environment of only `env` (and `extra` per run), with this Node
 * first on PATH and `dir` as home and cache.
 */
function launcherIn(dir: string, env: Record<string, string>) {
  const base = { PATH: `${dirname(process.execPath)}:${process.env.PATH}`, HOME: dir, STACKVAULT_CACHE_DIR: dir, ...env };
  return (args: string[], extra: Record<string, string> = {}) => spawnSync(LAUNCHER, args, { env: { ...base, ...extra }, encoding: 'utf8', timeout: 120_000 });
}

async function s3OverHttps(t: TestContext) {
  const dir = await tempDir(t);
  const authority = privateCa(dir, 'acme');
  const s3 = await startS3rver(t, 'backups', authority);
  const run = launcherIn(dir, { STACKVAULT_PASSWORD: 'a long passphrase', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: s3.url });
  return { dir, authority, run };
}

test('a private CA named by NODE_EXTRA_CA_CERTS is trusted for an S3 repository over HTTPS, though Node no longer loads it as it starts', async (t) => {
  const { dir, authority, run } = await s3OverHttps(t);
  const untrusted = run(['init', '--repo', 's3://backups/a']);
  assert.equal(untrusted.status, 1, 'without the CA the server is not trusted');
  assert.match(untrusted.stderr, /certificate is not signed by an authority this machine trusts .*NODE_EXTRA_CA_CERTS/, untrusted.stderr);

  const trust = { NODE_EXTRA_CA_CERTS: authority.ca };
  const init = run(['init', '--repo', 's3://backups/a'], trust);
  assert.equal(init.status, 0, init.stderr);
  await mkdir(join(dir, 'data'));
  await writeFile(join(dir, 'data', 'file'), 'kept over TLS');
  const backup = run(['backup', '--repo', 's3://backups/a', join(dir, 'data')], trust);
  assert.equal(backup.status, 0, backup.stderr);
  const target = join(dir, 'restored');
  const restore = run(['restore', 'latest', '--repo', 's3://backups/a', '--target', target], trust);
  assert.equal(restore.status, 0, restore.stderr);
  assert.equal(await readFile(join(target, 'data', 'file'), 'utf8'), 'kept over TLS', execFileSync('find', [target], { encoding: 'utf8' }));

  // As with Node's own loading: a file that cannot be read is named in a warning, and Node's own roots alone are trusted.
  const missing = run(['snapshots', '--repo', 's3://backups/a'], { NODE_EXTRA_CA_CERTS: join(dir, 'no-such.pem') });
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /Ignoring extra certs from `.*no-such\.pem`, load failed/);
  assert.match(missing.stderr, /certificate is not signed/);
});

test('Azure over HTTPS (Azurite) trusts the same file, and says how when it cannot', async (t) => {
  const dir = await tempDir(t);
  const authority = privateCa(dir, 'azure');
  const azurite = await startAzurite(t, authority);
  const run = launcherIn(dir, {
    STACKVAULT_PASSWORD: 'a long passphrase',
    AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(azurite.url).replace('DefaultEndpointsProtocol=http;', 'DefaultEndpointsProtocol=https;'),
  });
  const untrusted = run(['init', '--repo', 'azure://backups/a']);
  assert.equal(untrusted.status, 1, untrusted.stderr);
  assert.match(untrusted.stderr, /certificate is not signed by an authority this machine trusts .*NODE_EXTRA_CA_CERTS/);
  assert.doesNotMatch(untrusted.stderr, /failed \d+ times/, 'no retry cures it');
  const init = run(['init', '--repo', 'azure://backups/a'], { NODE_EXTRA_CA_CERTS: authority.ca });
  assert.equal(init.status, 0, init.stderr);
  const listed = run(['snapshots', '--repo', 'azure://backups/a', '--json'], { NODE_EXTRA_CA_CERTS: authority.ca });
  assert.equal(listed.status, 0, listed.stderr);
  assert.deepEqual(JSON.parse(listed.stdout), []);
});

test('the processes stackvault starts get NODE_EXTRA_CA_CERTS back; its own Node started without it', async (t) => {
  const dir = await tempDir(t);
  const seen = join(dir, 'seen');
  // Stands in for rclone: notes whether its parent (stackvault's Node) started with the
  // variable, and its own value; then fails, and the command with it.
  const rclone = join(dir, 'rclone');
  await writeFile(rclone, `#!/bin/sh\necho "parent: $(tr '\\0' '\\n' < /proc/$PPID/environ | grep -c '^NODE_EXTRA_CA_CERTS=')" >> ${seen}\necho "rclone: \${NODE_EXTRA_CA_CERTS-unset}" >> ${seen}\nexit 3\n`, { mode: 0o755 });
  const launch = launcherIn(dir, { STACKVAULT_RCLONE: rclone, STACKVAULT_PASSWORD: 'p' });
  for (const caller of [undefined, '/etc/some-ca.pem']) {
    await writeFile(seen, '');
    const run = launch(['snapshots', '--repo', 'rclone:nowhere:repo'], caller === undefined ? {} : { NODE_EXTRA_CA_CERTS: caller });
    assert.notEqual(run.status, 0);
    const lines = (await readFile(seen, 'utf8')).split('\n').filter(Boolean);
    assert.deepEqual(lines.slice(0, 2), ['parent: 0', `rclone: ${caller ?? 'unset'}`], run.stderr);
  }
});

test('once the file is trusted on first use, a connection with its own ca trusts that alone, as Node has it; plain connections (https, fetch) share one context', async (t) => {
  const dir = await tempDir(t);
  const acme = privateCa(dir, 'acme');
  const other = privateCa(dir, 'other');
  const server = createServer({ key: await readFile(acme.key), cert: await readFile(acme.cert) }, (_req, res) => res.end('hello'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const { port } = server.address() as { port: number };
  const fetchText = (options: { ca?: Buffer }) =>
    new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/', agent: false, ...options }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });

  await assert.rejects(fetchText({}), /self[- ]signed|unable to (get|verify)/i, 'before: the private CA is not trusted');
  trustExtraCaOnFirstUse(acme.ca);
  assert.equal(await fetchText({}), 'hello');
  // fetch() (the runner's webhooks and pings) makes its connections through the same module.
  assert.equal(await (await fetch(`https://127.0.0.1:${port}/`)).text(), 'hello');
  assert.equal(tls.createSecureContext(), tls.createSecureContext({ servername: 'x' } as tls.SecureContextOptions), 'one shared context');
  assert.equal(await fetchText({ ca: await readFile(acme.ca) }), 'hello');
  await assert.rejects(fetchText({ ca: await readFile(other.ca) }), /self[- ]signed|unable to (get|verify)/i, 'its own ca alone');
});
