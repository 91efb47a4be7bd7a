/**
 * Side-by-side benchmark of stackvault, restic and Borg on the same generated tree:
 * full backup, no-change backup, backup after 1% of files changed, full restore,
 * check with a full data read, repository size. Prints a table and writes JSON.
 *
 *   BENCH_MB=200 BENCH_FILES=5000 npm run bench     # smaller than the default 1 GiB, 50,000 files
 */
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pseudoRandom, pseudoText } from '../test/helpers.js';
import { du, has, run, type Step } from './common.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
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
  // The restored tree stays until every tool has run (see benchFiles).
  return { tool, full, noChange, changed, restore, check, repoBytes };
}

/** The files benchmark: returns the table's lines and the raw results. */
export async function benchFiles(work: string): Promise<{ lines: string[]; results: unknown }> {
  const src = join(work, 'data');
  process.stderr.write(`generating ${fileCount} files, ${totalMb} MiB in ${src}\n`);
  const files = await generate(src);
  const tools = ['stackvault', ...['restic', 'borg'].filter((t) => has(t) || (process.stderr.write(`${t} not installed: skipped (apt-get install ${t === 'borg' ? 'borgbackup' : t})\n`), false))];
  const results: ToolResult[] = [];
  for (const tool of tools) {
    process.stderr.write(`running ${tool}...\n`);
    results.push(await benchTool(tool, work, src, files));
  }
  // Deleted only now: on an ext4 without a journal (this machine's), files created within a
  // minute or more of a large deletion wait while the kernel skips every recently deleted
  // inode (recently_deleted() in ext4's inode allocator; seen with perf). Deleting one
  // tool's restored tree before the next tool's restore made that restore up to 3x slower.
  await Promise.all([src, ...tools.map((t) => join(work, `${t}-restore`))].map((p) => rm(p, { recursive: true, force: true })));
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
  const lines = [`files: ${fileCount} files, ${totalMb} MiB`, ''];
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
  return { lines, results: { files: fileCount, megabytes: totalMb, tools: results } };
}
