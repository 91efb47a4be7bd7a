/**
 * Side-by-side benchmark of stackvault, restic and Borg on the same generated tree:
 * full backup, no-change backup, backup after 1% of files changed, full restore,
 * check with a full data read, repository size. Prints a table and writes JSON.
 *
 *   npm run bench                         # 1 GiB, 50,000 files
 *   BENCH_MB=200 BENCH_FILES=5000 npm run bench
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pseudoRandom, pseudoText } from '../test/helpers.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const totalMb = Number(process.env.BENCH_MB ?? 1024);
const fileCount = Number(process.env.BENCH_FILES ?? 50_000);
const password = 'benchmark password';

interface Step {
  seconds: number;
  peakRssMb: number | null;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Step {
  const hasTime = existsSync('/usr/bin/time');
  const started = process.hrtime.bigint();
  const result = hasTime
    ? spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 28 })
    : spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 28 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${result.status}):\n${result.stderr}`);
  const rss = hasTime ? Number(result.stderr.trim().split('\n').pop()) / 1024 : null;
  return { seconds, peakRssMb: rss };
}

function du(path: string): number {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
}

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

async function changeOnePercent(files: string[], round: number): Promise<void> {
  for (let i = 0; i < files.length; i += 100) {
    const f = files[(i + round * 37) % files.length]!;
    await writeFile(f, pseudoText(i + round * 1_000_003, 4096 + (i % 8192)), { flag: 'a' });
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
}

async function benchTool(tool: string, work: string, src: string, files: string[]): Promise<ToolResult> {
  const repo = join(work, `${tool}-repo`);
  const target = join(work, `${tool}-restore`);
  const sv = (args: string[]) => run(process.execPath, [CLI, '--quiet', '--repo', repo, ...args], { STACKVAULT_PASSWORD: password });
  const restic = (args: string[]) => run('restic', ['-q', '-r', repo, ...args], { RESTIC_PASSWORD: password, RESTIC_CACHE_DIR: join(work, 'restic-cache') });
  const borg = (args: string[]) => run('borg', args, { BORG_PASSPHRASE: password, BORG_BASE_DIR: join(work, 'borg-base'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' });
  let n = 0;
  const ops = {
    stackvault: {
      init: () => sv(['init']),
      backup: () => sv(['backup', src]),
      restore: () => sv(['restore', 'latest', '--target', target]),
      check: () => sv(['check', '--read-data']),
    },
    restic: {
      init: () => restic(['init']),
      backup: () => restic(['backup', src]),
      restore: () => restic(['restore', 'latest', '--target', target]),
      check: () => restic(['check', '--read-data']),
    },
    borg: {
      init: () => borg(['init', '-e', 'repokey-blake2', repo]),
      backup: () => borg(['create', '--compression', 'zstd,3', `${repo}::a${n++}`, src]),
      restore: () => {
        const last = execFileSync('borg', ['list', '--short', '--last', '1', repo], { env: { ...process.env, BORG_PASSPHRASE: password, BORG_BASE_DIR: join(work, 'borg-base') }, encoding: 'utf8' }).trim();
        mkdir(target, { recursive: true });
        return run('sh', ['-c', `mkdir -p "${target}" && cd "${target}" && borg extract "${repo}::${last}"`], { BORG_PASSPHRASE: password, BORG_BASE_DIR: join(work, 'borg-base') });
      },
      check: () => borg(['check', '--verify-data', repo]),
    },
  }[tool]!;
  ops.init();
  const full = ops.backup();
  const noChange = ops.backup();
  await changeOnePercent(files, tool.length);
  const changed = ops.backup();
  const restore = ops.restore();
  const check = ops.check();
  const repoBytes = du(repo);
  await rm(target, { recursive: true, force: true });
  return { tool, full, noChange, changed, restore, check, repoBytes };
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'sv-bench-'));
  try {
    const src = join(work, 'data');
    process.stderr.write(`generating ${fileCount} files, ${totalMb} MiB in ${src}\n`);
    const files = await generate(src);
    const tools = ['stackvault', ...['restic', 'borg'].filter((t) => has(t) || (process.stderr.write(`${t} not installed: skipped (apt-get install ${t === 'borg' ? 'borgbackup' : t})\n`), false))];
    const results: ToolResult[] = [];
    for (const tool of tools) {
      process.stderr.write(`running ${tool}...\n`);
      results.push(await benchTool(tool, work, src, files));
    }
    const base = results.find((r) => r.tool === 'restic');
    const cols: Array<[string, (r: ToolResult) => number, string]> = [
      ['full backup', (r) => r.full.seconds, 's'],
      ['no-change backup', (r) => r.noChange.seconds, 's'],
      ['1% changed backup', (r) => r.changed.seconds, 's'],
      ['restore', (r) => r.restore.seconds, 's'],
      ['check --read-data', (r) => r.check.seconds, 's'],
      ['repository size', (r) => r.repoBytes / 1048576, 'MiB'],
      ['peak RSS (max of steps)', (r) => Math.max(...[r.full, r.noChange, r.changed, r.restore, r.check].map((s) => s.peakRssMb ?? 0)), 'MiB'],
    ];
    const lines = [`machine: ${cpus().length} cores (${cpus()[0]?.model}), ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}`, `data: ${fileCount} files, ${totalMb} MiB`, ''];
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
    process.stdout.write(lines.join('\n') + '\n');
    const out = join(process.cwd(), 'bench-results.json');
    await writeFile(out, JSON.stringify({ date: new Date().toISOString(), files: fileCount, megabytes: totalMb, node: process.version, cores: cpus().length, results }, null, 2));
    process.stderr.write(`results written to ${out}\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
