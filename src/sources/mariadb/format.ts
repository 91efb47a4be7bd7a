/**
 * The layout of a database source inside a snapshot (see docs/format.md):
 *
 *   dump.json                      DumpManifest
 *   users.json                     UserDef[] (when users are dumped)
 *   <database>/schema.json         DatabaseSchema
 *   <database>/<table>/<part>.tsv  table data, one file per primary-key range
 *
 * Names are percent-encoded (fileName in sql.ts). Field order is fixed so that unchanged
 * objects produce unchanged bytes and deduplicate.
 */
export const DUMP_FORMAT = 'stackvault-mariadb-dump/1';

export interface DumpManifest {
  format: typeof DUMP_FORMAT;
  server: { version: string; flavor: 'mariadb' | 'mysql' };
  /** how the workers' transactions were made to see one moment */
  consistency: 'backup-stage' | 'flush-tables-with-read-lock' | 'single-connection';
  /** the binary log position of that moment, for point-in-time recovery */
  binlog: { gtid?: string; file?: string; position?: string } | null;
  databases: string[];
  users: boolean;
  /** what the dump could not guarantee, e.g. tables without transactions */
  warnings: string[];
}

/** A schema object as SHOW CREATE gives it, with the session settings it was created under. */
export interface ObjectDef {
  name: string;
  create: string;
  sqlMode?: string;
  characterSetClient?: string;
  collationConnection?: string;
  databaseCollation?: string;
  timeZone?: string;
}

export interface RoutineDef extends ObjectDef {
  type: 'PROCEDURE' | 'FUNCTION' | 'PACKAGE' | 'PACKAGE BODY';
}

export interface TriggerDef extends ObjectDef {
  table: string;
  /** position among the table's triggers for the same event and timing */
  order: number;
}

/**
 * How a column's text is turned back into a value by LOAD DATA: as the raw bytes
 * (plain), as a number (BIT, dumped as a number), or as utf8mb4 text (JSON, UUID, INET4,
 * INET6, which would take a binary string for their internal form). FLOAT is dumped as a
 * DOUBLE: the server prints a FLOAT with 6 digits, which does not give back the same value.
 */
export type ColumnLoad = 'plain' | 'bit' | 'text' | 'float';

export interface DataColumn {
  name: string;
  load: ColumnLoad;
}

export interface TablePart {
  file: string;
  rows: number;
  bytes: number;
}

export interface TableSchema {
  name: string;
  engine: string | null;
  create: string;
  /** the columns in the data files, in order (generated columns are left out: the server computes them) */
  columns: DataColumn[];
  primaryKey: string[];
  parts: TablePart[];
  /**
   * A system-versioned table: its rows are read FOR SYSTEM_TIME ALL, history included, and
   * the last two data columns are its period (ROW_START and ROW_END, or the columns its
   * PERIOD FOR SYSTEM_TIME names), loaded back with system_versioning_insert_history.
   */
  history?: { start: string; end: string };
}

/** Where a table's rows are read from: all of a system-versioned table's history too. */
export function rowSource(qualifiedName: string, table: Pick<TableSchema, 'history'>): string {
  return table.history ? `${qualifiedName} FOR SYSTEM_TIME ALL` : qualifiedName;
}

/** The order rows are read in: the primary key, then (for history) the end of each row's period. */
export function rowOrder(table: Pick<TableSchema, 'primaryKey' | 'history'>, ident: (name: string) => string): string {
  const keys = table.history && !table.primaryKey.includes(table.history.end) ? [...table.primaryKey, table.history.end] : table.primaryKey;
  return keys.length ? ` ORDER BY ${keys.map(ident).join(', ')}` : '';
}

export interface SequenceDef extends ObjectDef {
  /** the next value the sequence hands out */
  next: string;
}

export interface DatabaseSchema {
  name: string;
  characterSet: string;
  collation: string;
  tables: TableSchema[];
  sequences: SequenceDef[];
  views: ObjectDef[];
  routines: RoutineDef[];
  triggers: TriggerDef[];
  events: ObjectDef[];
}

export interface UserDef {
  user: string;
  host: string;
  role: boolean;
  create: string;
  grants: string[];
}

export function schemaPath(database: string, encode: (name: string) => string): string {
  return `${encode(database)}/schema.json`;
}

/** JSON with a newline at the end, the same bytes for the same content. */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, 1) + '\n', 'utf8');
}
