import { setFlagsFromString } from 'node:v8';

/**
 * How soon V8 optimizes a function: once it has run this many bytes of bytecode (and a
 * few times that for a long function). The flag is the process's: every thread (main,
 * restore writers, encoders) follows the last value set.
 *
 * A command runs most of its code briefly, and its threads each compile the same
 * functions again: at V8's default pace, optimizing took 0.4-0.5 s of CPU in a 1.6 s
 * restore of 9,600 files on two cores (a fifth of all, perf), for code that was done before
 * it paid back. At 1,000,000 only what runs long is optimized: that restore took 1.44 s
 * instead of 1.57 s and 1.83 s of CPU instead of 2.2 (medians of 5, alternating); a backup
 * and a restore of 666 MiB of /usr/lib did not change.
 *
 * A restore of many files is the exception: its writer threads run the same few functions
 * for every file, and at 1,000,000 the long ones (a batch's loop, a blob's decoding) were
 * never optimized in a restore of 31,507 files (perf: all of them in V8's baseline tier to
 * the end). At V8's pace that restore took 4.14 s instead of 4.35 (medians of 8,
 * alternating; CPU 6.7-8.9 s against 7.0-9.6), while the restore of 9,600 files took
 * 1.41 s instead of 1.30 (10 each). A backup, a no-change backup and a check took the
 * same at either pace (docs/performance.md, twenty-sixth session).
 */
const QUICK_START_BUDGET = 1_000_000;
/** V8's own default (Node 20, V8 11.3). */
const V8_DEFAULT_BUDGET = 66 * 1024;
/**
 * A restore of at least this many files optimizes at V8's pace. Between the two restores
 * measured, the gain grew by about 0.034 CPU-s per thousand files against a cost of about
 * half a CPU-second: even at about 16,000 files.
 */
export const MANY_FILES = 20_000;

let budget = 0;

/** Set once as a command starts, before anything else runs. */
export function quickStartPace(): void {
  setPace(QUICK_START_BUDGET);
}

/** A restore (or other work) about to handle `files` files: V8's own pace if they are many. */
export function paceForFiles(files: number): void {
  if (files >= MANY_FILES && budget !== 0) setPace(V8_DEFAULT_BUDGET);
}

/** The budget set last; 0 while the process runs at V8's own (quickStartPace never called). */
export function interruptBudget(): number {
  return budget;
}

function setPace(bytes: number): void {
  if (bytes === budget) return;
  setFlagsFromString(`--interrupt-budget=${bytes}`);
  budget = bytes;
}
