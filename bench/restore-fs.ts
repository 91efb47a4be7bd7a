/**
 * Where the benches restore to. This machine's root file system is ext4 without a journal,
 * and there ext4's inode allocator skips every inode number freed recently (the kernel's
 * recently_deleted(), a check only a journal-less ext4 makes): for many minutes after a
 * large deletion, anywhere on that file system (an earlier mode's clean-up, an earlier
 * bench's), each new file waits while the kernel looks the freed numbers up: 37% of all
 * CPU samples of one of our restores there, 30% of restic's (perf; docs/performance.md,
 * eighteenth and nineteenth sessions), and a restore took 2-3x its time.
 *
 * So restores go to a file system made for the run: ext4 as mkfs.ext4 makes it by
 * default (with its journal, as a server's disk is made), in a loop device over a sparse
 * file on the same disk, removed at the end. Every tool restores there alike. Where it
 * cannot be made (not root, no loop device, no mkfs.ext4), or with BENCH_RESTORE_FS=work,
 * restores go into the work folder as before; the bench's output says which.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export interface RestoreFileSystem {
  /** the folder restores go under (each mode makes its own folder in it) */
  root: string;
  /** for the bench's output: where restores went */
  description: string;
  close(): void;
}

/** Sparse: only what is written takes room; the modes remove their restores as they end. */
const IMAGE_SIZE = '48G';

export function restoreFileSystem(work: string): RestoreFileSystem {
  const inWork = (why: string): RestoreFileSystem => ({ root: join(work, 'restores'), description: `restores into the work folder (${why})`, close: () => undefined });
  if (process.env.BENCH_RESTORE_FS === 'work') return inWork('BENCH_RESTORE_FS=work');
  if (process.getuid?.() !== 0) return inWork('not root: no loop device for a file system of their own');
  const image = join(work, 'restore-fs.img');
  const mountPoint = join(work, 'restore-fs');
  try {
    execFileSync('truncate', ['-s', IMAGE_SIZE, image]);
    // Inode tables and journal written now: initialised lazily, a kernel thread would write
    // them in the background while the tools run.
    execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image], { stdio: 'pipe' });
    mkdirSync(mountPoint);
    execFileSync('mount', ['-o', 'loop', image, mountPoint], { stdio: 'pipe' });
  } catch (err) {
    rmSync(image, { force: true });
    return inWork(`no file system of their own: ${(err as Error).message.split('\n')[0]}`);
  }
  return {
    root: mountPoint,
    description: 'restores onto a new ext4 file system (mkfs.ext4 defaults, with a journal) in a loop device on the same disk',
    close: () => {
      // A loop mount releases its device when unmounted.
      spawnSync('umount', [mountPoint]);
      rmSync(image, { force: true });
    },
  };
}
