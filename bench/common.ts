import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The command a user runs (bin/stackvault: Node with glibc's malloc tuned at the process's
 * start), not `node dist/src/cli/main.js`: what the benches compare is what users get.
 */
export const STACKVAULT = fileURLToPath(new URL('../../bin/stackvault', import.meta.url));

/** Running and measuring the tools a benchmark compares. */
export interface Step {
  seconds: number;
  peakRssMb: number | null;
  /** user + system CPU time of the command and its children */
  cpuSeconds: number | null;
}

export function run(cmd: string, args: string[], env: Record<string, string> = {}): Step {
  const hasTime = existsSync('/usr/bin/time');
  // Every step starts with nothing left to write back from the one before (or from
  // generating the data): otherwise whichever tool runs first pays for the others.
  spawnSync('sync');
  const started = process.hrtime.bigint();
  const result = hasTime
    ? spawnSync('/usr/bin/time', ['-f', '%M %U %S', cmd, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 28 })
    : spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 28 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  // What it printed, for a failure to be understood (a check names what is damaged on stdout).
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${result.status}):\n${result.stdout.slice(-20_000)}${result.stderr}`);
  const [rssKb, user, system] = hasTime ? result.stderr.trim().split('\n').pop()!.split(' ').map(Number) : [];
  return { seconds, peakRssMb: rssKb === undefined ? null : rssKb / 1024, cpuSeconds: user === undefined ? null : user + system! };
}

/**
 * The median of a step's runs: its time and CPU the middle run's, its peak memory the
 * highest of all (a target on memory holds only if it holds in every run).
 */
export function medianStep(all: Step[]): Step {
  const middle = (values: number[]) => values.sort((a, b) => a - b)[(values.length - 1) >> 1]!;
  const rss = all.map((s) => s.peakRssMb).filter((m): m is number => m !== null);
  const cpu = all.map((s) => s.cpuSeconds).filter((c): c is number => c !== null);
  return { seconds: middle(all.map((s) => s.seconds)), peakRssMb: rss.length > 0 ? Math.max(...rss) : null, cpuSeconds: cpu.length > 0 ? middle(cpu) : null };
}

export function du(path: string): number {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
}

export function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}
