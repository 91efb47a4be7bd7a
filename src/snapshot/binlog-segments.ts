import type { Repository } from '../repo/repository.js';
import { EVENT_HEADER_LENGTH, EventType, checksumOfFormat, comparePositions, readHeader, readRotate } from '../sources/mariadb/binlog-events.js';
import type { BinlogPoint } from '../sources/mariadb/binlog-stream.js';
import { StackvaultError } from '../util/errors.js';

/**
 * A segment of a database server's binary log in the repository: the events from `start`
 * to `end`, as the server logged them, stored as data blobs (`content`, in order) and
 * committed by this record, which is written last. Segments of one archiver form a
 * chain: each names the segment it continues (`prev`) and starts where that one ended,
 * so a chain has no gap by construction. A new chain starts when the old one cannot be
 * continued (the server no longer has the file, or it is a rebuilt server).
 */
export interface BinlogSegment {
  version: 1;
  stack: string | null;
  source: string;
  host: string;
  chain: string;
  prev: string | null;
  /** the database server's server_id */
  serverId: number;
  start: BinlogPoint;
  end: BinlogPoint;
  /** when the log file `end.file` was created, by its format description (seconds; 0 unknown) */
  fileCreated: number;
  /** the format description event in force at `start`, base64: replay starts with it */
  format: string;
  /** the log's times of the first and last event (seconds since 1970), null when empty */
  firstTime: number | null;
  lastTime: number | null;
  lastGtid: string | null;
  /** the archiver had received everything the server logged before this moment */
  coveredUntil: string;
  events: number;
  bytes: number;
  content: string[];
}

export interface SegmentRef {
  id: string;
  segment: BinlogSegment;
}

/** Every intact segment of the repository (damaged ones are reported by the repository and skipped). */
export async function listAllSegments(repo: Repository): Promise<SegmentRef[]> {
  const loaded = await repo.loadIntact<BinlogSegment>('binlog', await repo.listIds('binlog'));
  return loaded.filter((s) => s.value.version === 1).map(({ id, value }) => ({ id, segment: value }));
}

/** Every intact segment of one source of a stack. */
export async function listSegments(repo: Repository, stack: string | null, source: string): Promise<SegmentRef[]> {
  return (await listAllSegments(repo)).filter((s) => s.segment.stack === stack && s.segment.source === source);
}

/**
 * The chains, each in log order. Should two archivers have continued one segment (they
 * read the same log, so they agree on every event), the one that reaches further is
 * followed. A segment gone from the middle of a chain (deleted, or its record damaged)
 * splits it: the part after the gap starts after a missing segment.
 */
export function chainsOf(segments: readonly SegmentRef[]): SegmentRef[][] {
  const byId = new Map(segments.map((s) => [s.id, s]));
  const continued = new Set(segments.map((s) => s.segment.prev).filter((p): p is string => p !== null));
  const tips = segments.filter((s) => !continued.has(s.id));
  const chains = new Map<string, SegmentRef[]>();
  for (const tip of tips) {
    const chain: SegmentRef[] = [];
    for (let at: SegmentRef | undefined = tip; at; at = at.segment.prev ? byId.get(at.segment.prev) : undefined) chain.push(at);
    chain.reverse();
    const key = `${tip.segment.chain}/${chain[0]!.id}`;
    const best = chains.get(key);
    if (!best || coveredUntil(chain) > coveredUntil(best)) chains.set(key, chain);
  }
  return [...chains.values()].sort((a, b) => coveredUntil(a) - coveredUntil(b));
}

export function coveredUntil(chain: readonly SegmentRef[]): number {
  return Date.parse(chain[chain.length - 1]!.segment.coveredUntil);
}

/** Whether the segment a chain continues is not in the repository (pruned, or lost). */
export function startsAfterMissing(chain: readonly SegmentRef[], all: readonly SegmentRef[]): boolean {
  const prev = chain[0]!.segment.prev;
  return prev !== null && !all.some((s) => s.id === prev);
}

/**
 * The segments that take a database from the position a snapshot recorded to `until`:
 * from the segment holding that position to the one covering `until`. Refused, naming
 * what is missing, when the archive does not reach: a gap is never skipped.
 */
export function segmentsFrom(segments: readonly SegmentRef[], position: BinlogPoint, snapshotTime: Date, until: Date | undefined): SegmentRef[] {
  const chains = chainsOf(segments);
  // A rebuilt server counts its files from the start again: the chain is one that was
  // archiving when the snapshot was taken.
  const holding = chains.filter((chain) => {
    const first = chain[0]!.segment;
    const last = chain[chain.length - 1]!.segment;
    return comparePositions(first.start, position) <= 0 && comparePositions(position, last.end) <= 0 && coveredUntil(chain) >= snapshotTime.getTime() - 60_000;
  });
  if (holding.length === 0) {
    throw new StackvaultError(
      `the binary log archive has no segment holding ${position.file}:${position.position}, where the snapshot of ${snapshotTime.toISOString()} stands` +
        (chains.length === 0
          ? ' (nothing is archived: is binlog: true set on the source and the runner running?)'
          : `; archived: ${chains.map((c) => describeChain(c) + (startsAfterMissing(c, segments) ? ' (after a missing segment)' : '')).join('; ')}`),
    );
  }
  // The first chain still archiving after the snapshot was taken: a later one holding the
  // same file name and offset belongs to a rebuilt server (chains are sorted by their end).
  const chain = holding[0]!;
  const from = chain.findIndex((s) => comparePositions(position, s.segment.end) <= 0);
  const needed = chain.slice(from);
  if (until && until.getTime() > coveredUntil(chain)) {
    const tip = chain[chain.length - 1]!;
    const after = chains.find((c) => c !== chain && c[0]!.segment.chain === tip.segment.chain && startsAfterMissing(c, segments));
    if (after) {
      throw new StackvaultError(
        `the binary log archive has a gap: a segment after ${tip.segment.end.file}:${tip.segment.end.position} (${tip.segment.coveredUntil}) is missing or damaged, ` +
          `so the events up to ${after[0]!.segment.start.file}:${after[0]!.segment.start.position} cannot be replayed; choose a time before ${tip.segment.coveredUntil} (see "stackvault check")`,
      );
    }
    throw new StackvaultError(
      `the binary log archive reaches only to ${new Date(coveredUntil(chain)).toISOString()}, not to ${until.toISOString()}: ` +
        'events after that were not archived (or the archiver was not running); choose an earlier time, or see "stackvault binlog status"',
    );
  }
  return needed;
}

export function describeChain(chain: readonly SegmentRef[]): string {
  const first = chain[0]!.segment;
  const last = chain[chain.length - 1]!.segment;
  return `${first.start.file}:${first.start.position} to ${last.end.file}:${last.end.position} (${first.firstTime ? new Date(first.firstTime * 1000).toISOString() : first.coveredUntil} to ${last.coveredUntil})`;
}

/**
 * The events of segments in log order, starting after `position` (an event boundary the
 * snapshot recorded): events are cut from the concatenated blobs by their size field.
 */
export async function* segmentEvents(repo: Repository, segments: readonly SegmentRef[], position: BinlogPoint): AsyncGenerator<Buffer> {
  let skipping = comparePositions(segments[0]!.segment.start, position) < 0;
  let file = segments[0]!.segment.start.file;
  let checksummed = checksumOfFormat(Buffer.from(segments[0]!.segment.format, 'base64')) === 1;
  for (const { id, segment } of segments) {
    let carry: Buffer = Buffer.alloc(0);
    let seen = 0;
    for (const blobId of segment.content) {
      const loaded = await repo.loadBlob(blobId, 'data');
      const buf = carry.length > 0 ? Buffer.concat([carry, loaded]) : loaded;
      let at = 0;
      while (buf.length - at >= EVENT_HEADER_LENGTH) {
        const size = buf.readUInt32LE(at + 9);
        if (size < EVENT_HEADER_LENGTH) throw new StackvaultError(`binary log segment ${id.slice(0, 12)} is damaged: an event of ${size} bytes`);
        if (buf.length - at < size) break;
        const event = buf.subarray(at, at + size);
        at += size;
        seen++;
        const header = readHeader(event);
        if (header.type === EventType.FORMAT_DESCRIPTION) checksummed = checksumOfFormat(event) === 1;
        if (skipping) {
          // Positions are offsets in a file: follow the file through rotations.
          if (header.type === EventType.ROTATE) file = readRotate(event, checksummed).file;
          else if (header.nextPosition === position.position && file === position.file) skipping = false;
          continue;
        }
        yield event;
      }
      carry = buf.subarray(at);
    }
    if (carry.length > 0 || seen !== segment.events) throw new StackvaultError(`binary log segment ${id.slice(0, 12)} is damaged: it holds ${seen} whole events, its record says ${segment.events}`);
  }
  if (skipping) throw new StackvaultError(`the archived events never reach ${position.file}:${position.position}, where the snapshot stands`);
}
