import { backendExtra } from '../../repo/backends/backend.js';
import type { Repository } from '../../repo/repository.js';
import { mapConcurrent } from '../../util/concurrency.js';
import { UsageError } from '../../util/errors.js';
import { planPrune } from './prune.js';

const DAY_MS = 86_400_000;

export interface ExtendRetentionResult {
  /** the new retain-until date */
  until: string;
  /** objects whose lock was (or with dryRun would be) extended */
  extended: number;
  /** needed objects younger than half the period: their lock from the upload still has long to run */
  recent: number;
  /** objects no kept snapshot needs: their locks are left to run out, so prune can free them */
  unneeded: number;
}

/**
 * Keep everything a kept snapshot still needs immutable for another full period: each
 * needed object whose lock from its upload has less than half the period left gets a new
 * retain-until of now + the period. Objects that prune would free, now or later, are left
 * alone. Run it at least every half period (the task runner does).
 */
export async function extendRetentionOfKept(repo: Repository, options: { now?: Date; dryRun?: boolean } = {}): Promise<ExtendRetentionResult> {
  const days = repo.config.immutabilityDays;
  if (days <= 0) throw new UsageError(`the repository at ${repo.backend.location} promises no immutability period: there are no locks to extend`);
  const extend = await backendExtra(repo.backend, 'extendRetention');
  const now = options.now ?? new Date();
  const until = new Date(now.getTime() + days * DAY_MS);
  const plan = await planPrune(repo, { now });
  const unneeded = new Set([...Object.values(plan.delete), ...Object.values(plan.keepForNow), plan.mark].flat().map((c) => c.key));
  const due: string[] = [];
  let recent = 0;
  for await (const info of repo.backend.list('')) {
    if (unneeded.has(info.key) || info.key.startsWith('tmp/')) continue;
    if (now.getTime() - info.created.getTime() < (days * DAY_MS) / 2) recent++;
    else due.push(info.key);
  }
  if (extend && !options.dryRun) await mapConcurrent(due, 8, (key) => extend(key, until));
  return { until: until.toISOString(), extended: extend ? due.length : 0, recent, unneeded: unneeded.size };
}
