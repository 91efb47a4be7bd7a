import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StackvaultError, errorMessage } from '../util/errors.js';

export type RunStatus = 'running' | 'success' | 'failed' | 'interrupted';

export interface RunRecord {
  id: number;
  job: string;
  /** the scheduled moment this run is for (a catch-up names the moment it missed) */
  scheduledFor: string | null;
  started: string;
  finished: string | null;
  status: RunStatus;
  durationMs: number | null;
  bytesAdded: number | null;
  snapshot: string | null;
  error: string | null;
  details: unknown;
  /** 1 for a scheduled run, 2 and up for its retries after a failure or an interruption */
  attempt: number;
}

interface Row {
  id: number;
  job: string;
  scheduled_for: string | null;
  started: string;
  finished: string | null;
  status: RunStatus;
  duration_ms: number | null;
  bytes_added: number | null;
  snapshot: string | null;
  error: string | null;
  details: string | null;
  attempt: number | null;
}

function fromRow(r: Row): RunRecord {
  return {
    id: r.id,
    job: r.job,
    scheduledFor: r.scheduled_for,
    started: r.started,
    finished: r.finished,
    status: r.status,
    durationMs: r.duration_ms,
    bytesAdded: r.bytes_added,
    snapshot: r.snapshot,
    error: r.error,
    details: r.details ? JSON.parse(r.details) : null,
    attempt: r.attempt ?? 1,
  };
}

/**
 * The task runner's job history in a SQLite file: what ran, when, with what result. A run
 * is recorded when it starts and again when it ends, so a run cut short by a crash is
 * still there (as "running") and is marked interrupted when the daemon starts again.
 */
export class JobHistory {
  private readonly db: Database.Database;

  constructor(readonly file: string) {
    try {
      mkdirSync(dirname(file), { recursive: true });
      this.db = new Database(file);
    } catch (err) {
      throw new StackvaultError(`cannot open the job history ${file}: ${errorMessage(err)}`);
    }
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY,
        job TEXT NOT NULL,
        scheduled_for TEXT,
        started TEXT NOT NULL,
        finished TEXT,
        status TEXT NOT NULL,
        duration_ms INTEGER,
        bytes_added INTEGER,
        snapshot TEXT,
        error TEXT,
        details TEXT
      );
      CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, started);
    `);
    // A history written before retries existed gains the column; its runs were first attempts.
    const columns = this.db.prepare('PRAGMA table_info(runs)').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'attempt')) this.db.exec('ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1');
  }

  begin(job: string, started: Date, scheduledFor: Date | null, attempt = 1): number {
    const info = this.db
      .prepare('INSERT INTO runs (job, scheduled_for, started, status, attempt) VALUES (?, ?, ?, ?, ?)')
      .run(job, scheduledFor?.toISOString() ?? null, started.toISOString(), 'running', attempt);
    return Number(info.lastInsertRowid);
  }

  /** How many runs of the job were retries. */
  retries(job: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM runs WHERE job = ? AND attempt > 1').get(job) as { n: number }).n;
  }

  finish(id: number, outcome: { status: Exclude<RunStatus, 'running'>; finished: Date; durationMs: number; bytesAdded?: number; snapshot?: string; error?: string; details?: unknown }): void {
    this.db
      .prepare('UPDATE runs SET status = ?, finished = ?, duration_ms = ?, bytes_added = ?, snapshot = ?, error = ?, details = ? WHERE id = ?')
      .run(
        outcome.status,
        outcome.finished.toISOString(),
        Math.round(outcome.durationMs),
        outcome.bytesAdded ?? null,
        outcome.snapshot ?? null,
        outcome.error ?? null,
        outcome.details === undefined ? null : JSON.stringify(outcome.details),
        id,
      );
  }

  /** Runs a crash left as "running" become "interrupted"; returns how many. */
  markInterrupted(now: Date): number {
    return this.db.prepare("UPDATE runs SET status = 'interrupted', finished = ?, error = 'the task runner stopped during this run' WHERE status = 'running'").run(now.toISOString()).changes;
  }

  last(job: string, status?: RunStatus): RunRecord | undefined {
    const row = (
      status
        ? this.db.prepare('SELECT * FROM runs WHERE job = ? AND status = ? ORDER BY id DESC LIMIT 1').get(job, status)
        : this.db.prepare('SELECT * FROM runs WHERE job = ? ORDER BY id DESC LIMIT 1').get(job)
    ) as Row | undefined;
    return row && fromRow(row);
  }

  recent(limit = 50): RunRecord[] {
    return (this.db.prepare('SELECT * FROM runs ORDER BY id DESC LIMIT ?').all(limit) as Row[]).map(fromRow);
  }

  close(): void {
    this.db.close();
  }
}
