import type { CliContext } from './context.js';

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

/** Abort on SIGINT/SIGTERM; work in progress checks the signal and stops without committing. */
export function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return controller.signal;
}
