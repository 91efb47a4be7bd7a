import { InterruptedError, StackvaultError, UsageError } from '../../util/errors.js';
import type { DumpSink } from '../dump-sink.js';
import {
  isIntegerType,
  listDatabases,
  readEvents,
  readRoutines,
  readSequence,
  readTables,
  readTriggers,
  readUsers,
  readViews,
  showCreateTable,
  type TableInfo,
} from './catalog.js';
import { Connection, ServerError, type ConnectOptions } from './connection.js';
import { DUMP_FORMAT, encodeJson, rowOrder, rowSource, type DatabaseSchema, type DumpManifest, type TablePart, type TableSchema } from './format.js';
import { SYSTEM_SCHEMAS, fileName, ident, literal, qualified } from './sql.js';
import { TsvEncoder } from './tsv.js';

/** A MariaDB or MySQL source, ready to connect (see mariadb/driver.ts for stackvault.yaml's form). */
export interface MariadbSource {
  kind: 'mariadb';
  name: string;
  connection: ConnectOptions;
  /** the compose service the server runs as; reached at its address in the stack's network */
  service?: string;
  /** databases to dump; every database but the server's own when omitted */
  databases?: string[];
  excludeDatabases?: string[];
  /** "database.table" names whose data is left out (their definition is kept) */
  excludeTableData?: string[];
  users?: boolean;
  /** worker connections reading table data at once */
  threads?: number;
  /** the binary log is archived continuously (point-in-time recovery) */
  binlog?: { segmentSeconds: number };
  /** about how many rows go into one part of a big table */
  rowsPerPart?: number;
}

export interface DumpProgress {
  rowsDone: number;
  rowsEstimate: number;
  bytesDone: number;
  /** the server's idea of the data size: a guess for an ETA, not a promise */
  bytesEstimate: number;
  current: string;
}

export interface DumpSummary {
  manifest: DumpManifest;
  tables: number;
  rows: number;
  /** bytes of table data in text form */
  bytes: number;
  /** how long writes were held back to align the workers */
  lockMs: number;
}

/** a power of two: see partStep */
export const DEFAULT_ROWS_PER_PART = 262_144;
export const DEFAULT_THREADS = 2;
/** Engines whose tables a consistent-snapshot transaction covers. */
const TRANSACTIONAL_ENGINES = new Set(['innodb', 'rocksdb', 'tokudb']);

interface PartJob {
  database: string;
  table: TableSchema;
  part: TablePart;
  sql: string;
  estimatedRows: number;
}

/** Session settings for reading: stable text for every type, no character set conversion. */
export async function prepareSession(conn: Connection, forData: boolean): Promise<void> {
  await conn.execute('SET NAMES utf8mb4');
  await conn.execute("SET SESSION sql_mode = ''");
  await conn.execute("SET SESSION time_zone = '+00:00'");
  if (forData) {
    await conn.execute('SET SESSION character_set_results = binary');
    await conn.execute('SET SESSION net_write_timeout = 3600');
    await conn.execute('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  }
}

export async function connectTo(spec: { name: string; connection: ConnectOptions }): Promise<Connection> {
  try {
    return await Connection.connect(spec.connection);
  } catch (err) {
    throw new StackvaultError(`source "${spec.name}": ${(err as Error).message}`);
  }
}

function selectedDatabases(all: string[], spec: MariadbSource): string[] {
  if (spec.databases && spec.databases.length > 0) {
    const missing = spec.databases.filter((d) => !all.includes(d));
    if (missing.length > 0) throw new UsageError(`source "${spec.name}": no database ${missing.map((m) => `"${m}"`).join(', ')} on the server`);
    return [...spec.databases].sort();
  }
  const excluded = new Set([...SYSTEM_SCHEMAS, ...(spec.excludeDatabases ?? [])]);
  return all.filter((d) => !excluded.has(d));
}

/**
 * The width of a part in key values: a power of two near span * rowsPerPart / rows. The
 * row count is the server's estimate, which moves by several percent from one night to the
 * next; rounding in the log domain with rowsPerPart a power of two puts a dense table's
 * width halfway between two rounding boundaries, so the estimate must be off by more than
 * 40% before the parts (and with them deduplication) shift.
 */
export function partStep(span: bigint, estimatedRows: number, rowsPerPart: number): bigint {
  const wanted = (Number(span) * rowsPerPart) / Math.max(1, estimatedRows);
  return 1n << BigInt(Math.max(0, Math.round(Math.log2(Math.max(1, wanted)))));
}

/**
 * Split a table into parts by ranges of its primary key's first column. Boundaries sit at
 * multiples of a power of two, so they stay put from one night to the next and an
 * unchanged range produces the same bytes.
 */
async function planParts(conn: Connection, database: string, table: TableInfo, rowsPerPart: number): Promise<Array<{ file: string; where: string }>> {
  const first = table.primaryKey[0];
  // A versioned table's ranges would be planned on its current rows only: its history is read whole.
  if (table.history || !first || !isIntegerType(table.columnTypes.get(first)) || table.estimatedRows < 2 * rowsPerPart) return [{ file: 'all.tsv', where: '' }];
  const [[min, max]] = (await conn.queryStrings(`SELECT MIN(${ident(first)}), MAX(${ident(first)}) FROM ${qualified(database, table.name)}`)) as [[string | null, string | null]];
  if (min === null || max === null) return [{ file: 'all.tsv', where: '' }];
  const lo = BigInt(min);
  const hi = BigInt(max);
  const step = partStep(hi - lo + 1n, table.estimatedRows, rowsPerPart);
  const floorDiv = (a: bigint) => (a >= 0n ? a / step : -((-a + step - 1n) / step));
  const firstIndex = floorDiv(lo);
  const lastIndex = floorDiv(hi);
  const column = ident(first);
  const parts: Array<{ file: string; where: string }> = [];
  for (let k = firstIndex; k <= lastIndex; k++) {
    // The first and last parts are open-ended, so rows written after planning are never missed.
    const conditions: string[] = [];
    if (k > firstIndex) conditions.push(`${column} >= ${k * step}`);
    if (k < lastIndex) conditions.push(`${column} < ${(k + 1n) * step}`);
    const index = k < 0n ? `n${(-k).toString().padStart(10, '0')}` : k.toString().padStart(10, '0');
    parts.push({ file: `part-${index}.tsv`, where: conditions.length ? ` WHERE ${conditions.join(' AND ')}` : '' });
  }
  return parts;
}

export function selectList(table: TableSchema): string {
  return table.columns.map((c) => (c.load === 'bit' ? `${ident(c.name)} + 0` : c.load === 'float' ? `CAST(${ident(c.name)} AS DOUBLE)` : ident(c.name))).join(', ');
}

export async function* tableText(conn: Connection, sql: string, done: (rows: number, bytes: number) => void, progress: (bytes: number, rows: number) => void): AsyncGenerator<Buffer> {
  let encoder: TsvEncoder | undefined;
  let reportedRows = 0;
  for await (const _ of conn.streamRows(
    sql,
    (columns) => (encoder = new TsvEncoder(columns)),
    (buf, start, end) => encoder!.addRow(buf, start, end),
  )) {
    const block = encoder!.take();
    progress(block.length, encoder!.rows - reportedRows);
    reportedRows = encoder!.rows;
    yield block;
  }
  if (encoder && encoder.buffered > 0) {
    const block = encoder.take();
    progress(block.length, encoder.rows - reportedRows);
    yield block;
  }
  done(encoder?.rows ?? 0, encoder?.bytes ?? 0);
}

/**
 * Take a consistent logical dump: several worker connections read table data inside
 * transactions that all see one moment, aligned by holding commits back for as long as it
 * takes to open them. Data streams into the sink part by part; nothing touches disk.
 */
export async function dumpMariadb(
  spec: MariadbSource,
  sink: DumpSink,
  options: { signal?: AbortSignal; progress?: (p: DumpProgress) => void } = {},
): Promise<DumpSummary> {
  const control = await connectTo(spec);
  const workers: Connection[] = [];
  const abort = () => {
    control.destroy();
    for (const w of workers) w.destroy();
  };
  options.signal?.addEventListener('abort', abort);
  try {
    await prepareSession(control, false);
    const flavor = control.isMariaDB ? 'mariadb' : 'mysql';
    const plan = await planDump(control, spec);
    const aligned = await alignWorkers(control, spec, flavor, plan, workers);
    await streamParts(control, sink, plan, workers, abort, options.progress);
    if (options.signal?.aborted) throw new InterruptedError('backup interrupted; nothing was committed');
    const users = spec.users ? await readUsers(control) : undefined;
    for (const w of workers) await w.execute('COMMIT');

    for (const database of plan.databases) await sink.writeFile(`${fileName(database)}/schema.json`, encodeJson(plan.schemas.get(database)));
    if (users) await sink.writeFile('users.json', encodeJson(users));
    const manifest: DumpManifest = {
      format: DUMP_FORMAT,
      server: { version: control.serverVersion, flavor },
      consistency: aligned.consistency,
      binlog: aligned.binlog,
      databases: plan.databases,
      users: users !== undefined,
      warnings: plan.warnings,
    };
    await sink.writeFile('dump.json', encodeJson(manifest));
    const tables = [...plan.schemas.values()].flatMap((s) => s.tables);
    const allParts = tables.flatMap((t) => t.parts);
    return {
      manifest,
      tables: tables.length,
      rows: allParts.reduce((n, p) => n + p.rows, 0),
      bytes: allParts.reduce((n, p) => n + p.bytes, 0),
      lockMs: aligned.lockMs,
    };
  } catch (err) {
    if (options.signal?.aborted) throw new InterruptedError('backup interrupted; nothing was committed');
    throw describeDumpError(spec.name, err);
  } finally {
    options.signal?.removeEventListener('abort', abort);
    for (const w of workers) await w.close();
    await control.close();
  }
}

interface DumpPlan {
  databases: string[];
  schemas: Map<string, DatabaseSchema>;
  tableInfos: Map<string, TableInfo[]>;
  /** every table's parts, biggest tables first, so that the last part to finish is a small one */
  jobs: PartJob[];
  /** the server's idea of each table's data size */
  tableSize: Map<TableSchema, number>;
  warnings: string[];
}

/** What to read: the databases, their tables, and each table cut into parts of about rowsPerPart rows. */
async function planDump(control: Connection, spec: MariadbSource): Promise<DumpPlan> {
  const rowsPerPart = spec.rowsPerPart ?? DEFAULT_ROWS_PER_PART;
  const databaseInfo = await listDatabases(control);
  const databases = selectedDatabases(
    databaseInfo.map((d) => d.name),
    spec,
  );
  const excludedData = new Set(spec.excludeTableData ?? []);
  const plan: DumpPlan = { databases, schemas: new Map(), tableInfos: new Map(), jobs: [], tableSize: new Map(), warnings: [] };
  for (const database of databases) {
    const info = databaseInfo.find((d) => d.name === database)!;
    const tables = await readTables(control, database);
    plan.tableInfos.set(database, tables);
    const schema: DatabaseSchema = { name: database, characterSet: info.characterSet, collation: info.collation, tables: [], sequences: [], views: [], routines: [], triggers: [], events: [] };
    plan.schemas.set(database, schema);
    for (const t of tables.filter((t) => t.type === 'table')) {
      const table: TableSchema = { name: t.name, engine: t.engine, create: '', columns: t.columns, primaryKey: t.primaryKey, parts: [], ...(t.history ? { history: t.history } : {}) };
      schema.tables.push(table);
      plan.tableSize.set(table, t.dataLength);
      if (t.engine && !TRANSACTIONAL_ENGINES.has(t.engine.toLowerCase())) {
        plan.warnings.push(`${database}.${t.name} uses ${t.engine}, which has no transactions: its data may not match the moment of the other tables`);
      }
      if (excludedData.has(`${database}.${t.name}`) || t.columns.length === 0) continue;
      const parts = await planParts(control, database, t, rowsPerPart);
      const order = rowOrder(table, ident);
      for (const p of parts) {
        const part: TablePart = { file: p.file, rows: 0, bytes: 0 };
        table.parts.push(part);
        plan.jobs.push({
          database,
          table,
          part,
          sql: `SELECT ${selectList(table)} FROM ${rowSource(qualified(database, t.name), table)}${p.where}${order}`,
          estimatedRows: Math.ceil(t.estimatedRows / parts.length),
        });
      }
    }
  }
  plan.jobs.sort((a, b) => plan.tableSize.get(b.table)! - plan.tableSize.get(a.table)! || 0);
  for (const database of databases) plan.warnings.push(...(await lossyEnumValues(control, database)));
  return plan;
}

/**
 * ENUM and SET values the server cannot take back: it prints members with characters
 * outside the Basic Multilingual Plane as "?" (SHOW CREATE TABLE and information_schema
 * alike), so a table created from its definition lacks them and their rows lose the
 * value. Only columns whose printed type holds "?" are read (one DISTINCT each).
 */
async function lossyEnumValues(control: Connection, database: string): Promise<string[]> {
  const columns = await control.queryStrings(
    `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ${literal(database)} AND DATA_TYPE IN ('enum', 'set') AND COLUMN_TYPE LIKE '%?%'`,
  );
  const warnings: string[] = [];
  for (const [table, column, dataType, columnType] of columns) {
    const members = new Set([...columnType!.matchAll(/'((?:[^'\\]|''|\\.)*)'/g)].map((m) => m[1]!.replaceAll("''", "'")));
    const values = await control.queryStrings(`SELECT DISTINCT ${ident(column!)} FROM ${qualified(database, table!)} WHERE ${ident(column!)} IS NOT NULL`);
    const lost = values.map(([v]) => v!).filter((v) => (dataType === 'set' ? v.split(',').filter((x) => x !== '') : [v]).some((x) => !members.has(x)));
    if (lost.length > 0) {
      warnings.push(`${database}.${table}.${column}: the server prints this ${dataType!.toUpperCase()} as ${columnType} and cannot take back the values ${lost.slice(0, 5).map((v) => JSON.stringify(v)).join(', ')}: a restore loses them (characters outside the Basic Multilingual Plane)`);
    }
  }
  return warnings;
}

/**
 * Open the worker connections and one snapshot transaction on each, all at one moment:
 * commits are held back (BACKUP STAGE BLOCK_COMMIT on MariaDB, a global read lock on
 * MySQL) while they open and the binlog position is read. `workers` is filled as they open,
 * so that the caller can close them whatever happens.
 */
async function alignWorkers(
  control: Connection,
  spec: MariadbSource,
  flavor: DumpManifest['server']['flavor'],
  plan: DumpPlan,
  workers: Connection[],
): Promise<{ consistency: DumpManifest['consistency']; lockMs: number; binlog: DumpManifest['binlog'] }> {
  const threads = Math.max(1, Math.min(spec.threads ?? DEFAULT_THREADS, Math.max(1, plan.jobs.length)));
  for (let i = 0; i < threads; i++) {
    const w = await connectTo(spec);
    workers.push(w);
    await prepareSession(w, true);
  }
  let consistency: DumpManifest['consistency'] = 'single-connection';
  let lockMs = 0;
  let binlog: DumpManifest['binlog'] = null;
  let unlock: string | undefined;
  if (workers.length > 1) {
    const lockStart = Date.now();
    try {
      if (flavor === 'mariadb') {
        await control.execute('BACKUP STAGE START');
        unlock = 'BACKUP STAGE END';
        await control.execute('BACKUP STAGE BLOCK_COMMIT');
        consistency = 'backup-stage';
      } else {
        await control.execute('FLUSH TABLES WITH READ LOCK');
        unlock = 'UNLOCK TABLES';
        consistency = 'flush-tables-with-read-lock';
      }
    } catch (err) {
      if (!(err instanceof ServerError) || (err.code !== 1227 && err.code !== 1044 && err.code !== 1045)) throw err;
      // Without the RELOAD privilege one connection still gives a consistent dump, only slower.
      if (unlock) await control.execute(unlock).catch(() => undefined);
      unlock = undefined;
      plan.warnings.push(`the backup user may not hold commits back (${err.serverMessage}); the data was read over one connection`);
      for (const w of workers.splice(1)) await w.close();
    }
    try {
      for (const w of workers) await w.execute('START TRANSACTION WITH CONSISTENT SNAPSHOT');
      binlog = await readBinlogPosition(control, flavor);
    } finally {
      if (unlock) await control.execute(unlock);
      lockMs = Date.now() - lockStart;
    }
  }
  if (workers.length === 1) {
    await workers[0]!.execute('START TRANSACTION WITH CONSISTENT SNAPSHOT');
    // Nothing holds commits back here: MariaDB says where the log stood at the snapshot
    // itself. A position read afterwards may be past commits the snapshot does not see,
    // and a point-in-time restore from it would skip them.
    binlog ??= flavor === 'mariadb' ? await readSnapshotBinlogPosition(workers[0]!) : await readBinlogPosition(workers[0]!, flavor);
  }
  return { consistency, lockMs, binlog };
}

/**
 * Every part into the sink, each worker taking the next part when it is done; the
 * definitions (CREATE statements, views, routines) are read on the control connection
 * meanwhile. The first failure stops everything.
 */
async function streamParts(control: Connection, sink: DumpSink, plan: DumpPlan, workers: Connection[], abort: () => void, onProgress?: (p: DumpProgress) => void): Promise<void> {
  const { jobs } = plan;
  const progress: DumpProgress = {
    rowsDone: 0,
    rowsEstimate: jobs.reduce((n, j) => n + j.estimatedRows, 0),
    bytesDone: 0,
    bytesEstimate: [...plan.tableSize.values()].reduce((n, b) => n + b, 0),
    current: '',
  };
  const report = () => onProgress?.(progress);
  let next = 0;
  let failure: unknown;
  const runWorker = async (conn: Connection) => {
    while (failure === undefined && next < jobs.length) {
      const job = jobs[next++]!;
      progress.current = `${job.database}.${job.table.name}`;
      const path = `${fileName(job.database)}/${fileName(job.table.name)}/${job.part.file}`;
      const content = tableText(
        conn,
        job.sql,
        (rows, bytes) => {
          job.part.rows = rows;
          job.part.bytes = bytes;
        },
        (bytes, rows) => {
          progress.bytesDone += bytes;
          progress.rowsDone += rows;
          report();
        },
      );
      await sink.writeFile(path, content);
    }
  };
  const definitions = readDefinitions(control, plan.schemas, plan.tableInfos);
  definitions.catch((err: unknown) => {
    failure ??= err;
    abort();
  });
  await Promise.all(
    workers.map((w) =>
      runWorker(w).catch((err: unknown) => {
        failure ??= err;
        abort();
      }),
    ),
  );
  if (failure !== undefined) throw failure;
  await definitions;
}

function describeDumpError(source: string, err: unknown): unknown {
  if (err instanceof ServerError) return new StackvaultError(`source "${source}": ${err.serverMessage} (server error ${err.code})`);
  return err;
}

async function readBinlogPosition(conn: Connection, flavor: 'mariadb' | 'mysql'): Promise<DumpManifest['binlog']> {
  try {
    const status = await conn.queryObjects('SHOW MASTER STATUS');
    const gtid = flavor === 'mariadb' ? (await conn.queryStrings('SELECT @@gtid_binlog_pos'))[0]![0] ?? undefined : (status[0]?.Executed_Gtid_Set ?? undefined);
    if (status.length === 0 && !gtid) return null;
    return { gtid: gtid || undefined, file: status[0]?.File ?? undefined, position: status[0]?.Position ?? undefined };
  } catch {
    // Reading the position needs a privilege (BINLOG MONITOR / REPLICATION CLIENT) the dump itself does not.
    return null;
  }
}

/** The binary log position of this session's consistent snapshot (MariaDB's binlog_snapshot_file and _position). */
async function readSnapshotBinlogPosition(conn: Connection): Promise<DumpManifest['binlog']> {
  try {
    const status = new Map((await conn.queryStrings("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")).map(([k, v]) => [k!.toLowerCase(), v ?? '']));
    const file = status.get('binlog_snapshot_file');
    const position = status.get('binlog_snapshot_position');
    if (!file || !position) return null;
    const gtid = (await conn.queryStrings(`SELECT BINLOG_GTID_POS(${literal(file)}, ${Number(position)})`))[0]![0] ?? undefined;
    return { gtid: gtid || undefined, file, position };
  } catch {
    return null;
  }
}

async function readDefinitions(conn: Connection, schemas: Map<string, DatabaseSchema>, tableInfos: Map<string, TableInfo[]>): Promise<void> {
  for (const [database, schema] of schemas) {
    const infos = tableInfos.get(database)!;
    for (const table of schema.tables) table.create = await showCreateTable(conn, database, table.name);
    for (const t of infos.filter((t) => t.type === 'sequence')) schema.sequences.push(await readSequence(conn, database, t.name));
    schema.views = await readViews(
      conn,
      database,
      infos.filter((t) => t.type === 'view').map((t) => t.name),
    );
    schema.routines = await readRoutines(conn, database);
    schema.triggers = await readTriggers(conn, database);
    schema.events = await readEvents(conn, database);
  }
}
