import type { Connection } from './connection.js';
import type { ColumnLoad, DataColumn, ObjectDef, RoutineDef, SequenceDef, TriggerDef, UserDef } from './format.js';
import { ident, literal, qualified } from './sql.js';

/** Reading what a server holds: catalog queries and SHOW CREATE statements, on a utf8mb4 session with sql_mode ''. */

export interface DatabaseInfo {
  name: string;
  characterSet: string;
  collation: string;
}

export interface TableInfo {
  name: string;
  type: 'table' | 'view' | 'sequence';
  engine: string | null;
  estimatedRows: number;
  dataLength: number;
  columns: DataColumn[];
  /** SQL types of the data columns, to pick range splitting */
  columnTypes: Map<string, string>;
  primaryKey: string[];
  /** a system-versioned table's period columns */
  history?: { start: string; end: string };
}

/** Types that read a binary string as their internal form: their text must arrive as text. */
const TEXT_TYPES = new Set(['json', 'uuid', 'inet4', 'inet6']);

const INTEGER_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);

export function isIntegerType(dataType: string | undefined): boolean {
  return dataType !== undefined && INTEGER_TYPES.has(dataType.toLowerCase());
}

export async function listDatabases(conn: Connection): Promise<DatabaseInfo[]> {
  const rows = await conn.queryStrings('SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME');
  return rows.map(([name, characterSet, collation]) => ({ name: name!, characterSet: characterSet!, collation: collation! }));
}

export async function readTables(conn: Connection, database: string): Promise<TableInfo[]> {
  const db = literal(database);
  const tables = await conn.queryStrings(
    `SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${db} ORDER BY TABLE_NAME`,
  );
  const columns = await conn.queryStrings(
    `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ${db} ORDER BY TABLE_NAME, ORDINAL_POSITION`,
  );
  const keys = await conn.queryStrings(
    `SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ${db} AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX`,
  );
  const byName = new Map<string, TableInfo>();
  const periods = new Map<string, { start: string; end: string }>();
  for (const [name, type] of tables) if (type === 'SYSTEM VERSIONED') periods.set(name!, await periodColumns(conn, database, name!));
  for (const [name, type, engine, rows, length] of tables) {
    const kind = type === 'VIEW' ? 'view' : type === 'SEQUENCE' ? 'sequence' : 'table';
    byName.set(name!, {
      name: name!,
      type: kind,
      engine,
      estimatedRows: Number(rows ?? 0),
      dataLength: Number(length ?? 0),
      columns: [],
      columnTypes: new Map(),
      primaryKey: [],
      history: periods.get(name!),
    });
  }
  for (const [table, column, dataType, extra] of columns) {
    const t = byName.get(table!);
    if (!t || t.type !== 'table') continue;
    const period = t.history && (column === t.history.start || column === t.history.end);
    // Generated columns are computed by the server on load; storing them would make LOAD DATA fail.
    // A period's columns are "generated" too, but they are the history: they come last, below.
    if (period || /\bGENERATED\b/i.test(extra ?? '')) continue;
    const type = dataType!.toLowerCase();
    const load: ColumnLoad = type === 'bit' ? 'bit' : type === 'float' ? 'float' : TEXT_TYPES.has(type) ? 'text' : 'plain';
    t.columns.push({ name: column!, load });
    t.columnTypes.set(column!, type);
  }
  for (const t of byName.values()) {
    if (!t.history) continue;
    t.columns.push({ name: t.history.start, load: 'plain' }, { name: t.history.end, load: 'plain' });
    t.columnTypes.set(t.history.start, 'timestamp').set(t.history.end, 'timestamp');
  }
  for (const [table, column] of keys) byName.get(table!)?.primaryKey.push(column!);
  return [...byName.values()];
}

/** The columns of a system-versioned table's period: named in its PERIOD FOR SYSTEM_TIME, else the hidden ROW_START and ROW_END. */
async function periodColumns(conn: Connection, database: string, table: string): Promise<{ start: string; end: string }> {
  const create = await showCreateTable(conn, database, table);
  const named = /PERIOD FOR SYSTEM_TIME \(`((?:[^`]|``)*)`, `((?:[^`]|``)*)`\)/.exec(create);
  return named ? { start: named[1]!.replaceAll('``', '`'), end: named[2]!.replaceAll('``', '`') } : { start: 'ROW_START', end: 'ROW_END' };
}

export async function showCreateDatabase(conn: Connection, database: string): Promise<string> {
  const rows = await conn.queryStrings(`SHOW CREATE DATABASE ${ident(database)}`);
  return rows[0]![1]!;
}

export async function showCreateTable(conn: Connection, database: string, table: string): Promise<string> {
  const rows = await conn.queryStrings(`SHOW CREATE TABLE ${qualified(database, table)}`);
  return rows[0]![1]!;
}

export async function readSequence(conn: Connection, database: string, name: string): Promise<SequenceDef> {
  const create = (await conn.queryStrings(`SHOW CREATE SEQUENCE ${qualified(database, name)}`))[0]![1]!;
  const next = (await conn.queryStrings(`SELECT next_not_cached_value FROM ${qualified(database, name)}`))[0]![0]!;
  return { name, create, next };
}

export async function readViews(conn: Connection, database: string, names: string[]): Promise<ObjectDef[]> {
  const views: ObjectDef[] = [];
  for (const name of names) {
    const rows = await conn.queryObjects(`SHOW CREATE VIEW ${qualified(database, name)}`);
    const r = rows[0]!;
    views.push({ name, create: r['Create View']!, characterSetClient: r.character_set_client!, collationConnection: r.collation_connection! });
  }
  return views;
}

export async function readRoutines(conn: Connection, database: string): Promise<RoutineDef[]> {
  const list = await conn.queryStrings(
    `SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${literal(database)} ORDER BY ROUTINE_TYPE, ROUTINE_NAME`,
  );
  const routines: RoutineDef[] = [];
  for (const [type, name] of list) {
    const rows = await conn.queryObjects(`SHOW CREATE ${type} ${qualified(database, name!)}`);
    const r = rows[0]!;
    const create = r[`Create ${type!.charAt(0)}${type!.slice(1).toLowerCase()}`] ?? Object.values(r)[2]!;
    if (create === null) throw new Error(`cannot read the definition of ${type!.toLowerCase()} ${database}.${name}: the backup user needs SELECT on mysql.proc or SHOW CREATE ROUTINE`);
    routines.push({
      type: type as RoutineDef['type'],
      name: name!,
      create,
      sqlMode: r.sql_mode!,
      characterSetClient: r.character_set_client!,
      collationConnection: r.collation_connection!,
      databaseCollation: r['Database Collation']!,
    });
  }
  return routines;
}

export async function readTriggers(conn: Connection, database: string): Promise<TriggerDef[]> {
  const list = await conn.queryStrings(
    `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_ORDER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${literal(database)} ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER`,
  );
  const triggers: TriggerDef[] = [];
  for (const [name, table, order] of list) {
    const r = (await conn.queryObjects(`SHOW CREATE TRIGGER ${qualified(database, name!)}`))[0]!;
    triggers.push({
      name: name!,
      table: table!,
      order: Number(order),
      create: r['SQL Original Statement']!,
      sqlMode: r.sql_mode!,
      characterSetClient: r.character_set_client!,
      collationConnection: r.collation_connection!,
      databaseCollation: r['Database Collation']!,
    });
  }
  return triggers;
}

export async function readEvents(conn: Connection, database: string): Promise<ObjectDef[]> {
  const list = await conn.queryStrings(`SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${literal(database)} ORDER BY EVENT_NAME`);
  const events: ObjectDef[] = [];
  for (const [name] of list) {
    const r = (await conn.queryObjects(`SHOW CREATE EVENT ${qualified(database, name!)}`))[0]!;
    events.push({
      name: name!,
      create: r['Create Event']!,
      sqlMode: r.sql_mode!,
      timeZone: r.time_zone!,
      characterSetClient: r.character_set_client!,
      collationConnection: r.collation_connection!,
      databaseCollation: r['Database Collation']!,
    });
  }
  return events;
}

/** Accounts the server creates itself; they exist on any target already. */
const SYSTEM_USERS = new Set(['root', 'mariadb.sys', 'mysql.sys', 'mysql.session', 'mysql.infoschema', 'debian-sys-maint']);

export async function readUsers(conn: Connection): Promise<UserDef[]> {
  const hasRoles = (await conn.queryStrings("SHOW COLUMNS FROM mysql.user LIKE 'is_role'")).length > 0;
  const list = await conn.queryStrings(`SELECT User, Host${hasRoles ? ', is_role' : ", 'N'"} FROM mysql.user ORDER BY User, Host`);
  const users: UserDef[] = [];
  for (const [user, host, isRole] of list) {
    if (SYSTEM_USERS.has(user!) || user === '') continue;
    const role = isRole === 'Y';
    const account = role ? ident(user!) : `${literal(user!)}@${literal(host!)}`;
    const create = role ? `CREATE ROLE ${ident(user!)}` : (await conn.queryStrings(`SHOW CREATE USER ${account}`))[0]![0]!;
    const grants = (await conn.queryStrings(`SHOW GRANTS FOR ${account}`)).map((r) => r[0]!);
    users.push({ user: user!, host: host!, role, create, grants });
  }
  return users;
}
