import { IntegrityError, InterruptedError, StackvaultError, UsageError } from '../../util/errors.js';
import { readWhole, type DumpReader } from '../dump-sink.js';
import { Connection, ServerError, type ConnectOptions } from './connection.js';
import { splitCreateTable } from './ddl.js';
import { runTablePipeline } from './table-pipeline.js';
import { linearBackoff, retry } from '../../util/retry.js';
import { DUMP_FORMAT, type DatabaseSchema, type DumpManifest, type ObjectDef, type TablePart, type TableSchema, type UserDef } from './format.js';
import { fileName, ident, literal, qualified, quotedEnd } from './sql.js';

export interface MariadbRestoreOptions {
  /** the source's name, for messages */
  name: string;
  connection: ConnectOptions;
  /** original name -> name on the target server */
  rename?: Record<string, string>;
  /** restore only these databases (original names) */
  databases?: string[];
  /** replace databases that exist on the target and are not empty */
  force?: boolean;
  /** create the dumped users and apply their grants */
  users?: boolean;
  threads?: number;
  signal?: AbortSignal;
  progress?: (p: MariadbRestoreProgress) => void;
}

export interface MariadbRestoreProgress {
  phase: 'tables' | 'data' | 'indexes' | 'objects';
  bytesDone: number;
  bytesTotal: number;
  rowsDone: number;
  /** the rows the dump recorded for the databases being restored */
  rowsTotal: number;
  current: string;
}

export interface MariadbRestoreSummary {
  databases: Array<{ from: string; to: string }>;
  tables: number;
  rows: number;
  bytes: number;
  /** what the server warned about while loading (values it had to adjust) */
  warnings: string[];
}

const DEFAULT_THREADS = 2;
/** Errors that mean "something this view needs does not exist yet": try again after the other views. */
const MISSING_DEPENDENCY = new Set([1146, 1356, 1305, 1449]);

export async function readJson<T>(reader: DumpReader, path: string): Promise<T> {
  if (!reader.has(path)) throw new IntegrityError(`the dump has no ${path}`);
  try {
    return JSON.parse((await readWhole(reader, path)).toString('utf8')) as T;
  } catch (err) {
    if (err instanceof StackvaultError) throw err;
    throw new IntegrityError(`${path} in the dump is not valid JSON`);
  }
}

/** Statement text in the character set the object was created with, so its non-ASCII text means the same. */
function encodeFor(charset: string | undefined, text: string): { charset: string; bytes: Buffer } {
  // eslint-disable-next-line no-control-regex
  if (!charset || /^[\x00-\x7f]*$/.test(text)) return { charset: charset ?? 'utf8mb4', bytes: Buffer.from(text, 'utf8') };
  if (/^utf8/i.test(charset)) return { charset, bytes: Buffer.from(text, 'utf8') };
  if (/^latin1$/i.test(charset)) return { charset, bytes: encodeLatin1(text) };
  return { charset: 'utf8mb4', bytes: Buffer.from(text, 'utf8') };
}

/** The server's latin1 is Windows-1252: 0x80-0x9f hold € ‚ ƒ … rather than control characters. */
const CP1252_HIGH = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ';

function encodeLatin1(text: string): Buffer {
  const out = Buffer.alloc(text.length);
  let n = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    const high = CP1252_HIGH.indexOf(ch);
    out[n++] = high >= 0 ? 0x80 + high : code <= 0xff ? code : 0x3f; // '?' as the server itself does
  }
  return out.subarray(0, n);
}

async function setSession(conn: Connection, settings: Record<string, string | undefined>): Promise<void> {
  const parts = Object.entries(settings)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} = ${literal(v!)}`);
  if (parts.length) await conn.execute(`SET SESSION ${parts.join(', ')}`);
}

/** Create a stored object the way it was defined: same sql_mode, client character set and time zone. */
async function createObject(conn: Connection, database: string, def: ObjectDef, text = def.create): Promise<void> {
  const { charset, bytes } = encodeFor(def.characterSetClient, text);
  await conn.execute(`USE ${ident(database)}`);
  await setSession(conn, {
    sql_mode: def.sqlMode,
    character_set_client: charset,
    collation_connection: def.collationConnection,
    time_zone: def.timeZone,
  });
  try {
    await conn.execute(bytes);
  } finally {
    await conn.execute("SET SESSION sql_mode = '', character_set_client = utf8mb4, collation_connection = utf8mb4_general_ci, time_zone = '+00:00'");
  }
}

/**
 * `old`.name becomes `new`.name where it is a name: string literals are copied as they
 * are (a view's 'see `old`.x' stays), read token by token as the server reads them.
 */
export function renameQualifiers(text: string, rename: Map<string, string>): string {
  if (rename.size === 0) return text;
  const renamed = new Map([...rename].map(([from, to]) => [ident(from), ident(to)]));
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c !== '`' && c !== "'" && c !== '"') {
      const next = text.slice(i).search(/[`'"]/);
      const end = next < 0 ? text.length : i + next;
      out += text.slice(i, end);
      i = end;
      continue;
    }
    const j = quotedEnd(text, i);
    const token = text.slice(i, j + 1);
    out += c === '`' && text[j + 1] === '.' ? (renamed.get(token) ?? token) : token;
    i = j + 1;
  }
  return out;
}

async function prepareLoader(conn: Connection, mariadb: boolean, history: boolean): Promise<void> {
  await conn.execute('SET NAMES utf8mb4');
  await conn.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00', foreign_key_checks = 0, unique_checks = 0, net_read_timeout = 3600");
  if (mariadb) await conn.execute('SET SESSION check_constraint_checks = 0');
  if (!history) return;
  // Rows of system-versioned tables keep their periods (MariaDB 10.11 and later).
  try {
    await conn.execute('SET SESSION system_versioning_insert_history = 1');
  } catch (err) {
    if (!(err instanceof ServerError)) throw err;
    throw new UsageError(`the dump holds the history of system-versioned tables, which this server cannot take back (${err.serverMessage}): restore into MariaDB 10.11 or later`);
  }
}

function loadStatement(database: string, table: TableSchema): string {
  const targets: string[] = [];
  const sets: string[] = [];
  table.columns.forEach((c, i) => {
    if (c.load === 'plain' || c.load === 'float') {
      targets.push(ident(c.name));
      return;
    }
    targets.push(`@v${i}`);
    sets.push(c.load === 'bit' ? `${ident(c.name)} = CAST(@v${i} AS UNSIGNED)` : `${ident(c.name)} = CONVERT(@v${i} USING utf8mb4)`);
  });
  return (
    `LOAD DATA LOCAL INFILE 'stackvault' INTO TABLE ${qualified(database, table.name)} CHARACTER SET binary ` +
    `FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (${targets.join(', ')})` +
    (sets.length ? ` SET ${sets.join(', ')}` : '')
  );
}

/** ER_LOCK_DEADLOCK and ER_LOCK_WAIT_TIMEOUT: the server rolled the statement back, so running it again is safe. */
const LOCK_CONFLICTS = new Set([1213, 1205]);
const LOCK_CONFLICT_TRIES = 5;

/**
 * Run one job of a parallel phase, again when the server chose it as a deadlock victim or
 * its lock wait timed out. Parts of one table loaded at once deadlocked on the gaps
 * between their key ranges (seen once in CI, under load; they are no longer loaded at
 * once, but other sessions on the server may still hold what a job needs). Each job is
 * one autocommitted statement (a LOAD DATA of one part, or one ALTER TABLE), which the
 * server rolls back whole, so nothing of the failed try stays. `undo` takes back what
 * the try counted.
 */
export function retryLockConflicts<T>(job: () => Promise<T>, undo: () => void = () => undefined, backoffMs = 50): Promise<T> {
  return retry(job, {
    attempts: LOCK_CONFLICT_TRIES,
    retryable: (err) => err instanceof ServerError && LOCK_CONFLICTS.has(err.code),
    delayMs: linearBackoff(backoffMs),
    onRetry: undo,
  });
}

/**
 * Restore a dump into a server: databases and tables first (primary keys only), table
 * data in parallel with foreign-key and unique checks off, then secondary indexes and
 * foreign keys, then routines, views (in dependency order), triggers and events, and
 * users when asked. Nothing is changed when a target database exists and is not empty,
 * unless `force` is given.
 */
export async function restoreMariadb(reader: DumpReader, options: MariadbRestoreOptions): Promise<MariadbRestoreSummary> {
  const { plan, users, rename } = await readRestorePlan(reader, options);
  let control: Connection;
  try {
    control = await Connection.connect(options.connection);
  } catch (err) {
    throw new StackvaultError(`restore of "${options.name}": ${(err as Error).message}`);
  }
  const loaders: Connection[] = [];
  const abort = () => {
    control.destroy();
    for (const l of loaders) l.destroy();
  };
  options.signal?.addEventListener('abort', abort);
  const summary: MariadbRestoreSummary = { databases: plan.map(({ from, to }) => ({ from, to })), tables: 0, rows: 0, bytes: 0, warnings: [] };
  const progress: MariadbRestoreProgress = { phase: 'tables', bytesDone: 0, bytesTotal: 0, rowsDone: 0, rowsTotal: 0, current: '' };
  const report = () => options.progress?.(progress);
  try {
    await control.execute('SET NAMES utf8mb4');
    await control.execute("SET SESSION sql_mode = '', time_zone = '+00:00', foreign_key_checks = 0");
    // Refuse before changing anything.
    const occupied = await occupiedDatabases(control, plan);
    if (occupied.length && !options.force) {
      throw new UsageError(`restore of "${options.name}": database ${occupied.map((d) => `"${d}"`).join(', ')} already exists and is not empty; restore under another name (--rename-db) or add --force to replace it`);
    }
    const split = await createTables(control, plan, occupied, rename, summary, progress, report);
    const threads = Math.max(1, options.threads ?? DEFAULT_THREADS);
    for (let i = 0; i < threads; i++) {
      const conn = await Connection.connect(options.connection);
      loaders.push(conn);
      await prepareLoader(conn, control.isMariaDB, plan.some(({ schema }) => schema.tables.some((t) => t.history)));
    }
    await loadDataAndIndexes(loaders, reader, plan, split, summary, progress, report, options.signal);
    await addForeignKeys(loaders, plan, split, progress, report, options.signal);
    progress.phase = 'objects';
    for (const { to, schema } of plan) {
      progress.current = to;
      report();
      for (const routine of schema.routines) await createObject(control, to, routine);
      await createViews(control, to, schema.views, rename);
      for (const trigger of schema.triggers) await createObject(control, to, trigger);
      for (const event of schema.events) await createObject(control, to, event);
    }
    if (users) await createUsers(control, users, summary);
    return summary;
  } catch (err) {
    if (options.signal?.aborted) throw new InterruptedError('restore interrupted; the databases being restored are incomplete');
    if (err instanceof ServerError) throw new StackvaultError(`restore of "${options.name}": ${err.serverMessage} (server error ${err.code})`);
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', abort);
    for (const l of loaders) await l.close();
    await control.close();
  }
}

type RestorePlan = Array<{ from: string; to: string; schema: DatabaseSchema }>;

/** What the dump holds and what of it is wanted under which names, checked before a server is touched. */
async function readRestorePlan(reader: DumpReader, options: MariadbRestoreOptions): Promise<{ plan: RestorePlan; users: UserDef[] | undefined; rename: Map<string, string> }> {
  const manifest = await readJson<DumpManifest>(reader, 'dump.json');
  if (manifest.format !== DUMP_FORMAT) throw new UsageError(`source "${options.name}": dump format ${String(manifest.format)} is not supported by this version`);
  const wanted = options.databases?.length ? options.databases : manifest.databases;
  const unknown = wanted.filter((d) => !manifest.databases.includes(d));
  if (unknown.length) throw new UsageError(`source "${options.name}": the snapshot holds no database ${unknown.join(', ')} (it has ${manifest.databases.join(', ')})`);
  const rename = new Map(Object.entries(options.rename ?? {}));
  const unknownRenames = [...rename.keys()].filter((d) => !manifest.databases.includes(d));
  if (unknownRenames.length) throw new UsageError(`source "${options.name}": cannot rename ${unknownRenames.join(', ')}: not in the snapshot`);
  const plan = await Promise.all(wanted.map(async (from) => ({ from, to: rename.get(from) ?? from, schema: await readJson<DatabaseSchema>(reader, `${fileName(from)}/schema.json`) })));
  const users = options.users ? (manifest.users ? await readJson<UserDef[]>(reader, 'users.json') : []) : undefined;
  if (options.users && !manifest.users) throw new UsageError(`source "${options.name}": this snapshot has no users (set users: true on the source to back them up)`);
  for (const { schema } of plan) {
    for (const t of schema.tables) {
      for (const p of t.parts) {
        const path = `${fileName(schema.name)}/${fileName(t.name)}/${p.file}`;
        if (!reader.has(path)) throw new IntegrityError(`the dump lacks ${path}, which schema.json lists`);
      }
    }
  }
  return { plan, users, rename };
}

/** The target databases that exist and hold tables, routines or events. */
async function occupiedDatabases(control: Connection, plan: RestorePlan): Promise<string[]> {
  const occupied: string[] = [];
  for (const { to } of plan) {
    const [[objects]] = (await control.queryStrings(
      `SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${literal(to)}) + ` +
        `(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${literal(to)}) + ` +
        `(SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${literal(to)})`,
    )) as [[string]];
    if (Number(objects) > 0) occupied.push(to);
  }
  return occupied;
}

/** Databases (occupied ones dropped first), sequences, and tables with their primary keys only; the rest of each CREATE TABLE comes after the data. */
async function createTables(
  control: Connection,
  plan: RestorePlan,
  occupied: string[],
  rename: Map<string, string>,
  summary: MariadbRestoreSummary,
  progress: MariadbRestoreProgress,
  report: () => void,
): Promise<SplitTables> {
  const split: SplitTables = new Map();
  for (const { to, schema } of plan) {
    progress.current = to;
    report();
    if (occupied.includes(to)) await control.execute(`DROP DATABASE ${ident(to)}`);
    await control.execute(`CREATE DATABASE IF NOT EXISTS ${ident(to)} CHARACTER SET ${schema.characterSet} COLLATE ${schema.collation}`);
    await control.execute(`USE ${ident(to)}`);
    // Sequences first: a column's default may take its value from one.
    for (const seq of schema.sequences) {
      await control.execute(seq.create);
      await control.query(`SELECT SETVAL(${ident(seq.name)}, ${BigInt(seq.next).toString()}, 0)`);
    }
    for (const table of schema.tables) {
      const parts = splitCreateTable(renameQualifiers(table.create, rename), table.engine);
      split.set(table, parts);
      await control.execute(parts.create);
      summary.tables++;
    }
  }
  return split;
}

type SplitTables = Map<TableSchema, ReturnType<typeof splitCreateTable>>;

/**
 * Every part of every table loaded over the loader connections, one connection per table
 * at a time (see runTablePipeline); each table's secondary indexes are built (one ALTER,
 * so that the table is read once) as soon as its data is in, while the other connections
 * go on loading.
 */
async function loadDataAndIndexes(
  loaders: Connection[],
  reader: DumpReader,
  plan: RestorePlan,
  split: SplitTables,
  summary: MariadbRestoreSummary,
  progress: MariadbRestoreProgress,
  report: () => void,
  signal?: AbortSignal,
): Promise<void> {
  // The biggest table first (its load and its index build are the longest path), each table's biggest part first.
  const bytesOf = new Map(plan.flatMap(({ schema }) => schema.tables.map((table) => [table, tableBytes(table)] as const)));
  const jobs = plan
    .flatMap(({ to, schema }) => schema.tables.flatMap((table) => table.parts.map((part) => ({ database: to, source: schema.name, table, part }))))
    .sort((a, b) => bytesOf.get(b.table)! - bytesOf.get(a.table)! || b.part.bytes - a.part.bytes);
  progress.phase = 'data';
  progress.bytesTotal = jobs.reduce((n, j) => n + j.part.bytes, 0);
  progress.rowsTotal = jobs.reduce((n, j) => n + j.part.rows, 0);
  let partsLeft = jobs.length;
  const parts = jobs.map((job) => ({
    table: job.table,
    load: async (conn: Connection) => {
      progress.current = `${job.database}.${job.table.name}`;
      const path = `${fileName(job.source)}/${fileName(job.table.name)}/${job.part.file}`;
      let counted = 0;
      const ok = await retryLockConflicts(
        () =>
          conn.loadLocal(loadStatement(job.database, job.table), countBytes(reader.read(path), (n) => {
            counted += n;
            progress.bytesDone += n;
            report();
          })),
        () => {
          progress.bytesDone -= counted;
          counted = 0;
        },
      );
      await checkLoaded(conn, job.database, job.table, job.part, ok.affectedRows, ok.warnings, summary);
      summary.rows += job.part.rows;
      summary.bytes += job.part.bytes;
      progress.rowsDone += job.part.rows;
      if (--partsLeft === 0) progress.phase = 'indexes';
    },
  }));
  if (jobs.length === 0) progress.phase = 'indexes';
  const indexBuilds = new Map(
    plan.flatMap(({ to, schema }) =>
      schema.tables
        .filter((table) => split.get(table)!.indexes.length > 0)
        .map((table) => [table, (conn: Connection) => alterTable(conn, to, table, split.get(table)!.indexes, progress, report)] as const),
    ),
  );
  await runTablePipeline(loaders, parts, indexBuilds, signal);
}

/** Foreign keys once every table has its indexes (a key may need the referenced table's). */
async function addForeignKeys(loaders: Connection[], plan: RestorePlan, split: SplitTables, progress: MariadbRestoreProgress, report: () => void, signal?: AbortSignal): Promise<void> {
  // One ALTER per table, the biggest first: as parts of tables, each its own, with nothing to follow.
  const alters = plan
    .flatMap(({ to, schema }) =>
      schema.tables
        .filter((table) => split.get(table)!.foreignKeys.length > 0)
        .map((table) => ({ table, load: (conn: Connection) => alterTable(conn, to, table, split.get(table)!.foreignKeys, progress, report) })),
    )
    .sort((a, b) => tableBytes(b.table) - tableBytes(a.table));
  await runTablePipeline(loaders, alters, new Map(), signal);
}

async function alterTable(conn: Connection, database: string, table: TableSchema, clauses: string[], progress: MariadbRestoreProgress, report: () => void): Promise<void> {
  progress.current = `${database}.${table.name}`;
  report();
  await retryLockConflicts(() => conn.execute(`ALTER TABLE ${qualified(database, table.name)} ${clauses.join(', ')}`));
}

function tableBytes(t: TableSchema): number {
  return t.parts.reduce((n, p) => n + p.bytes, 0);
}

async function* countBytes(source: AsyncIterable<Buffer>, add: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const block of source) {
    add(block.length);
    yield block;
  }
}

/** The row count the dump recorded must be the row count the server loaded. */
async function checkLoaded(conn: Connection, database: string, table: TableSchema, part: TablePart, loaded: number, warnings: number, summary: MariadbRestoreSummary): Promise<void> {
  if (warnings > 0) {
    const rows = await conn.queryStrings('SHOW WARNINGS LIMIT 5');
    for (const r of rows) summary.warnings.push(`${database}.${table.name} (${part.file}): ${r[2]}`);
    if (warnings > rows.length) summary.warnings.push(`${database}.${table.name} (${part.file}): ${warnings - rows.length} more warnings`);
  }
  if (loaded !== part.rows) {
    throw new IntegrityError(`${database}.${table.name} ${part.file}: the dump recorded ${part.rows} rows but ${loaded} were loaded`);
  }
}

/** Views may use other views: create what can be created, then retry the rest until nothing is left. */
async function createViews(conn: Connection, database: string, views: ObjectDef[], rename: Map<string, string>): Promise<void> {
  let pending = views;
  while (pending.length > 0) {
    const failed: Array<{ view: ObjectDef; err: ServerError }> = [];
    for (const view of pending) {
      try {
        await createObject(conn, database, view, renameQualifiers(view.create, rename));
      } catch (err) {
        if (!(err instanceof ServerError) || !MISSING_DEPENDENCY.has(err.code)) throw err;
        failed.push({ view, err });
      }
    }
    if (failed.length === pending.length) {
      throw new StackvaultError(`cannot create view ${database}.${failed[0]!.view.name}: ${failed[0]!.err.serverMessage}`);
    }
    pending = failed.map((f) => f.view);
  }
}

function isPublic(u: UserDef): boolean {
  return u.role && u.user.toUpperCase() === 'PUBLIC';
}

async function createUsers(conn: Connection, users: UserDef[], summary: MariadbRestoreSummary): Promise<void> {
  for (const u of users) {
    // MariaDB 10.11 lists grants to PUBLIC as a role of that name, which no one can create: its grants are applied as they are.
    if (isPublic(u)) continue;
    const create = u.create.replace(/^CREATE (USER|ROLE) /, 'CREATE $1 IF NOT EXISTS ');
    const ok = await conn.execute(create);
    if (ok.warnings > 0) summary.warnings.push(`${u.role ? 'role' : 'user'} ${u.user}@${u.host} already existed: kept as it was, grants added`);
  }
  for (const u of users) for (const grant of u.grants) await conn.execute(grant);
}
