import { ExitCode } from '../util/errors.js';
import type { CliContext } from './context.js';
import { stopProgressBars } from './progress.js';

/** Print a result: the human text on a terminal, or one JSON document with --json. */
export function emit(ctx: CliContext, human: () => string, json: () => unknown): void {
  if (ctx.json) process.stdout.write(JSON.stringify(json()) + '\n');
  else if (!ctx.options.quiet) {
    const text = human();
    if (text) process.stdout.write(text.endsWith('\n') ? text : text + '\n');
  }
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

let interrupt: { controller: AbortController; hardStopMs: number | undefined } | undefined;

/**
 * Abort on SIGINT/SIGTERM; work in progress checks the signal and stops without
 * committing. With `hardStopMs` (work that may be abandoned anywhere: a backup commits
 * nothing before its snapshot, a restore writes no file under its name before it is
 * complete), the process exits 130 that long after the signal even if something still
 * runs (a worker thread in a huge file, a progress bar's timer). A second signal always
 * exits at once.
 */
export function interruptSignal(options: { hardStopMs?: number } = {}): AbortSignal {
  if (!interrupt) {
    const state = { controller: new AbortController(), hardStopMs: options.hardStopMs };
    interrupt = state;
    const onSignal = () => {
      if (state.controller.signal.aborted) exitInterrupted();
      state.controller.abort();
      if (state.hardStopMs !== undefined) setTimeout(exitInterrupted, state.hardStopMs).unref();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  } else if (options.hardStopMs !== undefined) {
    interrupt.hardStopMs = Math.min(interrupt.hardStopMs ?? Infinity, options.hardStopMs);
  }
  return interrupt.controller.signal;
}

function exitInterrupted(): never {
  stopProgressBars();
  process.stderr.write('stackvault: interrupted\n');
  process.exit(ExitCode.interrupted);
}
