import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { Connection } from '../../src/sources/mariadb/connection.js';
import { freePort } from './storage-servers.js';

const run = promisify(execFile);

/**
 * A throwaway MariaDB server of the test's own: its data folder under /tmp, a socket and
 * a loopback port of its own, stopped and deleted when the test ends. Tests never touch a
 * server they did not start.
 */
export interface TestServer {
  host: string;
  port: number;
  socket: string;
  dir: string;
  connect(): Promise<Connection>;
  /** run statements through the server's own command-line client */
  client(sql: string, database?: string): Promise<string>;
  /** mariadb-dump with the given arguments, as the server's own tool prints it */
  dump(args: string[]): Promise<string>;
  /** shut down cleanly and start again on the same data */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Debian puts the server in /usr/sbin, which a non-root PATH often lacks. */
async function serverBinary(): Promise<string> {
  if (existsSync('/usr/sbin/mariadbd')) return '/usr/sbin/mariadbd';
  const found = await run('sh', ['-c', 'command -v mariadbd']).then((r) => r.stdout.trim(), () => '');
  if (!found) throw new Error('mariadbd is not installed: run scripts/install-test-deps.sh (Debian packages mariadb-server mariadb-client)');
  return found;
}

export async function startMariadb(t?: TestContext, options: { bufferPool?: string; binlog?: boolean; extraArgs?: string[] } = {}): Promise<TestServer> {
  const binary = await serverBinary();
  const dir = await mkdtemp(join(tmpdir(), 'sv-mariadb-'));
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  // A temp folder of its own: servers bootstrapped at once in the shared /tmp collide on temporary table names.
  await mkdir(join(dir, 'tmp'));
  await run('mariadb-install-db', ['--no-defaults', `--datadir=${dir}/data`, `--tmpdir=${dir}/tmp`, '--auth-root-authentication-method=normal', '--skip-test-db', ...asRoot], {
    timeout: 120_000,
  });
  const port = await freePort();
  const socket = join(dir, 'mysqld.sock');
  const args = [
    '--no-defaults',
    `--datadir=${dir}/data`,
    `--tmpdir=${dir}/tmp`,
    `--socket=${socket}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--pid-file=${dir}/mysqld.pid`,
    `--log-error=${dir}/error.log`,
    '--skip-name-resolve',
    `--innodb-buffer-pool-size=${options.bufferPool ?? '128M'}`,
    '--max-allowed-packet=256M',
    ...(options.binlog === false ? [] : ['--log-bin=binlog', '--server-id=1']),
    '--innodb-flush-log-at-trx-commit=2',
    ...asRoot,
    ...(options.extraArgs ?? []),
  ];
  let child!: ChildProcess;
  let exited = false;
  // Never outlive the test process, and never keep it alive: a test that failed before it
  // could register its cleanup must still end, and take its server with it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const launch = async () => {
    child = spawn(binary, args, { stdio: 'ignore' });
    exited = false;
    const launched = child;
    launched.on('exit', () => {
      if (child === launched) exited = true;
    });
    child.unref();
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const c = await Connection.connect({ socket, user: 'root', connectTimeoutMs: 2000 });
        await c.close();
        break;
      } catch (err) {
        if (exited || Date.now() > deadline) {
          child.kill('SIGKILL');
          const log = await run('tail', ['-n', '20', `${dir}/error.log`]).then((r) => r.stdout, () => '');
          await rm(dir, { recursive: true, force: true });
          throw new Error(`the test's MariaDB server did not start: ${(err as Error).message}\n${log}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const shutdown = async () => {
    if (exited) return;
    child.ref();
    child.kill('SIGTERM');
    await new Promise<void>((resolve) => {
      if (exited) resolve();
      else child.once('exit', () => resolve());
      setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 30_000).unref();
    });
  };
  await launch();
  const clientArgs = ['--no-defaults', `--socket=${socket}`, '-uroot'];
  const server: TestServer = {
    host: '127.0.0.1',
    port,
    socket,
    dir,
    connect: () => Connection.connect({ socket, user: 'root' }),
    client: async (sql, database) => {
      const child = spawn('mariadb', [...clientArgs, '--batch', '--skip-column-names', ...(database ? [database] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.stdin.end(sql);
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      if (code !== 0) throw new Error(`mariadb client failed: ${Buffer.concat(err).toString()}`);
      return Buffer.concat(out).toString('utf8');
    },
    dump: async (dumpArgs) => (await run('mariadb-dump', [...clientArgs, ...dumpArgs], { maxBuffer: 256 * 1024 * 1024 })).stdout,
    restart: async () => {
      await shutdown();
      await launch();
    },
    stop: async () => {
      process.off('exit', killOnExit);
      await shutdown();
      await rm(dir, { recursive: true, force: true });
    },
  };
  t?.after(() => server.stop());
  return server;
}
