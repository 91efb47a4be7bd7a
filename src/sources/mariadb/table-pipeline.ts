import { InterruptedError } from '../../util/errors.js';

/** One part of a table's data to load, in the order the parts should be taken. */
export interface PartJob<W, K> {
  table: K;
  load: (worker: W) => Promise<void>;
}

/**
 * Runs every part over the workers (one job per worker at a time), and a table's
 * follow-up (building its secondary indexes) as soon as its last part is loaded, ahead
 * of any part still waiting. A restore that loaded every table before building any
 * index left a core idle twice: parts of one table loaded over two connections are no
 * faster than over one (the server serializes inserts into one index), and one table's
 * index build is one thread on the server, during which the other connection had
 * nothing left to do. A table without parts has its follow-up ready at the start. The
 * first failure stops the rest: jobs under way finish, none starts.
 */
export async function runTablePipeline<W, K>(
  workers: W[],
  parts: Array<PartJob<W, K>>,
  followUps: Map<K, (worker: W) => Promise<void>>,
  signal?: AbortSignal,
): Promise<void> {
  const partsLeft = new Map<K, number>();
  for (const part of parts) partsLeft.set(part.table, (partsLeft.get(part.table) ?? 0) + 1);
  const ready = [...followUps].filter(([table]) => !partsLeft.has(table)).map(([, run]) => run);
  let next = 0;
  let running = 0;
  let failure: { error: unknown } | undefined;
  let wakeAll: Array<() => void> = [];
  const changed = () => {
    const waiting = wakeAll;
    wakeAll = [];
    for (const wake of waiting) wake();
  };

  const partJob = (part: PartJob<W, K>) => async (worker: W) => {
    await part.load(worker);
    const left = partsLeft.get(part.table)! - 1;
    partsLeft.set(part.table, left);
    const followUp = left === 0 ? followUps.get(part.table) : undefined;
    if (followUp) ready.push(followUp);
  };

  const work = async (worker: W): Promise<void> => {
    while (!failure) {
      if (signal?.aborted) throw new InterruptedError('restore interrupted');
      const job = ready.shift() ?? (next < parts.length ? partJob(parts[next++]!) : undefined);
      if (!job) {
        // Nothing to take now; a part under way may still make a follow-up ready.
        if (running === 0) return;
        await new Promise<void>((resolve) => wakeAll.push(resolve));
        continue;
      }
      running++;
      try {
        await job(worker);
      } catch (error) {
        failure ??= { error };
      } finally {
        running--;
        changed();
      }
    }
  };
  await Promise.all(workers.map(work));
  if (failure) throw failure.error;
}
