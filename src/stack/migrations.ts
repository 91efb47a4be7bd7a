import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Migration } from '../release/release.js';
import { Connection, type ConnectOptions } from '../sources/mariadb/connection.js';
import { literal } from '../sources/mariadb/sql.js';
import { InterruptedError, StackvaultError } from '../util/errors.js';

/**
 * Split an SQL script into statements the way the mariadb client does: at ";" outside
 * quotes and comments, or at the delimiter a DELIMITER line sets (for procedures and
 * triggers whose bodies hold ";").
 */
export function splitSqlStatements(script: string): string[] {
  const statements: string[] = [];
  let delimiter = ';';
  let current = '';
  let i = 0;
  const flush = () => {
    if (current.trim()) statements.push(current.trim());
    current = '';
  };
  while (i < script.length) {
    const atLineStart = current.trim() === '';
    if (atLineStart) {
      const line = /^[ \t]*DELIMITER[ \t]+(\S+)[ \t]*(\r?\n|$)/i.exec(script.slice(i));
      if (line) {
        delimiter = line[1]!;
        i += line[0].length;
        continue;
      }
    }
    const ch = script[i]!;
    if (ch === "'" || ch === '"' || ch === '`') {
      let j = i + 1;
      while (j < script.length && script[j] !== ch) j += script[j] === '\\' && ch !== '`' ? 2 : 1;
      current += script.slice(i, j + 1);
      i = j + 1;
    } else if ((script.startsWith('--', i) && /[ \t\r\n]/.test(script[i + 2] ?? ' ')) || ch === '#') {
      const end = script.indexOf('\n', i);
      i = end === -1 ? script.length : end + 1;
      current += '\n';
    } else if (script.startsWith('/*', i) && script[i + 2] !== '!') {
      const end = script.indexOf('*/', i + 2);
      i = end === -1 ? script.length : end + 2;
      current += ' ';
    } else if (script.startsWith(delimiter, i)) {
      flush();
      i += delimiter.length;
    } else {
      current += ch;
      i++;
    }
  }
  flush();
  return statements;
}

/** Which migrations ran on a stack's data, each recorded once. */
export interface MigrationHistory {
  /** the stack's database, when the history lives there: SQL migrations run on it */
  connection?: Connection;
  applied(): Promise<Set<string>>;
  record(migration: Migration): Promise<void>;
  close(): Promise<void>;
}

const HISTORY_DATABASE = 'stackvault';

/**
 * The history as a table in the stack's own database server (stackvault.migrations), so it
 * is dumped, restored and rolled back with the data it describes.
 */
export async function databaseHistory(connection: ConnectOptions): Promise<MigrationHistory> {
  const conn = await Connection.connect(connection);
  await conn.execute(`CREATE DATABASE IF NOT EXISTS ${HISTORY_DATABASE}`);
  await conn.execute(
    `CREATE TABLE IF NOT EXISTS ${HISTORY_DATABASE}.migrations (id VARCHAR(255) NOT NULL PRIMARY KEY, version VARCHAR(64) NOT NULL, ` +
      `name VARCHAR(255) NOT NULL, sha256 CHAR(64) NOT NULL, applied_at DATETIME(3) NOT NULL) ENGINE=InnoDB`,
  );
  return {
    connection: conn,
    applied: async () => new Set((await conn.queryStrings(`SELECT id FROM ${HISTORY_DATABASE}.migrations`)).map((r) => r[0]!)),
    record: async (m) => {
      await conn.execute(
        `INSERT INTO ${HISTORY_DATABASE}.migrations (id, version, name, sha256, applied_at) VALUES (${literal(m.id)}, ${literal(m.version)}, ${literal(m.name)}, '${sha256(m.text)}', NOW(3))`,
      );
    },
    close: () => conn.close(),
  };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export interface ApplyOptions {
  history: MigrationHistory;
  /** file-system steps run here, with these variables (each files source's path, the versions) */
  cwd: string;
  env: Record<string, string>;
  log: (message: string) => void;
  signal?: AbortSignal;
}

/** Apply, in order, every migration the history does not hold yet; each is recorded right after it ran. */
export async function applyMigrations(migrations: Migration[], options: ApplyOptions): Promise<string[]> {
  const done = await options.history.applied();
  const ran: string[] = [];
  for (const m of migrations) {
    if (done.has(m.id)) continue;
    if (options.signal?.aborted) throw new InterruptedError('interrupted before migration ' + m.id);
    options.log(`migration ${m.id}`);
    try {
      if (m.kind === 'sql') {
        const connection = options.history.connection;
        if (!connection) throw new StackvaultError("an SQL migration needs the stack's database, and stackvault.yaml has no mariadb source");
        for (const statement of splitSqlStatements(m.text)) await connection.execute(statement);
      } else {
        await runShellStep(m, options);
      }
    } catch (err) {
      throw new StackvaultError(`migration ${m.id} failed: ${(err as Error).message}`);
    }
    await options.history.record(m);
    ran.push(m.id);
  }
  return ran;
}

async function runShellStep(m: Migration, options: ApplyOptions): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'stackvault-migration-'));
  try {
    const script = join(dir, m.name);
    await writeFile(script, m.text, { mode: 0o700 });
    await new Promise<void>((resolve, reject) => {
      execFile(
        '/bin/sh',
        ['-eu', script],
        { cwd: options.cwd, env: { ...process.env, ...options.env }, timeout: 3_600_000, maxBuffer: 16 * 1024 * 1024, signal: options.signal },
        (err, _stdout, stderr) => {
          if (err) reject(new Error(`${stderr.trim().split('\n').slice(-3).join(' | ') || err.message}`));
          else resolve();
        },
      );
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
