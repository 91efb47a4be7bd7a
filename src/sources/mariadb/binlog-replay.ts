import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { StackvaultError, errorMessage } from '../../util/errors.js';
import { BINLOG_MAGIC } from './binlog-events.js';
import type { ConnectOptions } from './connection.js';

/**
 * Replay archived binary log events into a server with MariaDB's own tools, the way its
 * documentation recommends for point-in-time recovery: `mariadb-binlog` turns the events
 * into statements (BINLOG '...' for row events, with each session's settings), the
 * `mariadb` client runs them and stops at the first error. The events arrive as a stream
 * and are never written to disk.
 */
export async function replayBinlog(
  events: AsyncIterable<Buffer>,
  formatEvent: Buffer,
  server: ConnectOptions,
  options: { signal?: AbortSignal; rename?: Readonly<Record<string, string>> } = {},
): Promise<void> {
  const { signal } = options;
  const decoder = toolPath(['mariadb-binlog', 'mysqlbinlog']);
  const client = toolPath(['mariadb', 'mysql']);
  // Row events and statements' default databases follow a rename; a name written into a
  // statement's text does not (mariadb-binlog's --rewrite-db).
  const rewrites = Object.entries(options.rename ?? {})
    .filter(([from, to]) => from !== to)
    .map(([from, to]) => `--rewrite-db=${from}->${to}`);
  const render = spawn(decoder, ['--force-if-open', '--skip-gtid-strict-mode', ...rewrites, '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const apply = spawn(client, clientArgs(server), {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, MYSQL_PWD: server.password ?? '' },
  });
  const renderErrors = collectText(render.stderr);
  const applyErrors = collectText(apply.stderr);
  apply.stdout.resume();
  render.stdout.pipe(apply.stdin);
  const exits = Promise.all([exitOf(render), exitOf(apply)]);
  const stop = () => {
    render.kill('SIGTERM');
    apply.kill('SIGTERM');
  };
  signal?.addEventListener('abort', stop, { once: true });
  let feedError: unknown;
  try {
    await write(render.stdin, BINLOG_MAGIC);
    await write(render.stdin, formatEvent);
    for await (const event of events) {
      if (apply.exitCode !== null || render.exitCode !== null) break;
      await write(render.stdin, event);
    }
  } catch (err) {
    feedError = err;
    render.kill('SIGTERM');
  } finally {
    render.stdin.end();
    signal?.removeEventListener('abort', stop);
  }
  const [renderCode, applyCode] = await exits;
  if (applyCode !== 0) throw new StackvaultError(`replaying the binary log failed: the server refused a statement: ${(await applyErrors).trim() || `mariadb exited with ${applyCode}`}`);
  if (feedError) throw feedError;
  if (renderCode !== 0) throw new StackvaultError(`replaying the binary log failed: ${decoder} could not read the archived events: ${(await renderErrors).trim() || `exit code ${renderCode}`}`);
}

function clientArgs(server: ConnectOptions): string[] {
  const args = ['--no-defaults', '--binary-mode', `--user=${server.user}`];
  if (server.socket) args.push(`--socket=${server.socket}`);
  else args.push(`--host=${server.host ?? '127.0.0.1'}`, `--port=${server.port ?? 3306}`, '--protocol=TCP');
  if (server.tls) args.push('--ssl');
  return args;
}

function toolPath(names: string[]): string {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean).concat(['/usr/bin', '/usr/local/bin']);
  for (const name of names) {
    for (const dir of dirs) {
      if (isExecutable(`${dir}/${name}`)) return `${dir}/${name}`;
    }
  }
  throw new StackvaultError(`point-in-time replay needs MariaDB's ${names[0]} (Debian package mariadb-client), which is not installed here`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function write(stream: NodeJS.WritableStream, bytes: Buffer): Promise<void> {
  if (!stream.write(bytes)) await Promise.race([once(stream, 'drain'), once(stream, 'close')]);
}

function exitOf(child: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new StackvaultError(`could not run ${child.spawnfile}: ${errorMessage(err)}`)));
    child.once('close', (code) => resolve(code));
  });
}

async function collectText(stream: NodeJS.ReadableStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8').slice(-4000);
}
