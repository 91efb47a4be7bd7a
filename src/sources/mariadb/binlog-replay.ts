import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { StackvaultError, errorMessage } from '../../util/errors.js';
import { BINLOG_MAGIC } from './binlog-events.js';
import { binlogStatements } from './binlog-statements.js';
import { Connection, type ConnectOptions } from './connection.js';

/** Statements sent in one round trip: a replay is bound by round trips, not by the server. */
const BATCH_STATEMENTS = 500;
const BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Replay archived binary log events into a server. MariaDB's own `mariadb-binlog` turns
 * the events into statements (BINLOG '...' for row events, each session's settings before
 * its statements), as its documentation recommends for point-in-time recovery; the
 * statements go to the server over our own connection in batches of several hundred
 * (the `mariadb` client sends one per round trip, which made replay slower than the
 * load that wrote the log). The first error stops the replay. The events arrive as a
 * stream and are never written to disk.
 */
export async function replayBinlog(
  events: AsyncIterable<Buffer>,
  formatEvent: Buffer,
  server: ConnectOptions,
  options: { signal?: AbortSignal; rename?: Readonly<Record<string, string>> } = {},
): Promise<{ statements: number }> {
  const { signal } = options;
  const decoder = toolPath(['mariadb-binlog', 'mysqlbinlog']);
  // Row events and statements' default databases follow a rename; a name written into a
  // statement's text does not (mariadb-binlog's --rewrite-db).
  const rewrites = Object.entries(options.rename ?? {})
    .filter(([from, to]) => from !== to)
    .map(([from, to]) => `--rewrite-db=${from}->${to}`);
  const conn = await Connection.connect({ ...server, multiStatements: true });
  const render = spawn(decoder, ['--force-if-open', '--skip-gtid-strict-mode', ...rewrites, '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const renderErrors = collectText(render.stderr);
  // mariadb-binlog ending early breaks the pipe: its exit code and stopping early say what happened.
  render.stdin.on('error', () => undefined);
  let stoppedEarly = false;
  const exited = exitOf(render);
  const stop = () => {
    render.kill('SIGTERM');
    conn.destroy();
  };
  signal?.addEventListener('abort', stop, { once: true });
  // Fed on the side: mariadb-binlog reads events while its statements are applied.
  const feeding = (async () => {
    try {
      await write(render.stdin, BINLOG_MAGIC);
      await write(render.stdin, formatEvent);
      for await (const event of events) {
        if (render.exitCode !== null || render.stdin.destroyed) {
          stoppedEarly = true;
          break;
        }
        await write(render.stdin, event);
      }
    } finally {
      render.stdin.end();
    }
  })();
  feeding.catch(() => render.kill('SIGTERM'));
  let statements = 0;
  try {
    let batch: Buffer[] = [];
    let bytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const sql = Buffer.concat(batch.flatMap((b, i) => (i === 0 ? [b] : [SEPARATOR, b])));
      try {
        await conn.executeBatch(sql, batch.length);
      } catch (err) {
        throw new StackvaultError(`replaying the binary log failed: the server refused a statement: ${errorMessage(err)} (in a batch starting with: ${batch[0]!.toString('utf8').slice(0, 160)})`);
      }
      statements += batch.length;
      batch = [];
      bytes = 0;
    };
    for await (const statement of binlogStatements(render.stdout)) {
      batch.push(statement);
      bytes += statement.length;
      if (batch.length >= BATCH_STATEMENTS || bytes >= BATCH_BYTES) await flush();
    }
    await flush();
    await feeding;
  } catch (err) {
    render.kill('SIGTERM');
    await feeding.catch(() => undefined);
    throw err;
  } finally {
    signal?.removeEventListener('abort', stop);
    await conn.close();
  }
  const code = await exited;
  if (code !== 0 || stoppedEarly) {
    throw new StackvaultError(`replaying the binary log failed: ${decoder} could not read the archived events: ${(await renderErrors).trim() || (stoppedEarly ? 'it stopped reading before their end' : `exit code ${code}`)}`);
  }
  return { statements };
}

/** Between statements of a batch: a newline first, so that a statement ending in a -- comment still ends. */
const SEPARATOR = Buffer.from('\n;\n');

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

function write(stream: NodeJS.WritableStream, bytes: Buffer): Promise<void> {
  if (stream.write(bytes)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
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
