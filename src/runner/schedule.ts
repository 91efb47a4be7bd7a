import { Cron } from 'croner';

/**
 * When scheduled work is due, in a time zone: cron expressions (5 fields, or 6 with
 * seconds first) evaluated by croner, so daylight-saving changes are handled as cron does.
 */
export class Schedule {
  private readonly cron: Cron;

  constructor(
    readonly expression: string,
    readonly timeZone?: string,
  ) {
    this.cron = new Cron(expression, { paused: true, timezone: timeZone });
  }

  /** the first scheduled moment strictly after `after` */
  next(after: Date): Date {
    const next = this.cron.nextRun(after);
    if (!next) throw new Error(`schedule "${this.expression}" has no time after ${after.toISOString()}`);
    return next;
  }

  /**
   * The scheduled moment the daemon missed: one that lies after the last run began and
   * not after now. Several missed moments are caught up with a single run.
   */
  missed(lastRun: Date | undefined, now: Date): Date | undefined {
    if (!lastRun) return undefined;
    const next = this.next(lastRun);
    return next.getTime() <= now.getTime() ? next : undefined;
  }
}
