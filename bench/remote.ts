/**
 * Restore from network backends, side by side (issue 26): stackvault and restic through the
 * same rclone remotes (`rclone serve webdav` and `rclone serve sftp` on loopback), and
 * stackvault from S3 (s3rver on loopback) against restic on the same server through rclone's
 * S3 backend (restic 0.14 cannot use s3rver itself) and against the same restore from a
 * local folder. The data is a copy of real trees: /usr/share/perl, vim
 * and icons by default (97 MB, 9,586 entries on Debian 12), or BENCH_REMOTE_SOURCE.
 *
 *   BENCH_ONLY=remote npm run bench
 *   BENCH_REMOTE_SOURCE=/usr/share/doc BENCH_ONLY=remote npm run bench
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startRcloneServe, startS3rver, type StorageServer } from '../test/support/storage-servers.js';
import { STACKVAULT, du, has, run, type Step } from './common.js';

const password = 'benchmark password';
// Five, not three as elsewhere: a restore here takes 1.5-3.5 s, and this machine's speed
// moves by a fifth from minute to minute (docs/performance.md).
const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 5));
/**
 * Backups: three each (or BENCH_RUNS, if fewer), taking turns, each into a repository of
 * its own, counted by the median; restores read the last. One backup each, as until the
 * twentieth session, put the ratio anywhere from 0.72 to 1.19 from one bench to the next.
 */
const backupRuns = Math.min(runs, 3);
const DEFAULT_SOURCES = ['/usr/share/perl', '/usr/share/vim', '/usr/share/icons'];

interface Contender {
  name: string;
  /** a first backup into a new repository, the `n`th */
  backup(n: number): Step;
  /** from the last backup's repository */
  restore(target: string): Step;
}

/** The repository of backup run `n`. */
function repoOfRun(repo: string, n: number): string {
  return `${repo}-${n}`;
}

interface Comparison {
  remote: string;
  /** what the target compares against: restic on the same remote, or our own local restore */
  baseline: string;
  /** the most contender/baseline may be */
  target: number;
  contender: Contender;
  base: Contender;
}

function stackvault(repo: string, source: string, env: Record<string, string>, cache: string): Contender {
  const sv = (n: number, args: string[]) => run(STACKVAULT, ['--quiet', '--repo', repoOfRun(repo, n), ...args], { STACKVAULT_PASSWORD: password, STACKVAULT_CACHE_DIR: cache, ...env });
  return {
    name: 'stackvault',
    backup: (n) => (sv(n, ['init']), sv(n, ['backup', source])),
    restore: (target) => sv(backupRuns - 1, ['restore', 'latest', '--target', target]),
  };
}

function restic(repo: string, source: string, env: Record<string, string>, cache: string): Contender {
  const r = (n: number, args: string[]) => run('restic', ['-q', '-r', repoOfRun(repo, n), ...args], { RESTIC_PASSWORD: password, RESTIC_CACHE_DIR: cache, ...env });
  return {
    name: 'restic',
    backup: (n) => (r(n, ['init']), r(n, ['backup', source])),
    restore: (target) => r(backupRuns - 1, ['restore', 'latest', '--target', target]),
  };
}

function entries(root: string): number {
  return execFileSync('find', [root], { encoding: 'utf8', maxBuffer: 1 << 28 }).split('\n').length - 2;
}

/** The source tree: a copy, so that every tool reads the same files from the same disk. */
async function copySources(dest: string): Promise<void> {
  const sources = process.env.BENCH_REMOTE_SOURCE ? process.env.BENCH_REMOTE_SOURCE.split(',') : DEFAULT_SOURCES.filter((s) => existsSync(s));
  if (sources.length === 0) throw new Error('no source for the remote bench: set BENCH_REMOTE_SOURCE to a folder');
  await mkdir(dest, { recursive: true });
  for (const s of sources) execFileSync('cp', ['-a', s, dest]);
}

export async function benchRemote(work: string, restores: string): Promise<{ lines: string[]; results: unknown }> {
  const source = join(work, 'data');
  await copySources(source);
  const servers: StorageServer[] = [];
  try {
    const comparisons: Comparison[] = [];
    const withRestic = has('restic');
    if (!withRestic) process.stderr.write('restic not installed: the rclone comparisons are skipped (apt-get install restic)\n');
    if (!has('rclone')) throw new Error('the remote bench needs rclone (apt-get install rclone)');
    for (const protocol of ['webdav', 'sftp'] as const) {
      if (!withRestic) break;
      const server = await startRcloneServe(undefined, protocol, 'bench');
      servers.push(server);
      comparisons.push({
        remote: `rclone ${protocol}`,
        baseline: 'restic',
        target: 0.7,
        contender: stackvault('rclone:bench:stackvault', source, server.env, join(work, 'stackvault-cache')),
        base: restic('rclone:bench:restic', source, server.env, join(work, 'restic-cache')),
      });
    }
    const s3 = await startS3rver(undefined, 'bench');
    servers.push(s3);
    const s3Env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: s3.url };
    if (withRestic) {
      // restic 0.14 cannot use s3rver itself (its backup fails with "Unmarshal: invalid
      // character"), but through rclone's S3 backend it can: the same server, with rclone
      // in between (as for WebDAV and SFTP). A CA bundle in the environment stops rclone's
      // S3 backend at once ("unsupported transport"), so none is given.
      const remote = 'RCLONE_CONFIG_BENCHS3_';
      comparisons.push({
        remote: 's3rver',
        baseline: 'restic (through rclone)',
        target: 0.7,
        contender: stackvault('s3://bench/repo-vs-restic', source, s3Env, join(work, 'stackvault-cache')),
        base: restic(
          'rclone:benchs3:bench/restic',
          source,
          {
            [`${remote}TYPE`]: 's3',
            [`${remote}PROVIDER`]: 'Other',
            [`${remote}ENDPOINT`]: s3.url,
            [`${remote}ACCESS_KEY_ID`]: 'S3RVER',
            [`${remote}SECRET_ACCESS_KEY`]: 'S3RVER',
            [`${remote}FORCE_PATH_STYLE`]: 'true',
            AWS_CA_BUNDLE: '',
          },
          join(work, 'restic-cache'),
        ),
      });
    }
    comparisons.push({
      remote: 's3rver',
      baseline: 'stackvault, local folder',
      target: 1.5,
      contender: stackvault('s3://bench/repo', source, s3Env, join(work, 'stackvault-cache')),
      base: stackvault(join(work, 'local-repo'), source, {}, join(work, 'stackvault-cache')),
    });

    const results = [];
    const lines = [`remote: ${(du(source) / 1e6).toFixed(1)} MB, ${entries(source)} entries; each backup the median of ${backupRuns} runs (each into a new repository), each restore of ${runs}`, ''];
    lines.push(['remote'.padEnd(16), 'baseline'.padEnd(26), 'backup (s)'.padStart(22), 'ratio'.padStart(8), 'restore (s)'.padStart(22), 'ratio'.padStart(8), 'target'.padStart(8)].join(''));
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[(v.length - 1) >> 1]!;
    for (const [n, c] of comparisons.entries()) {
      const backups: [number[], number[]] = [[], []];
      for (let r = 0; r < backupRuns; r++) {
        for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
          const who = [c.contender, c.base][i]!;
          process.stderr.write(`${c.remote}: backup ${r + 1}/${backupRuns}: ${who.name}\n`);
          backups[i]!.push(who.backup(r).seconds);
        }
      }
      const times: [number[], number[]] = [[], []];
      for (let r = 0; r < runs; r++) {
        // Taking turns within every run: this machine's speed drifts from minute to minute.
        for (const [i, who] of [c.contender, c.base].entries()) {
          process.stderr.write(`${c.remote}: restore ${r + 1}/${runs}: ${who.name}\n`);
          times[i]!.push(who.restore(join(restores, `restore-${n}-${i}-${r}`)).seconds);
        }
      }
      const ratio = median(times[0]) / median(times[1]);
      const backupRatio = median(backups[0]) / median(backups[1]);
      results.push({ remote: c.remote, baseline: c.baseline, target: c.target, ratio, backupRatio, backup: backups, restore: times });
      lines.push(
        [
          c.remote.padEnd(16),
          c.baseline.padEnd(26),
          `${median(backups[0]).toFixed(2)} / ${median(backups[1]).toFixed(2)}`.padStart(22),
          backupRatio.toFixed(2).padStart(8),
          `${median(times[0]).toFixed(2)} / ${median(times[1]).toFixed(2)}`.padStart(22),
          ratio.toFixed(2).padStart(8),
          `≤ ${c.target}`.padStart(8),
        ].join(''),
      );
    }
    lines.push('', 'backup and restore: stackvault / baseline; every run: see bench-results.json');
    return { lines, results: { source, runs, comparisons: results } };
  } finally {
    for (const s of servers) await s.stop();
    await rm(work, { recursive: true, force: true });
    await rm(restores, { recursive: true, force: true });
  }
}
