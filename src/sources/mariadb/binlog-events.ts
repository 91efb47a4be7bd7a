/**
 * The parts of a binary log event that archiving and replaying need: the common header,
 * and the few bodies that carry positions, transaction boundaries, GTIDs and database
 * names. Everything else is kept as the server wrote it. (MariaDB's "Binary Log Event
 * Formats"; all integers little-endian.)
 */

export const BINLOG_MAGIC = Buffer.from([0xfe, 0x62, 0x69, 0x6e]);
export const EVENT_HEADER_LENGTH = 19;

export const EventType = {
  QUERY: 2,
  STOP: 3,
  ROTATE: 4,
  FORMAT_DESCRIPTION: 15,
  XID: 16,
  TABLE_MAP: 19,
  WRITE_ROWS_V1: 23,
  UPDATE_ROWS_V1: 24,
  DELETE_ROWS_V1: 25,
  HEARTBEAT: 27,
  WRITE_ROWS_V2: 30,
  UPDATE_ROWS_V2: 31,
  DELETE_ROWS_V2: 32,
  ANNOTATE_ROWS: 160,
  GTID: 162,
  GTID_LIST: 163,
  QUERY_COMPRESSED: 165,
  WRITE_ROWS_COMPRESSED_V1: 169,
  UPDATE_ROWS_COMPRESSED_V1: 170,
  DELETE_ROWS_COMPRESSED_V1: 171,
  XA_PREPARE: 182,
} as const;

const ROWS_EVENT_TYPES = new Set<number>([
  EventType.WRITE_ROWS_V1,
  EventType.UPDATE_ROWS_V1,
  EventType.DELETE_ROWS_V1,
  EventType.WRITE_ROWS_V2,
  EventType.UPDATE_ROWS_V2,
  EventType.DELETE_ROWS_V2,
  EventType.WRITE_ROWS_COMPRESSED_V1,
  EventType.UPDATE_ROWS_COMPRESSED_V1,
  EventType.DELETE_ROWS_COMPRESSED_V1,
  166, // WRITE_ROWS_COMPRESSED
  167, // UPDATE_ROWS_COMPRESSED
  168, // DELETE_ROWS_COMPRESSED
]);

/** Set on events the server makes up for a reader (a rotate to say which file, a format description) rather than reads from the log. */
const LOG_EVENT_ARTIFICIAL_F = 0x20;
/** A GTID event's flag: the group is one statement (DDL) with no COMMIT of its own. */
const FL_STANDALONE = 0x01;

export interface EventHeader {
  /** seconds since 1970, when the statement started */
  timestamp: number;
  type: number;
  serverId: number;
  size: number;
  /** where the next event starts in the log file; 0 for events made up for the reader */
  nextPosition: number;
  flags: number;
}

export function readHeader(event: Buffer): EventHeader {
  if (event.length < EVENT_HEADER_LENGTH) throw new Error(`a binary log event of ${event.length} bytes is shorter than its header`);
  return {
    timestamp: event.readUInt32LE(0),
    type: event[4]!,
    serverId: event.readUInt32LE(5),
    size: event.readUInt32LE(9),
    nextPosition: event.readUInt32LE(13),
    flags: event.readUInt16LE(17),
  };
}

export function isArtificial(header: EventHeader): boolean {
  return (header.flags & LOG_EVENT_ARTIFICIAL_F) !== 0 || header.nextPosition === 0;
}

export function isRowsEvent(type: number): boolean {
  return ROWS_EVENT_TYPES.has(type);
}

/** A format description's checksum algorithm: 1 (CRC32) means every event of the file ends in 4 checksum bytes. */
export function checksumOfFormat(event: Buffer): number {
  // The body ends with the algorithm byte and the event's own 4-byte checksum (when the
  // server knows checksums at all, which every MariaDB of 5.3 and later does).
  return event[event.length - 5]!;
}

/** The time a format description says its log file was created (0 when it does not say). */
export function formatCreated(event: Buffer): number {
  return event.readUInt32LE(EVENT_HEADER_LENGTH + 2 + 50);
}

/** A rotate event: the file the following events come from, and where in it. */
export function readRotate(event: Buffer, checksummed: boolean): { file: string; position: number } {
  const body = event.subarray(EVENT_HEADER_LENGTH, checksummed ? event.length - 4 : event.length);
  return { position: Number(body.readBigUInt64LE(0)), file: body.subarray(8).toString('utf8') };
}

/** A MariaDB GTID event: domain-server-sequence, and whether its group is a single statement. */
export function readGtid(event: Buffer, header: EventHeader): { gtid: string; domain: number; standalone: boolean } {
  const seq = event.readBigUInt64LE(EVENT_HEADER_LENGTH);
  const domain = event.readUInt32LE(EVENT_HEADER_LENGTH + 8);
  const flags = event[EVENT_HEADER_LENGTH + 12]!;
  return { gtid: `${domain}-${header.serverId}-${seq}`, domain, standalone: (flags & FL_STANDALONE) !== 0 };
}

/** A query event's default database and statement text (the text of a compressed query stays unread). */
export function readQuery(event: Buffer, checksummed: boolean): { database: string; sql: string | undefined } {
  const at = EVENT_HEADER_LENGTH;
  const dbLength = event[at + 8]!;
  const statusLength = event.readUInt16LE(at + 11);
  const dbStart = at + 13 + statusLength;
  const database = event.subarray(dbStart, dbStart + dbLength).toString('utf8');
  const type = event[4]!;
  const sqlEnd = checksummed ? event.length - 4 : event.length;
  const sql = type === EventType.QUERY ? event.subarray(dbStart + dbLength + 1, sqlEnd).toString('utf8') : undefined;
  return { database, sql };
}

/** A table map event: the table id the rows events after it use, and which table that is. */
export function readTableMap(event: Buffer): { tableId: number; database: string; table: string } {
  const at = EVENT_HEADER_LENGTH;
  const tableId = event.readUIntLE(at, 6);
  const dbLength = event[at + 8]!;
  const database = event.subarray(at + 9, at + 9 + dbLength).toString('utf8');
  const tableAt = at + 9 + dbLength + 1;
  const tableLength = event[tableAt]!;
  return { tableId, database, table: event.subarray(tableAt + 1, tableAt + 1 + tableLength).toString('utf8') };
}

/** The table id a rows event applies to. */
export function rowsTableId(event: Buffer): number {
  return event.readUIntLE(EVENT_HEADER_LENGTH, 6);
}

/** Whether a query event's statement ends the transaction it belongs to. */
export function endsTransaction(sql: string | undefined): boolean {
  return sql !== undefined && /^\s*(COMMIT|ROLLBACK|XA\s+(COMMIT|ROLLBACK|PREPARE))\b/i.test(sql);
}

/** Order of binary log file names: by their numeric suffix, which the server counts up. */
export function binlogFileNumber(file: string): number {
  const m = /\.(\d+)$/.exec(file);
  return m ? Number(m[1]) : 0;
}

/** Compare two positions of one server's log, in log order. */
export function comparePositions(a: { file: string; position: number }, b: { file: string; position: number }): number {
  return binlogFileNumber(a.file) - binlogFileNumber(b.file) || a.position - b.position;
}
