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
 *
 * The loop device reads and writes its file past the page cache (losetup --direct-io), as
 * a disk has no second cache below its file system. Through the cache, every byte
 * restored was cached twice, the second time by the loop device's own kernel thread, and
 * the restores after the first took 2-3 times as long, for every tool, with 8-11 s of
 * system time where the first took 2-4 (the copies into fresh page cache, perf; on this
 * virtual machine a page freed to the host costs a fault when touched again; docs/
 * performance.md, twenty-sixth session). Where direct I/O is refused, the device caches.
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
  } catch (err) {
    rmSync(image, { force: true });
    return inWork(`no file system of their own: ${(err as Error).message.split('\n')[0]}`);
  }
  const attach = (direct: boolean) => spawnSync('losetup', [...(direct ? ['--direct-io=on'] : []), '--find', '--show', image], { encoding: 'utf8' });
  let direct = true;
  let attached = attach(true);
  if (attached.status !== 0) {
    direct = false;
    attached = attach(false);
  }
  const device = attached.stdout?.trim() ?? '';
  const mounted = attached.status === 0 && device !== '' && spawnSync('mount', [device, mountPoint], { stdio: 'pipe' }).status === 0;
  if (!mounted) {
    if (device !== '') spawnSync('losetup', ['-d', device]);
    rmSync(image, { force: true });
    return inWork(`no file system of their own: ${attached.status === 0 ? `mounting ${device} failed` : (attached.stderr?.trim() || attached.error?.message || 'losetup failed').split('\n')[0]}`);
  }
  return {
    root: mountPoint,
    description: `restores onto a new ext4 file system (mkfs.ext4 defaults, with a journal) in a loop device on the same disk (${direct ? 'its file read and written past the page cache' : 'direct I/O refused: its file through the page cache'})`,
    close: () => {
      spawnSync('umount', [mountPoint]);
      spawnSync('losetup', ['-d', device]);
      rmSync(image, { force: true });
    },
  };
}
