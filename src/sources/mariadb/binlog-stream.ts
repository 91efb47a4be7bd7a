import { StackvaultError } from '../../util/errors.js';
import {
  EventType,
  checksumOfFormat,
  formatCreated,
  isArtificial,
  readGtid,
  readHeader,
  readRotate,
  type EventHeader,
} from './binlog-events.js';
import { Connection, type ConnectOptions } from './connection.js';
import { literal } from './sql.js';

export interface BinlogPoint {
  file: string;
  position: number;
}

/** One event of the log as the archive keeps it, with where the log stands after it. */
export interface ArchivedEvent {
  bytes: Buffer;
  header: EventHeader;
  /** the position just after this event */
  end: BinlogPoint;
  /** set on a GTID event */
  gtid?: string;
}

export interface BinlogServerState {
  /** the file and offset the server writes next */
  current: BinlogPoint;
  format: string;
  serverId: number;
  /** binary log files the server still has, oldest first */
  files: Array<{ file: string; size: number }>;
}

/** Heartbeats from an idle server: without one for three periods the connection is taken as lost. */
export const HEARTBEAT_SECONDS = 5;

/**
 * What archiving needs of the server, or a clear error: binary logging on (log_bin), the
 * REPLICATION SLAVE privilege, a known position.
 */
export async function readServerState(conn: Connection): Promise<BinlogServerState> {
  const [[logBin, format, serverId]] = (await conn.queryStrings('SELECT @@global.log_bin, @@global.binlog_format, @@global.server_id')) as [[string, string, string]];
  if (logBin !== '1') {
    throw new StackvaultError(
      'the server does not write a binary log (log_bin is off): point-in-time recovery needs it. Start mariadbd with --log-bin (and --binlog-format=ROW, --server-id=1), or set log_bin in its configuration',
    );
  }
  const status = await conn.queryObjects('SHOW MASTER STATUS');
  const files = (await conn.queryObjects('SHOW BINARY LOGS')).map((r) => ({ file: r.Log_name!, size: Number(r.File_size) }));
  if (status.length === 0) throw new StackvaultError('SHOW MASTER STATUS says nothing: the server writes no binary log');
  return { current: { file: status[0]!.File!, position: Number(status[0]!.Position) }, format: format, serverId: Number(serverId), files };
}

/** The warning an operator should see when the log's format makes replay depend on statements. */
export function formatAdvice(format: string): string | undefined {
  return format.toUpperCase() === 'ROW'
    ? undefined
    : `the server logs in ${format} format: statements that depend on the moment they ran (NOW(), RAND(), UUID()) replay exactly only in ROW format; set binlog_format=ROW`;
}

export interface BinlogStreamOptions {
  /** the id this reader announces: no two readers of one server may share it, nor a replica's */
  readerId: number;
  signal?: AbortSignal;
  /** every format description, with the time its file was created (those the server makes up at the start of a dump are not yielded) */
  onFormat?: (formatEvent: Buffer, fileCreated: number) => void;
  /** called for each heartbeat: the server has nothing more to send */
  onIdle?: () => void;
}

/**
 * Follow the server's binary log from a position, as a replica would, yielding every event
 * the log holds (in order, each once) with the position after it. Ends when the connection
 * does (or the signal aborts); the caller reconnects from the last position it kept.
 */
export async function* followBinlog(options: ConnectOptions, from: BinlogPoint, stream: BinlogStreamOptions): AsyncGenerator<ArchivedEvent> {
  const conn = await Connection.connect(options);
  const abort = () => conn.destroy();
  stream.signal?.addEventListener('abort', abort, { once: true });
  try {
    const [[checksum]] = (await conn.queryStrings('SELECT @@global.binlog_checksum')) as [[string]];
    // Events come as the log holds them (checksums included), GTID events as GTID events.
    await conn.execute(`SET @master_binlog_checksum = ${literal(checksum)}, @mariadb_slave_capability = 4, @master_heartbeat_period = ${HEARTBEAT_SECONDS * 1_000_000_000}`);
    let checksummed = checksum.toUpperCase() !== 'NONE';
    let file = from.file;
    let lastContact = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastContact > 3 * HEARTBEAT_SECONDS * 1000) conn.destroy();
    }, 1000);
    try {
      for await (const bytes of conn.binlogDump(from.file, from.position, stream.readerId, true)) {
        lastContact = Date.now();
        const header = readHeader(bytes);
        if (header.type === EventType.HEARTBEAT) {
          stream.onIdle?.();
          continue;
        }
        if (header.type === EventType.FORMAT_DESCRIPTION) checksummed = checksumOfFormat(bytes) === 1;
        if (header.type === EventType.ROTATE) {
          const next = readRotate(bytes, checksummed);
          if (isArtificial(header)) {
            file = next.file;
            continue;
          }
          yield { bytes, header, end: { file: next.file, position: next.position } };
          file = next.file;
          continue;
        }
        if (isArtificial(header)) {
          if (header.type === EventType.FORMAT_DESCRIPTION) stream.onFormat?.(bytes, formatCreated(bytes));
          continue;
        }
        if (header.type === EventType.FORMAT_DESCRIPTION) stream.onFormat?.(bytes, formatCreated(bytes));
        const event: ArchivedEvent = { bytes, header, end: { file, position: header.nextPosition } };
        if (header.type === EventType.GTID) event.gtid = readGtid(bytes, header).gtid;
        yield event;
      }
    } finally {
      clearInterval(watchdog);
    }
  } finally {
    stream.signal?.removeEventListener('abort', abort);
    conn.destroy();
  }
}
