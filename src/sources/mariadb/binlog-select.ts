import { StackvaultError, UsageError } from '../../util/errors.js';
import {
  EventType,
  checksumOfFormat,
  endsTransaction,
  isRowsEvent,
  readGtid,
  readHeader,
  readQuery,
  readTableMap,
  rowsTableId,
} from './binlog-events.js';

/**
 * Where a replay stops: after the last transaction committed by a moment, after one GTID,
 * or at a GTID state (what @@gtid_binlog_pos said when a snapshot was taken: the last
 * transaction of each domain).
 */
export type ReplayTarget = { time: Date } | { gtid: string } | { gtidState: string };

export interface SelectionResult {
  transactions: number;
  events: number;
  /** the GTID of the last transaction replayed */
  lastGtid?: string;
  /** the log's time of the last transaction replayed (seconds since 1970) */
  lastTimestamp?: number;
  /** true once a transaction past the target was seen: nothing the target asks for is missing */
  passedTarget: boolean;
  /** true for a GTID target that was replayed */
  reachedGtid: boolean;
}

/**
 * The events to replay, in log order: whole transactions up to the target, nothing after
 * it. A transaction belongs to the moment its GTID event records (written at commit, so
 * the commit's second). Events of databases outside `databases` are left out the way
 * mariadb-binlog's --database does for rows: a table map of such a database and its rows
 * events, a statement run in it; statements without a default database stay.
 */
export async function* selectEvents(
  events: AsyncIterable<Buffer>,
  target: ReplayTarget,
  databases: ReadonlySet<string> | undefined,
  result: SelectionResult,
  /** databases restored under other names: a statement naming one in its text would reach the original, and stops the replay */
  renamed: ReadonlySet<string> = new Set(),
): AsyncGenerator<Buffer> {
  const naming = renamed.size > 0 ? new RegExp(`(^|[^\\w$])\`?(${[...renamed].map(escapeRegExp).join('|')})\`?\\s*\\.`, 'i') : undefined;
  const stopAt = 'time' in target ? Math.floor(target.time.getTime() / 1000) : undefined;
  const state = 'gtidState' in target ? parseGtidState(target.gtidState) : undefined;
  const skippedTables = new Set<number>();
  let checksummed = true;
  let inGroup = false;
  for await (const event of events) {
    const header = readHeader(event);
    if (header.type === EventType.FORMAT_DESCRIPTION) checksummed = checksumOfFormat(event) === 1;
    if (header.type === EventType.GTID) {
      if (result.reachedGtid || (stopAt !== undefined && header.timestamp > stopAt)) {
        result.passedTarget = true;
        return;
      }
      const { gtid, domain, standalone } = readGtid(event, header);
      if (state && !(Number(gtid.split('-')[2]) <= (state.get(domain) ?? -1))) {
        result.passedTarget = true;
        return;
      }
      inGroup = !standalone;
      skippedTables.clear();
      result.transactions++;
      result.lastGtid = gtid;
      result.lastTimestamp = header.timestamp;
      if ('gtid' in target && gtid === target.gtid) result.reachedGtid = true;
      result.events++;
      yield event;
      continue;
    }
    if (databases && !wanted(event, header.type, checksummed, databases, skippedTables)) continue;
    if (naming && header.type === EventType.QUERY) {
      const { sql } = readQuery(event, checksummed);
      const named = sql === undefined ? null : naming.exec(sql);
      if (named) {
        throw new StackvaultError(
          `the binary log holds a statement that names database ${named[2]} in its text (${sql!.slice(0, 120)}): replayed under another name it would change the original, so the replay stops here`,
        );
      }
    }
    if (header.type === EventType.XID || (header.type === EventType.QUERY && endsTransaction(readQuery(event, checksummed).sql))) inGroup = false;
    result.events++;
    yield event;
  }
  if (inGroup) throw new StackvaultError(`the archive ends inside transaction ${result.lastGtid}: its end was never archived`);
}

function wanted(event: Buffer, type: number, checksummed: boolean, databases: ReadonlySet<string>, skippedTables: Set<number>): boolean {
  if (type === EventType.TABLE_MAP) {
    const map = readTableMap(event);
    if (databases.has(map.database)) return true;
    skippedTables.add(map.tableId);
    return false;
  }
  if (isRowsEvent(type)) return !skippedTables.has(rowsTableId(event));
  if (type === EventType.QUERY || type === EventType.QUERY_COMPRESSED) {
    const { database, sql } = readQuery(event, checksummed);
    if (database === '' || databases.has(database)) return true;
    // BEGIN and COMMIT belong to the transaction, whatever database the session was in.
    return sql !== undefined && /^\s*(BEGIN|COMMIT|ROLLBACK|XA\s)/i.test(sql);
  }
  return true;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function parseGtidState(text: string): Map<number, number> {
  const state = new Map<number, number>();
  for (const gtid of text.split(',').map((g) => g.trim()).filter(Boolean)) {
    const [domain, , seq] = gtid.split('-').map(Number) as [number, number, number];
    state.set(domain, seq);
  }
  return state;
}

/** Parse --to-time: local time "YYYY-MM-DD HH:MM:SS" (as the server's logs show it), or any ISO time with a zone. */
export function parseTargetTime(text: string): Date {
  const local = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text.trim());
  const date = local
    ? new Date(Number(local[1]), Number(local[2]) - 1, Number(local[3]), Number(local[4]), Number(local[5]), Number(local[6] ?? 0))
    : new Date(text);
  if (Number.isNaN(date.getTime())) throw new UsageError(`--to-time ${text}: expected a time like "2026-12-04 10:15:00" (local time) or 2026-12-04T10:15:00Z`);
  return date;
}

export function parseTargetGtid(text: string): string {
  if (!/^\d+-\d+-\d+$/.test(text.trim())) throw new UsageError(`--to-gtid ${text}: expected a MariaDB GTID, domain-server-sequence (e.g. 0-1-1234)`);
  return text.trim();
}
