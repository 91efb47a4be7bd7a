import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What one probe of this machine took, in milliseconds. */
export interface MachineSpeed {
  /** SHA-256 of 256 MiB on one core */
  hashMs: number;
  /** 2,000 files of 4 KiB written, read back and deleted */
  filesMs: number;
}

/**
 * How fast this machine is right now, probed the same way at a bench's start and end. Its
 * speed moves by half within minutes (a virtual machine on a shared host, which reports no
 * steal time), and a ratio against restic moves with it: a bench whose probes took longer
 * than usual ran on a slow machine, and says so beside its results.
 */
export function probeMachineSpeed(dir: string): MachineSpeed {
  const block = Buffer.alloc(64 << 20, 7);
  let started = performance.now();
  for (let i = 0; i < 4; i++) createHash('sha256').update(block).digest();
  const hashMs = performance.now() - started;

  const folder = join(dir, 'speed-probe');
  mkdirSync(folder, { recursive: true });
  const content = Buffer.alloc(4096, 1);
  started = performance.now();
  for (let i = 0; i < 2000; i++) writeFileSync(join(folder, String(i)), content);
  for (let i = 0; i < 2000; i++) readFileSync(join(folder, String(i)));
  rmSync(folder, { recursive: true });
  const filesMs = performance.now() - started;
  return { hashMs: Math.round(hashMs), filesMs: Math.round(filesMs) };
}

export function describeSpeed(start: MachineSpeed, end: MachineSpeed): string {
  return `machine speed (SHA-256 of 256 MiB on one core; 2,000 small files written, read, deleted): at the start ${start.hashMs} ms, ${start.filesMs} ms; at the end ${end.hashMs} ms, ${end.filesMs} ms`;
}
