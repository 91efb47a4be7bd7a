import { errorMessage } from '../util/errors.js';

export interface JobEvent {
  stack: string;
  host: string;
  job: string;
  status: 'success' | 'failed' | 'interrupted';
  started: string;
  finished?: string;
  durationMs?: number;
  error?: string;
  snapshot?: string;
  bytesAdded?: number;
}

export interface NotifyConfig {
  webhook?: string;
  pingUrl?: string;
  onSuccess: boolean;
}

const TIMEOUT_MS = 10_000;

/**
 * Tells the outside world how jobs went: a JSON POST to a webhook on failure (and on
 * success when asked), and healthchecks.io-style pings (URL/start, URL, URL/fail) so a
 * missing ping raises an alarm even when the host is gone. A notification that cannot be
 * delivered is reported to the log; it never fails the job.
 */
export class Notifier {
  constructor(
    private readonly config: NotifyConfig,
    private readonly log: (message: string, fields: Record<string, unknown>) => void,
  ) {}

  /** A step has ended: the webhook hears of failures (and of successes with on_success). */
  async stepFinished(event: JobEvent): Promise<void> {
    const { webhook, onSuccess } = this.config;
    if (webhook && (event.status !== 'success' || onSuccess)) await this.post(webhook, 'webhook', JSON.stringify(event), 'application/json');
  }

  /** A job has started or ended: the ping URL hears /start, then the URL itself or /fail. */
  async ping(status: 'start' | 'success' | 'fail', message: string): Promise<void> {
    if (!this.config.pingUrl) return;
    const base = this.config.pingUrl.replace(/\/$/, '');
    await this.post(status === 'success' ? base : `${base}/${status}`, 'ping', message, 'text/plain');
  }

  private async post(url: string, kind: string, body: string, type: string): Promise<void> {
    try {
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body, signal: AbortSignal.timeout(TIMEOUT_MS) });
      await response.arrayBuffer().catch(() => undefined);
      if (!response.ok) this.log('notification refused', { kind, status: response.status, url: safeUrl(url) });
    } catch (err) {
      this.log('notification not delivered', { kind, url: safeUrl(url), error: errorMessage(err) });
    }
  }
}

/** A URL for the log: no user, password or query (tokens live there). */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
