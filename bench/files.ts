/**
 * Side-by-side benchmark of stackvault, restic and Borg on the same tree: full backup,
 * no-change backup, backup after 1% of files changed, full restore, check with a full data
 * read, repository size. Two trees: a generated one, and a copy of real system folders
 * (many small text files, shared libraries, a few large binaries: what generated data hid).
 * Prints a table and writes JSON.
 *
 *   BENCH_MB=200 BENCH_FILES=5000 npm run bench     # a smaller generated tree than the default 1 GiB, 50,000 files
 *   BENCH_REAL_MB=300 npm run bench                 # a smaller real tree than the default 800 MiB
 *   BENCH_REAL_SOURCE=/usr/share,/opt/app npm run bench   # other real folders
 *   BENCH_RUNS=1 npm run bench                      # one run per step instead of the median of 3
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pseudoRandom, pseudoText } from '../test/support/helpers.js';
import { STACKVAULT, du, has, medianStep, run, type Step } from './common.js';

const totalMb = Number(process.env.BENCH_MB ?? 1024);
const fileCount = Number(process.env.BENCH_FILES ?? 50_000);
const password = 'benchmark password';

/** Mixed sizes and compressibility: many small text-like files, some medium, a few large random ones. */
async function generate(root: string): Promise<string[]> {
  const files: string[] = [];
  const budget = totalMb * 1024 * 1024;
  const large = Math.max(1, Math.round(fileCount * 0.002));
  const medium = Math.round(fileCount * 0.05);
  const small = fileCount - large - medium;
  const bytesLarge = budget * 0.5;
  const bytesMedium = budget * 0.3;
  const bytesSmall = budget * 0.2;
  for (let i = 0; i < fileCount; i++) {
    const dir = join(root, `d${i % 100}`, `s${Math.floor(i / 100) % 20}`);
    if (i < 2000) await mkdir(dir, { recursive: true });
    const kind = i < large ? 'large' : i < large + medium ? 'medium' : 'small';
    const size = Math.round(kind === 'large' ? bytesLarge / large : kind === 'medium' ? bytesMedium / medium : (bytesSmall / small) * (0.5 + ((i * 7919) % 100) / 100));
    const content = i % 3 === 0 ? pseudoRandom(i + 1, size) : pseudoText(i + 1, size);
    const file = join(dir, `f${i}.${kind === 'large' ? 'bin' : 'dat'}`);
    await writeFile(file, content);
    files.push(file);
  }
  return files;
}

/** Reads every file (untimed), so that it is in the page cache. */
function readAll(files: readonly string[]): void {
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const file of files) {
    const fd = openSync(file, 'r');
    try {
      while (readSync(fd, buf, 0, buf.length, null) > 0);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * Real folders, in this order, copied (with tar: modes, times, symlinks) until the budget
 * is reached. Present on every Debian 12 with the test dependencies; /usr/lib's shared
 * libraries and Python, /usr/share's documentation, manuals, Perl, Vim and translations.
 */
const REAL_SOURCES = ['/usr/share/doc', '/usr/share/man', '/usr/share/perl', '/usr/share/vim', '/usr/lib/x86_64-linux-gnu', '/usr/lib/python3', '/usr/share/locale', '/usr/share/icons'];
const realMb = Number(process.env.BENCH_REAL_MB ?? 800);

/** Copies real folders into `root` up to BENCH_REAL_MB; returns its regular files and what it copied. */
function copyRealTree(root: string): { files: string[]; sources: string[]; entries: number } {
  const sources = (process.env.BENCH_REAL_SOURCE ? process.env.BENCH_REAL_SOURCE.split(',') : REAL_SOURCES).filter((s) => existsSync(s));
  if (sources.length === 0) throw new Error('no real folders to copy: set BENCH_REAL_SOURCE');
  const budget = realMb * 1024 * 1024;
  const listed = execFileSync('find', [...sources, '-xdev', '(', '-type', 'f', '-o', '-type', 'l', '-o', '-type', 'd', ')', '-printf', '%s %p\\0'], { maxBuffer: 1 << 30 })
    .toString('utf8')
    .split('\0')
    .filter(Boolean);
  const chosen: string[] = [];
  let bytes = 0;
  for (const line of listed) {
    const space = line.indexOf(' ');
    const size = Number(line.slice(0, space));
    if (bytes + size > budget) break;
    bytes += size;
    chosen.push(line.slice(space + 1));
  }
  mkdirSync(root, { recursive: true });
  const list = join(root, '..', 'real-tree.list');
  writeFileSync(list, chosen.join('\0') + '\0');
  // Folders come before what they hold in find's order: --no-recursion copies exactly the list.
  execFileSync('sh', ['-c', 'tar --null --no-recursion -cf - -T "$1" 2>/dev/null | tar -xf - -C "$2"', 'sh', list, root], { stdio: 'inherit' });
  const files = execFileSync('find', [root, '-type', 'f', '-print0'], { maxBuffer: 1 << 30 }).toString('utf8').split('\0').filter(Boolean);
  return { files, sources, entries: chosen.length };
}

function changeOnePercent(files: string[], round: number): void {
  for (let i = 0; i < files.length; i += 100) {
    const f = files[(i + round * 37) % files.length]!;
    appendFileSync(f, pseudoText(i + round * 1_000_003, 4096 + (i % 8192)));
  }
}

interface ToolResult {
  tool: string;
  full: Step;
  noChange: Step;
  changed: Step;
  restore: Step;
  check: Step;
  repoBytes: number;
  /** every run's seconds, per step */
  runs: Record<StepName, number[]>;
}

type StepName = 'full' | 'noChange' | 'changed' | 'restore' | 'check';

/**
 * Each step runs this many times and counts with its median, and the tools take turns
 * within every run: on a virtual machine the same step varied by 10-20% from one minute
 * to the next (the kernel's cost of fresh page cache follows the host's memory), for every
 * tool alike, enough to put a ratio on either side of its target.
 */
const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));

interface ToolOps {
  tool: string;
  init(run: number): Step;
  /** a backup into the repository of that run (full backups) or the last one */
  backup(run?: number): Step;
  restore(run: number): Step;
  check(): Step;
  repo(): string;
}

function toolOps(tool: string, work: string, restores: string, src: string): ToolOps {
  const repoOf = (run: number) => join(work, `${tool}-repo${run}`);
  const targetOf = (run: number) => join(restores, `${tool}-restore${run}`);
  // Every full backup goes into a fresh repository; the last one is used from then on.
  const last = repoOf(runs - 1);
  const sv = (args: string[]) => run(STACKVAULT, ['--quiet', ...args], { STACKVAULT_PASSWORD: password });
  const restic = (args: string[]) => run('restic', ['-q', ...args], { RESTIC_PASSWORD: password, RESTIC_CACHE_DIR: join(work, 'restic-cache') });
  const borgEnv = { BORG_PASSPHRASE: password, BORG_BASE_DIR: join(work, 'borg-base'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
  const borg = (args: string[]) => run('borg', args, borgEnv);
  let archive = 0;
  const ops: Record<string, Omit<ToolOps, 'tool' | 'repo'>> = {
    stackvault: {
      init: (r) => sv(['--repo', repoOf(r), 'init']),
      backup: (r) => sv(['--repo', r === undefined ? last : repoOf(r), 'backup', src]),
      restore: (r) => sv(['--repo', last, 'restore', 'latest', '--target', targetOf(r)]),
      check: () => sv(['--repo', last, 'check', '--read-data']),
    },
    restic: {
      init: (r) => restic(['-r', repoOf(r), 'init']),
      backup: (r) => restic(['-r', r === undefined ? last : repoOf(r), 'backup', src]),
      restore: (r) => restic(['-r', last, 'restore', 'latest', '--target', targetOf(r)]),
      check: () => restic(['-r', last, 'check', '--read-data']),
    },
    borg: {
      init: (r) => borg(['init', '-e', 'repokey-blake2', repoOf(r)]),
      backup: (r) => borg(['create', '--compression', 'zstd,3', `${r === undefined ? last : repoOf(r)}::a${archive++}`, src]),
      restore: (r) => {
        const latest = execFileSync('borg', ['list', '--short', '--last', '1', last], { env: { ...process.env, ...borgEnv }, encoding: 'utf8' }).trim();
        return run('sh', ['-c', `mkdir -p "${targetOf(r)}" && cd "${targetOf(r)}" && borg extract "${last}::${latest}"`], borgEnv);
      },
      check: () => borg(['check', '--verify-data', last]),
    },
  };
  return { tool, ...ops[tool]!, repo: () => last };
}

/** The files benchmark: returns the table's lines and the raw results. */
export async function benchFiles(work: string, restores: string, tree: 'generated' | 'real' = 'generated'): Promise<{ lines: string[]; results: unknown }> {
  const src = join(work, 'data');
  let files: string[];
  let title: string;
  let described: Record<string, unknown>;
  if (tree === 'real') {
    process.stderr.write(`copying up to ${realMb} MiB of real folders into ${src}\n`);
    const real = copyRealTree(src);
    files = real.files;
    const mib = du(src) / 1048576;
    title = `files, real tree (${real.sources.join(', ')} up to ${realMb} MiB): ${real.entries} entries, ${files.length} files, ${mib.toFixed(0)} MiB`;
    described = { tree, sources: real.sources, entries: real.entries, files: files.length, megabytes: Number(mib.toFixed(1)) };
  } else {
    process.stderr.write(`generating ${fileCount} files, ${totalMb} MiB in ${src}\n`);
    files = await generate(src);
    title = `files: ${fileCount} files, ${totalMb} MiB`;
    described = { tree, files: fileCount, megabytes: totalMb };
  }
  const tools = ['stackvault', ...['restic', 'borg'].filter((t) => has(t) || (process.stderr.write(`${t} not installed: skipped (apt-get install ${t === 'borg' ? 'borgbackup' : t})\n`), false))];
  const ops = tools.map((tool) => toolOps(tool, work, restores, src));
  const steps = new Map(tools.map((tool) => [tool, { full: [], noChange: [], changed: [], restore: [], check: [] } as Record<StepName, Step[]>]));
  const step = (name: StepName, before: (run: number) => void, measure: (op: ToolOps, run: number) => Step) => {
    for (let r = 0; r < runs; r++) {
      before(r);
      for (const op of ops) {
        process.stderr.write(`${name} ${r + 1}/${runs}: ${op.tool}\n`);
        steps.get(op.tool)![name].push(measure(op, r));
      }
    }
  };
  const nothing = () => undefined;
  // Every backup starts with the tree in the page cache, as after generating it: Borg drops
  // the files it read from the cache (posix_fadvise DONTNEED), which would leave whichever
  // tool runs next reading from disk (seen: our full backup 3.6 s after restic, 5.8 s after Borg).
  const backup = (op: ToolOps, run?: number) => (readAll(files), op.backup(run));
  step('full', nothing, (op, r) => (op.init(r), backup(op, r)));
  step('noChange', nothing, (op) => backup(op));
  // Untimed: another 1% of files changes before each run, the same for every tool.
  step('changed', (r) => changeOnePercent(files, r), (op) => backup(op));
  step('restore', nothing, (op, r) => op.restore(r));
  step('check', nothing, (op) => op.check());
  const results: ToolResult[] = ops.map((op) => {
    const all = steps.get(op.tool)!;
    const pick = (name: StepName) => medianStep(all[name]);
    return {
      tool: op.tool,
      full: pick('full'),
      noChange: pick('noChange'),
      changed: pick('changed'),
      restore: pick('restore'),
      check: pick('check'),
      repoBytes: du(op.repo()),
      runs: Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.map((s) => Number(s.seconds.toFixed(3)))])) as Record<StepName, number[]>,
    };
  });
  // Deleted only now: on an ext4 without a journal (this machine's), files created within a
  // minute or more of a large deletion wait while the kernel skips every recently deleted
  // inode (recently_deleted() in ext4's inode allocator; seen with perf). Deleting one
  // tool's restored tree before the next tool's restore made that restore up to 3x slower.
  await rm(work, { recursive: true, force: true });
  await rm(restores, { recursive: true, force: true });
  const base = results.find((r) => r.tool === 'restic');
  const cols: Array<[string, (r: ToolResult) => number, string]> = [
    ['full backup', (r) => r.full.seconds, 's'],
    ['no-change backup', (r) => r.noChange.seconds, 's'],
    ['1% changed backup', (r) => r.changed.seconds, 's'],
    ['restore', (r) => r.restore.seconds, 's'],
    ['check --read-data', (r) => r.check.seconds, 's'],
    ['repository size', (r) => r.repoBytes / 1048576, 'MiB'],
    // The memory target is per command: backups (the largest of the three), restore, check.
    ['peak RSS backup', (r) => Math.max(...[r.full, r.noChange, r.changed].map((s) => s.peakRssMb ?? 0)), 'MiB'],
    ['peak RSS restore', (r) => r.restore.peakRssMb ?? 0, 'MiB'],
    ['peak RSS check', (r) => r.check.peakRssMb ?? 0, 'MiB'],
    // Wall time over CPU time: how much of both cores a tool kept busy, and what it spent.
    ['full backup CPU time', (r) => r.full.cpuSeconds ?? 0, 's'],
    ['restore CPU time', (r) => r.restore.cpuSeconds ?? 0, 's'],
  ];
  const lines = [`${title}; each time the median of ${runs} runs`, ''];
  lines.push(['measure'.padEnd(26), ...results.map((r) => r.tool.padStart(12)), ...(base ? results.filter((r) => r !== base).map((r) => `${r.tool}/restic`.padStart(18)) : [])].join(''));
  for (const [name, get, unit] of cols) {
    lines.push(
      [
        `${name} (${unit})`.padEnd(26),
        ...results.map((r) => get(r).toFixed(2).padStart(12)),
        ...(base ? results.filter((r) => r !== base).map((r) => (get(r) / get(base)).toFixed(2).padStart(18)) : []),
      ].join(''),
    );
  }
  return { lines, results: { ...described, runs, tools: results } };
}
