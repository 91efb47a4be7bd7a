import type cliProgress from 'cli-progress';
import { createRequire } from 'node:module';
import { formatBytes, formatDuration } from '../util/format.js';

/** Numbers a long operation reports; totals may still grow while a scan runs. */
export interface ProgressSample {
  bytesDone: number;
  bytesTotal: number;
  itemsDone: number;
  itemsTotal: number;
  totalsFinal: boolean;
  /** what the items are, for the bar ("files" unless told) */
  itemUnit?: string;
  errors?: number;
  current?: string;
}

export interface ProgressSink {
  /** false when nothing is shown: callers can then skip work done only for progress (a totals scan) */
  readonly active?: boolean;
  update(sample: ProgressSample): void;
  stop(): void;
}

const SILENT: ProgressSink = { active: false, update() {}, stop() {} };

/** bars on the terminal now: an interrupted process clears them and shows the cursor again before it exits */
const activeBars = new Set<ProgressSink>();

export function stopProgressBars(): void {
  for (const bar of [...activeBars]) bar.stop();
}

/**
 * A bar with bytes, items, rate and ETA on a terminal; JSON lines (one per second) with
 * --json; nothing when output goes to a file or --quiet is set.
 */
export function createProgress(action: string, mode: { json: boolean; quiet: boolean; enabled: boolean }): ProgressSink {
  if (mode.quiet || !mode.enabled) return SILENT;
  const sink = mode.json ? new JsonProgress(action) : process.stderr.isTTY ? new TerminalProgress(action) : undefined;
  if (!sink) return SILENT;
  return { active: true, update: (sample) => sink.update(atLeastDone(sample)), stop: () => sink.stop() };
}

/**
 * While a scan still counts, work can run ahead of it: a total is never shown below what
 * is already done ("1.2 GiB/1.0 GiB+" read as a bug to everyone who saw it).
 */
function atLeastDone(s: ProgressSample): ProgressSample {
  return { ...s, bytesTotal: Math.max(s.bytesTotal, s.bytesDone), itemsTotal: Math.max(s.itemsTotal, s.itemsDone) };
}

/** The bar's count of items: "924288/2200000 rows", "12/40+ files" while a scan still counts. */
export function itemsText(s: ProgressSample): string {
  return `${s.itemsDone}/${s.itemsTotal}${s.totalsFinal ? '' : '+'} ${s.itemUnit ?? 'files'}`;
}

class TerminalProgress implements ProgressSink {
  private readonly bar: cliProgress.SingleBar;
  private readonly started = Date.now();
  private startedBar = false;
  private lastRender = 0;

  constructor(action: string) {
    // Required only when a bar is drawn: scripts, cron jobs and --quiet runs skip loading it.
    const bars = createRequire(import.meta.url)('cli-progress') as typeof cliProgress;
    this.bar = new bars.SingleBar(
      {
        stream: process.stderr,
        format: `${action} [{bar}] {percentage}% {doneBytes}/{totalBytes} {items} {rate} ETA {etaText} {errors}`,
        barsize: 24,
        hideCursor: true,
        clearOnComplete: true,
        fps: 5,
      },
      bars.Presets.shades_classic,
    );
  }

  update(s: ProgressSample): void {
    const now = Date.now();
    if (now - this.lastRender < 200 && s.bytesDone < s.bytesTotal) return;
    this.lastRender = now;
    const elapsed = (now - this.started) / 1000;
    const rate = elapsed > 0 ? s.bytesDone / elapsed : 0;
    const eta = s.totalsFinal && rate > 0 ? formatDuration((s.bytesTotal - s.bytesDone) / rate) : '--:--';
    const payload = {
      doneBytes: formatBytes(s.bytesDone),
      totalBytes: s.totalsFinal ? formatBytes(s.bytesTotal) : `${formatBytes(s.bytesTotal)}+`,
      items: itemsText(s),
      rate: `${formatBytes(rate)}/s`,
      etaText: eta,
      errors: s.errors ? `${s.errors} errors` : '',
    };
    const total = Math.max(s.bytesTotal, s.bytesDone, 1);
    if (!this.startedBar) {
      this.bar.start(total, s.bytesDone, payload);
      this.startedBar = true;
      activeBars.add(this);
    } else {
      this.bar.setTotal(total);
      this.bar.update(s.bytesDone, payload);
    }
  }

  stop(): void {
    if (!activeBars.delete(this)) return;
    this.bar.stop();
  }
}

class JsonProgress implements ProgressSink {
  private last = 0;
  private readonly started = Date.now();
  private sample: ProgressSample | undefined;

  constructor(private readonly action: string) {}

  update(s: ProgressSample): void {
    this.sample = s;
    const now = Date.now();
    if (now - this.last < 1000) return;
    this.last = now;
    this.emit();
  }

  private emit(): void {
    const s = this.sample;
    if (!s) return;
    const elapsed = (Date.now() - this.started) / 1000;
    const rate = elapsed > 0 ? s.bytesDone / elapsed : 0;
    const rows = s.itemUnit === 'rows';
    process.stdout.write(
      JSON.stringify({
        message_type: 'status',
        action: this.action,
        seconds_elapsed: Math.round(elapsed),
        seconds_remaining: s.totalsFinal && rate > 0 ? Math.round((s.bytesTotal - s.bytesDone) / rate) : null,
        percent_done: s.bytesTotal > 0 ? Math.min(1, s.bytesDone / s.bytesTotal) : 0,
        bytes_done: s.bytesDone,
        total_bytes: s.bytesTotal,
        // restic's names for files; a database restore counts rows, and says so.
        [rows ? 'rows_done' : 'files_done']: s.itemsDone,
        [rows ? 'total_rows' : 'total_files']: s.itemsTotal,
        error_count: s.errors ?? 0,
        [rows ? 'current_step' : 'current_file']: s.current ?? null,
      }) + '\n',
    );
  }

  stop(): void {
    this.emit();
  }
}
