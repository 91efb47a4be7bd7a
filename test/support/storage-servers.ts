import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';

/**
 * Real storage servers for backend tests, each on a loopback port of its own, in a temp
 * folder of its own, stopped (and the folder removed) when the test ends.
 */
export interface StorageServer {
  /** http://127.0.0.1:port */
  url: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Start a server process and wait until its output matches `ready` (which may capture the port). */
async function startProcess(
  t: TestContext | undefined,
  name: string,
  command: string,
  args: (dir: string) => string[],
  ready: RegExp,
  env: NodeJS.ProcessEnv = {},
): Promise<StorageServer & { match: RegExpExecArray }> {
  const dir = await mkdtemp(join(tmpdir(), `sv-${name}-`));
  await mkdir(join(dir, 'data'));
  const child: ChildProcess = spawn(command, args(dir), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  child.unref();
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let output = '';
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 30 s:\n${output}`)), 30_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = ready.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${output}`));
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  }).catch(async (err: unknown) => {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  // Keep reading so a chatty server never blocks on a full pipe.
  child.stdout!.resume();
  child.stderr!.resume();
  (child.stdout as unknown as { unref(): void }).unref();
  (child.stderr as unknown as { unref(): void }).unref();
  const port = Number(match[1] ?? 0);
  const server = {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    match,
    stop: async () => {
      process.off('exit', killOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        child.ref();
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 5000).unref();
        });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  t?.after(() => server.stop());
  return server;
}

const require = createRequire(import.meta.url);

function packageBin(pkg: string, bin: string): string {
  const manifest = require(`${pkg}/package.json`) as { bin: Record<string, string> };
  return join(dirname(require.resolve(`${pkg}/package.json`)), manifest.bin[bin]!);
}

export const AZURITE_ACCOUNT = 'devstoreaccount1';
/** Azurite's well-known development key: public, not a secret. */
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export function azuriteConnectionString(url: string): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${url}/${AZURITE_ACCOUNT};`;
}

/** Azure's own emulator (npm azurite), blob service only; over HTTPS with `tls`'s key and certificate (files). */
export async function startAzurite(t?: TestContext, tls?: { key: string; cert: string }): Promise<StorageServer> {
  const server = await startProcess(
    t,
    'azurite',
    process.execPath,
    (dir) => [
      packageBin('azurite', 'azurite-blob'), '--blobHost', '127.0.0.1', '--blobPort', '0', '--location', join(dir, 'data'), '--silent', '--disableTelemetry', '--skipApiVersionCheck', '--loose',
      ...(tls ? ['--key', tls.key, '--cert', tls.cert] : []),
    ],
    /listens on https?:\/\/127\.0\.0\.1:(\d+)/,
  );
  return tls ? { ...server, url: `https://127.0.0.1:${server.port}` } : server;
}

/** An S3 server (npm s3rver) with one bucket; over HTTPS with `tls`'s key and certificate (files). */
export async function startS3rver(t: TestContext | undefined, bucket: string, tls?: { key: string; cert: string }): Promise<StorageServer> {
  const port = await freePort();
  const server = await startProcess(
    t,
    's3rver',
    process.execPath,
    (dir) => [
      packageBin('s3rver', 's3rver'), '-d', join(dir, 'data'), '-a', '127.0.0.1', '-p', String(port), '--configure-bucket', bucket, '--no-vhost-buckets',
      ...(tls ? ['--key', tls.key, '--cert', tls.cert] : []),
    ],
    new RegExp(`listening on .*:(${port})|(${port})`),
  );
  return tls ? { ...server, url: `https://127.0.0.1:${port}` } : server;
}

/** `rclone serve webdav|sftp` of a folder, and the RCLONE_CONFIG_* variables of a remote that reaches it. */
export async function startRcloneServe(
  t: TestContext | undefined,
  protocol: 'webdav' | 'sftp',
  remoteName: string,
): Promise<StorageServer & { env: Record<string, string> }> {
  const port = await freePort();
  const user = 'stackvault';
  const pass = `pw-${port}`;
  const server = await startProcess(
    t,
    `rclone-${protocol}`,
    'rclone',
    (dir) => ['serve', protocol, join(dir, 'data'), '--addr', `127.0.0.1:${port}`, '--user', user, '--pass', pass, '--config', join(dir, 'rclone.conf'), '--cache-dir', join(dir, 'cache')],
    new RegExp(`(${port})`),
  );
  const obscured = execFileSync('rclone', ['obscure', pass], { encoding: 'utf8' }).trim();
  const prefix = `RCLONE_CONFIG_${remoteName.toUpperCase()}_`;
  const env: Record<string, string> =
    protocol === 'webdav'
      ? { [`${prefix}TYPE`]: 'webdav', [`${prefix}URL`]: server.url, [`${prefix}VENDOR`]: 'other', [`${prefix}USER`]: user, [`${prefix}PASS`]: obscured }
      : { [`${prefix}TYPE`]: 'sftp', [`${prefix}HOST`]: '127.0.0.1', [`${prefix}PORT`]: String(port), [`${prefix}USER`]: user, [`${prefix}PASS`]: obscured };
  return { ...server, env };
}
