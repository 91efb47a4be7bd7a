import { randomBytes } from 'node:crypto';
import { BlobWriter } from '../../repo/encode/blob-writer.js';
import type { Repository } from '../../repo/repository.js';
import { EventType, comparePositions } from '../../sources/mariadb/binlog-events.js';
import { HEARTBEAT_SECONDS, followBinlog, formatAdvice, readServerState, type ArchivedEvent, type BinlogPoint } from '../../sources/mariadb/binlog-stream.js';
import { Connection, type ConnectOptions } from '../../sources/mariadb/connection.js';
import { StackvaultError, errorMessage } from '../../util/errors.js';
import { sleepUnlessAborted } from '../../util/sleep.js';
import { literal } from '../../sources/mariadb/sql.js';
import { listSnapshots } from '../snapshot.js';
import { chainsOf, listSegments, type BinlogSegment, type SegmentRef } from '../binlog-segments.js';

/** Data blobs of a segment: the log is not deduplicated, so no content-defined cuts. */
const BLOB_BYTES = 1024 * 1024;
/** A segment is committed early once this much is waiting, and reading pauses at twice it. */
const SEGMENT_MAX_BYTES = 16 * 1024 * 1024;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

export interface ArchiverOptions {
  /** opened for each connection to the server, so a repository that was unreachable is tried again */
  openRepository: () => Promise<Repository>;
  stack: string | null;
  host: string;
  source: string;
  /** where the server is, asked before each connection (a compose service's address can change) */
  connection: () => Promise<ConnectOptions>;
  /** a segment is committed at least this often while events arrive (RPO) */
  segmentSeconds: number;
  /** with nothing logged, an empty segment still says the archive is current this often */
  idleSeconds?: number;
  /** the server id the archiver reads the log as (unique among the server's replicas) */
  readerId?: number;
  signal: AbortSignal;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export interface ArchiverStatus {
  source: string;
  connected: boolean;
  /** the moment the archive is complete to (committed), ms since 1970; 0 before the first commit */
  coveredUntil: number;
  /** when events wait to be committed: the time the oldest arrived */
  oldestPendingAt: number | null;
  segments: number;
  bytes: number;
  lastError: string | null;
  position: BinlogPoint | null;
  /** the last event or heartbeat from the server, ms since 1970 */
  lastContact: number;
}

/** How far behind the archive is: seconds of the log that a host failure now would lose. */
export function archiveLagSeconds(status: ArchiverStatus, now: number): number {
  if (status.oldestPendingAt !== null) return Math.max(0, (now - status.oldestPendingAt) / 1000);
  // Idle and in touch: the server has logged nothing that is not archived.
  if (status.connected && now - status.lastContact < 2 * HEARTBEAT_SECONDS * 1000) return 0;
  if (status.coveredUntil === 0) return Number.POSITIVE_INFINITY;
  return Math.max(0, (now - status.coveredUntil) / 1000);
}

/**
 * Archives a MariaDB server's binary log into the repository, continuously: events are
 * read as a replica reads them and committed as segments at least every
 * `segmentSeconds`. After any failure (the server restarting, the repository unreachable,
 * the process killed) it continues from the last committed segment: what was read but not
 * committed is read again from the server, so nothing is skipped or stored twice.
 */
export class BinlogArchiver {
  readonly status: ArchiverStatus;
  private readonly readerId: number;

  constructor(private readonly options: ArchiverOptions) {
    this.readerId = options.readerId ?? readerIdFor(options.stack, options.source);
    this.status = { source: options.source, connected: false, coveredUntil: 0, oldestPendingAt: null, segments: 0, bytes: 0, lastError: null, position: null, lastContact: 0 };
  }

  /**
   * Whether archiving can work at all (the server reachable, its binary log on, the user
   * allowed to read it): a clear error now rather than retries forever.
   */
  async preflight(): Promise<{ format: string; advice: string | undefined }> {
    const conn = await Connection.connect(await this.options.connection());
    try {
      const state = await readServerState(conn);
      try {
        await conn.queryStrings(`SHOW BINLOG EVENTS IN ${literal(state.current.file)} LIMIT 1`);
      } catch (err) {
        throw new StackvaultError(`the user may not read the binary log (${errorMessage(err)}): grant it REPLICATION SLAVE and BINLOG MONITOR`);
      }
      return { format: state.format, advice: formatAdvice(state.format) };
    } finally {
      await conn.close();
    }
  }

  /** Run until the signal aborts; what was read by then is committed first. */
  async run(): Promise<void> {
    let wait = RETRY_MIN_MS;
    while (!this.options.signal.aborted) {
      const started = Date.now();
      try {
        await this.session();
      } catch (err) {
        if (this.options.signal.aborted) break;
        this.status.lastError = errorMessage(err);
        this.options.log?.('warn', `binary log archive of ${this.options.source}: ${errorMessage(err)}; trying again in ${Math.round(wait / 1000)} s`);
      }
      this.status.connected = false;
      if (Date.now() - started > RETRY_MAX_MS) wait = RETRY_MIN_MS;
      await sleepUnlessAborted(wait, this.options.signal);
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
  }

  /** One connection's worth: from the last committed point, until the connection or a commit fails. */
  private async session(): Promise<void> {
    const { source } = this.options;
    const repo = await this.options.openRepository();
    const connection = await this.options.connection();
    const conn = await Connection.connect(connection);
    let state;
    try {
      state = await readServerState(conn);
    } finally {
      await conn.close();
    }
    const advice = formatAdvice(state.format);
    if (advice && this.status.segments === 0) this.options.log?.('warn', `binary log archive of ${source}: ${advice}`);
    const start = await this.startingPoint(repo, state.files, state.current);
    let tip = start.tip;
    const chain = start.chain;
    let format = start.format;
    let fileCreated = tip?.segment.fileCreated ?? 0;
    let pending: ArchivedEvent[] = [];
    let pendingBytes = 0;
    let position: BinlogPoint = start.from;
    let segmentStart: BinlogPoint = start.from;
    let segmentFormat = format;
    let lastContact = Date.now();
    let lastCommitAt = Date.now();
    /** the last heartbeat: the server had sent everything it logged */
    let lastHeartbeat = 0;
    /** what the last commit claimed, and whether it held events */
    let committedCoverage = 0;
    let committedEvents = false;
    let committing: Promise<void> = Promise.resolve();
    let failure: unknown;
    const expectCreated = tip ? tip.segment.fileCreated : 0;
    let checkedIdentity = !tip || expectCreated === 0;
    this.status.position = position;

    const commit = (events: ArchivedEvent[], bytes: number, from: BinlogPoint, to: BinlogPoint, formatAtStart: Buffer, created: number, contact: number) => {
      committing = committing.then(async () => {
        if (failure) return;
        try {
          // One at a time: each segment names the one before it.
          const segment = await this.writeSegment(repo, events, bytes, { chain, prev: tip?.id ?? null, start: from, end: to, format: formatAtStart, fileCreated: created, coveredUntil: contact });
          tip = segment;
          lastCommitAt = Date.now();
          this.status.segments++;
          this.status.bytes += bytes;
          this.status.coveredUntil = committedCoverage = contact;
          committedEvents = events.length > 0;
          this.status.lastError = null;
        } catch (err) {
          failure = err;
        }
      });
      return committing;
    };
    const takePending = (contact: number) => {
      const events = pending;
      const bytes = pendingBytes;
      pending = [];
      pendingBytes = 0;
      this.status.oldestPendingAt = null;
      const from = segmentStart;
      segmentStart = position;
      const formatAtStart = segmentFormat;
      segmentFormat = format;
      return commit(events, bytes, from, position, formatAtStart, fileCreated, contact);
    };

    const session = new AbortController();
    const stop = () => session.abort();
    this.options.signal.addEventListener('abort', stop, { once: true });
    const idleMs = (this.options.idleSeconds ?? this.options.segmentSeconds * 10) * 1000;
    const timer = setInterval(() => {
      if (failure) return session.abort();
      const now = Date.now();
      if (pending.length > 0 && now - this.status.oldestPendingAt! >= this.options.segmentSeconds * 1000) void takePending(lastContact);
      else if (pending.length === 0 && now - lastContact < 2 * HEARTBEAT_SECONDS * 1000) {
        // Nothing logged: an empty segment says the archive is complete to this moment,
        // once the server went quiet after writing (so that a restore can reach the last
        // write), then every idle period.
        const quietAfterWrites = committedEvents && lastHeartbeat > committedCoverage;
        if (quietAfterWrites || now - lastCommitAt >= idleMs) {
          lastCommitAt = now;
          committedEvents = false;
          void takePending(quietAfterWrites ? lastHeartbeat : lastContact);
        }
      }
    }, 250);
    try {
      const events = followBinlog(connection, start.from, {
        readerId: this.readerId,
        signal: session.signal,
        onFormat: (event, created) => {
          format = event;
          if (pending.length === 0) segmentFormat = event;
          if (!checkedIdentity) {
            // The first format description is that of the file the archive ended in.
            checkedIdentity = true;
            if (created !== 0 && created !== expectCreated) {
              this.forceNewChain = true;
              throw new StackvaultError(`the server's ${position.file} is not the file archived before (created ${new Date(created * 1000).toISOString()}, not ${new Date(expectCreated * 1000).toISOString()}): a rebuilt server; a new archive chain starts`);
            }
          }
          if (created !== 0) fileCreated = created;
        },
        onIdle: () => (lastHeartbeat = lastContact = this.status.lastContact = Date.now()),
      });
      this.status.connected = true;
      this.status.lastContact = lastContact = Date.now();
      this.status.lastError = null;
      for await (const event of events) {
        lastContact = this.status.lastContact = Date.now();
        if (pending.length === 0) this.status.oldestPendingAt = lastContact;
        // The next file's creation is known from its format description, which follows.
        if (event.header.type === EventType.ROTATE) fileCreated = 0;
        pending.push(event);
        pendingBytes += event.bytes.length;
        position = event.end;
        this.status.position = position;
        if (pendingBytes >= SEGMENT_MAX_BYTES) {
          const done = takePending(lastContact);
          // Bounded memory: the log waits at the server while the repository is slower than it.
          await done;
        }
        if (failure) break;
      }
      if (failure) throw failure;
    } finally {
      clearInterval(timer);
      this.options.signal.removeEventListener('abort', stop);
      // A stop commits what was read; after a failure it is read again by the next session.
      if (!failure && pending.length > 0 && this.options.signal.aborted) void takePending(lastContact);
      await committing;
    }
    if (failure) throw failure;
  }

  /** set when the server's log turned out not to be the archived one: the next session starts a new chain */
  private forceNewChain = false;

  /**
   * Continue the newest chain where it ended, if the server still has that file; else
   * start a chain at the newest snapshot's position (so that it can be rolled forward), or
   * at the server's current position.
   */
  private async startingPoint(
    repo: Repository,
    files: Array<{ file: string; size: number }>,
    current: BinlogPoint,
  ): Promise<{ from: BinlogPoint; tip: SegmentRef | undefined; chain: string; format: Buffer }> {
    const { stack, source } = this.options;
    const chains = chainsOf(await listSegments(repo, stack, source));
    const newest = chains[chains.length - 1];
    const tip = newest?.[newest.length - 1];
    const has = (p: BinlogPoint) => files.some((f) => f.file === p.file && f.size >= p.position);
    if (tip && !this.forceNewChain && has(tip.segment.end)) {
      return { from: tip.segment.end, tip, chain: tip.segment.chain, format: Buffer.from(tip.segment.format, 'base64') };
    }
    this.forceNewChain = false;
    const chain = randomBytes(8).toString('hex');
    const snapshots = (await listSnapshots(repo)).filter((s) => s.snapshot.stack === stack);
    for (const ref of snapshots.reverse()) {
      const binlog = ref.snapshot.sources.find((s) => s.name === source)?.database?.binlog;
      if (!binlog?.file || binlog.position === undefined) continue;
      const point = { file: binlog.file, position: Number(binlog.position) };
      if (has(point) && comparePositions(point, current) <= 0) {
        this.options.log?.('info', `binary log archive of ${source}: a new chain starts at ${point.file}:${point.position}, where snapshot ${ref.id.slice(0, 8)} stands`);
        return { from: point, tip: undefined, chain, format: Buffer.alloc(0) };
      }
      break;
    }
    if (tip) this.options.log?.('warn', `binary log archive of ${source}: the server no longer has ${tip.segment.end.file}, where the archive ended: a new chain starts at ${current.file}:${current.position}; the time between cannot be recovered`);
    return { from: current, tip: undefined, chain, format: Buffer.alloc(0) };
  }

  private async writeSegment(
    repo: Repository,
    events: ArchivedEvent[],
    bytes: number,
    at: { chain: string; prev: string | null; start: BinlogPoint; end: BinlogPoint; format: Buffer; fileCreated: number; coveredUntil: number },
  ): Promise<SegmentRef> {
    const { stack, host, source } = this.options;
    if (at.format.length === 0) throw new StackvaultError('internal error: a segment without the format description of its log');
    const writer = new BlobWriter(repo);
    const content: string[] = [];
    let piece: Buffer[] = [];
    let pieceBytes = 0;
    const flushPiece = async () => {
      if (pieceBytes === 0) return;
      content.push((await writer.save('data', Buffer.concat(piece, pieceBytes))).id);
      piece = [];
      pieceBytes = 0;
    };
    for (const event of events) {
      piece.push(event.bytes);
      pieceBytes += event.bytes.length;
      if (pieceBytes >= BLOB_BYTES) await flushPiece();
    }
    await flushPiece();
    const gtids = events.filter((e) => e.gtid);
    const segment: BinlogSegment = {
      version: 1,
      stack,
      source,
      host,
      chain: at.chain,
      prev: at.prev,
      serverId: events[0]?.header.serverId ?? 0,
      start: at.start,
      end: at.end,
      fileCreated: at.fileCreated,
      format: at.format.toString('base64'),
      firstTime: events[0]?.header.timestamp ?? null,
      lastTime: events[events.length - 1]?.header.timestamp ?? null,
      lastGtid: gtids[gtids.length - 1]?.gtid ?? null,
      coveredUntil: new Date(at.coveredUntil).toISOString(),
      events: events.length,
      bytes,
      content,
    };
    const id = await writer.commit('binlog', segment);
    return { id, segment };
  }
}

/** A reader id of its own per stack and source, far above the ids people give servers. */
export function readerIdFor(stack: string | null, source: string): number {
  let h = 0x811c9dc5;
  for (const c of `${stack ?? ''}/${source}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return 0xf0000000 + (h % 0x0fffffff);
}
