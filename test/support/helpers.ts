import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { chmod, link, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile, lstat, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { markOf, type FileMark } from '../../src/util/file-mark.js';
import { objectKey } from '../../src/repo/format/layout.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Runs `use` on a file system mounted for the test in a temporary folder: needs root. */
export async function onMountedFileSystem(t: TestContext, mount: (dir: string) => string[], use: (dir: string) => Promise<void>): Promise<void> {
  if (process.getuid?.() !== 0) return t.skip('mounting a file system needs root');
  const dir = await tempDir(t);
  execFileSync('mount', mount(dir));
  try {
    await use(dir);
  } finally {
    // Before tempDir's clean-up, which cannot remove a mount point.
    execFileSync('umount', [dir]);
  }
}

/** `use` a fresh ext4 file system of `size` (as truncate takes it: "24M"), loop-mounted: a disk that fills up. */
export async function onSmallExt4(t: TestContext, size: string, use: (dir: string) => Promise<void>): Promise<void> {
  const image = join(await tempDir(t), 'small.img');
  execFileSync('truncate', ['-s', size, image]);
  execFileSync('mkfs.ext4', ['-q', '-F', image]);
  await onMountedFileSystem(t, (mount) => ['-o', 'loop', image, mount], use);
}

/** Flip one byte of a stored object in place (the middle one by default), as bit rot on a WORM share would. */
export async function flipByte(file: string, at?: number): Promise<void> {
  await chmod(file, 0o644);
  const bytes = await readFile(file);
  const i = at ?? Math.floor(bytes.length / 2);
  bytes[i] = bytes[i]! ^ 0x55;
  await writeFile(file, bytes);
  await chmod(file, 0o444);
}

/** Flips a byte in the middle of a blob (`entry`: where the index places it) in its pack of the folder repository at `repoDir`. */
export async function flipBlob(repoDir: string, entry: { pack: string; offset: number; length: number }): Promise<void> {
  await flipByte(join(repoDir, objectKey('data', entry.pack)), entry.offset + Math.floor(entry.length / 2));
}

/** A temporary folder removed when the test ends. */
/** What a backup's walk sees of a file (see util/file-mark.ts): its size and change time, now. */
export async function markOfFile(path: string): Promise<FileMark> {
  const st = await lstat(path, { bigint: true });
  return markOf(Number(st.size), st.ctimeNs.toString());
}

export async function tempDir(t: TestContext, prefix = 'sv-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let cacheDir: string | undefined;
/**
 * The cache (key files of network repositories, see repo/key-cache.ts) of every command a
 * test runs: a folder of this test process, not the user's ~/.cache, removed at its exit.
 */
function testCacheDir(): string {
  if (!cacheDir) {
    const dir = mkdtempSync(join(tmpdir(), 'sv-test-cache-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    cacheDir = dir;
  }
  return cacheDir;
}

/** Run the real stackvault command in a child process. */
export function runCli(
  args: string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number; uid?: number; gid?: number; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd,
      env: {
        ...process.env,
        STACKVAULT_PASSWORD: undefined,
        STACKVAULT_REPOSITORY: undefined,
        STACKVAULT_PASSWORD_FILE: undefined,
        STACKVAULT_CONFIG: undefined,
        STACKVAULT_CACHE_DIR: testCacheDir(),
        ...options.env,
      },
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      uid: options.uid,
      gid: options.gid,
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** Deterministic pseudo-random bytes (xorshift), so test data is reproducible and generated, not stored. */
export function pseudoRandom(seed: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf.writeUInt32LE(x, i <= length - 4 ? i : 0);
    if (i > length - 4) {
      for (let j = i; j < length; j++) buf[j] = (x >>> (8 * (j - i))) & 0xff;
    }
  }
  return buf;
}

/** Text-like compressible bytes. */
export function pseudoText(seed: number, length: number): Buffer {
  const words = ['queue', 'agent', 'call', 'sales', 'support', 'billing', 'hold', 'transfer', 'ivr', 'prompt', '\n'];
  const out: string[] = [];
  let n = 0;
  let x = seed >>> 0 || 1;
  while (n < length) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const w = words[(x >>> 16) % words.length]! + ' ';
    out.push(w);
    n += w.length;
  }
  return Buffer.from(out.join('')).subarray(0, length);
}

/**
 * A tree with what a restore must get right: files of many sizes (empty to several
 * chunks), modes, exact mtimes, symlinks (relative, absolute, dangling), hard links,
 * empty folders, odd names, and owners when running as root.
 */
export async function makeRichTree(root: string, seed = 1): Promise<void> {
  await mkdir(join(root, 'docs/empty-folder'), { recursive: true });
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'deep/a/b/c/d'), { recursive: true });
  await mkdir(join(root, 'names'), { recursive: true });
  await writeFile(join(root, 'docs/empty.txt'), '');
  await writeFile(join(root, 'docs/small.txt'), pseudoText(seed, 1234));
  await writeFile(join(root, 'docs/text.txt'), pseudoText(seed + 1, 3_000_000));
  await writeFile(join(root, 'bin/large.bin'), pseudoRandom(seed + 2, 12_500_000));
  await writeFile(join(root, 'bin/tool.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(root, 'bin/tool.sh'), 0o755);
  await writeFile(join(root, 'docs/secret.key'), 'k');
  await chmod(join(root, 'docs/secret.key'), 0o600);
  await writeFile(join(root, 'deep/a/b/c/d/leaf.dat'), pseudoRandom(seed + 3, 70_000));
  await writeFile(join(root, 'names/with space ü €.txt'), 'unicode');
  await writeFile(join(root, 'names/-dash'), 'dash');
  await writeFile(join(root, 'names/.hidden'), 'hidden');
  await symlink('../docs/small.txt', join(root, 'names/rel-link'));
  await symlink('/etc/hostname', join(root, 'names/abs-link'));
  await symlink('does-not-exist', join(root, 'names/dangling'));
  await link(join(root, 'docs/small.txt'), join(root, 'names/hardlink-to-small'));
  await link(join(root, 'docs/small.txt'), join(root, 'docs/small-same-folder-link.txt'));
  await link(join(root, 'bin/large.bin'), join(root, 'bin/large-link.bin'));
  await chmod(join(root, 'deep/a'), 0o750);
  await chmod(join(root, 'docs/empty-folder'), 0o1777);
  if (process.getuid?.() === 0) {
    const { chown, lchown } = await import('node:fs/promises');
    await chown(join(root, 'docs/small.txt'), 1234, 5678);
    await chown(join(root, 'deep/a'), 4321, 8765);
    await lchown(join(root, 'names/rel-link'), 1111, 2222);
  }
  // Exact times with nanoseconds, set last, deepest first, so folder times stick.
  const stamp = async (p: string, seconds: number) => utimes(join(root, p), seconds + 0.123456, seconds + 0.123456);
  await stamp('deep/a/b/c/d/leaf.dat', 1_000_000_000);
  await stamp('docs/small.txt', 1_100_000_000);
  await stamp('bin/large.bin', 1_200_000_000);
  await stamp('deep/a/b/c/d', 1_300_000_000);
  await stamp('deep/a', 1_400_000_000);
  await stamp('docs/empty-folder', 1_500_000_000);
  // Nanoseconds that a double cannot carry exactly (as git checkouts and most file systems produce).
  for (const [file, when] of [['docs/text.txt', '@1600000000.123456999'], ['bin/tool.sh', '@1700000000.000000001'], ['names/-dash', '@1795565081.680548012'], ['docs/empty-folder', '@1795565081.680548012']]) {
    execFileSync('touch', ['-m', '-d', when!, join(root, file!)]);
  }
}

/** Every object in a repository folder with inode, mtime and content hash. */
export async function objectFingerprints(repoDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, rel: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${entry.name}` : entry.name;
      if (r === 'tmp') continue;
      if (entry.isDirectory()) await walk(join(dir, entry.name), r);
      else {
        const st = await lstat(join(dir, entry.name), { bigint: true });
        const hash = createHash('sha256').update(await readFile(join(dir, entry.name))).digest('hex');
        out.set(r, `ino=${st.ino} mtime=${st.mtimeNs} size=${st.size} mode=${(st.mode & 0o7777n).toString(8)} sha256=${hash}`);
      }
    }
  };
  await walk(repoDir, '');
  return out;
}

/** What `probe` gives once it gives something (its failures count as not yet), or a timeout naming `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
