import { createHash } from 'node:crypto';
import { StackvaultError } from '../../util/errors.js';
import type { DumpReader } from '../dump-sink.js';
import { Connection, type ConnectOptions } from './connection.js';
import { prepareSession, selectList, tableText } from './dump.js';
import { rowOrder, rowSource, type DatabaseSchema, type DumpManifest } from './format.js';
import { readJson } from './restore.js';
import { fileName, ident, qualified } from './sql.js';

export interface TableVerdict {
  database: string;
  table: string;
  rows: number;
  /** the server's rows, read the way the dump read them, are byte for byte the dump's */
  equal: boolean;
}

/**
 * Prove that a server holds exactly what a dump holds: every table is read back the way
 * the dump read it (same columns, same text form, primary-key order) and hashed, and so
 * are the dump's parts of that table in order. Used by restore drills on the scratch copy.
 */
export async function verifyMariadb(reader: DumpReader, options: { name: string; connection: ConnectOptions; rename?: Record<string, string> }): Promise<TableVerdict[]> {
  const manifest = await readJson<DumpManifest>(reader, 'dump.json');
  let conn: Connection;
  try {
    conn = await Connection.connect(options.connection);
  } catch (err) {
    throw new StackvaultError(`verifying "${options.name}": ${(err as Error).message}`);
  }
  try {
    await prepareSession(conn, true);
    const verdicts: TableVerdict[] = [];
    for (const database of manifest.databases) {
      const schema = await readJson<DatabaseSchema>(reader, `${fileName(database)}/schema.json`);
      const target = options.rename?.[database] ?? database;
      for (const table of schema.tables) {
        const stored = createHash('sha256');
        for (const part of table.parts) for await (const block of reader.read(`${fileName(database)}/${fileName(table.name)}/${part.file}`)) stored.update(block);
        const served = createHash('sha256');
        let rows = 0;
        if (table.columns.length > 0) {
          const sql = `SELECT ${selectList(table)} FROM ${rowSource(qualified(target, table.name), table)}${rowOrder(table, ident)}`;
          for await (const block of tableText(conn, sql, (n) => (rows = n), () => undefined)) served.update(block);
        }
        verdicts.push({ database: target, table: table.name, rows, equal: stored.digest('hex') === served.digest('hex') });
      }
    }
    return verdicts;
  } finally {
    await conn.close();
  }
}
