import { statfs } from 'node:fs/promises';
import { resolve } from 'node:path';
import { osPath } from '../../util/os-path.js';

/**
 * File systems whose "files" are the kernel's view of itself (processes, devices, cgroups):
 * reading them is at best useless and at worst endless or harmful, so a backup records
 * such a mount point as an empty folder and never reads below it (statfs f_type magic).
 */
const PSEUDO_FILE_SYSTEMS = new Set([
  0x9fa0, // proc
  0x62656572, // sysfs
  0x1cd1, // devpts
  0x27e0eb, // cgroup
  0x63677270, // cgroup2
  0x64626720, // debugfs
  0x73636673, // securityfs
  0x74726163, // tracefs
  0xcafe4a11, // bpf
  0x6165676c, // pstore
  0x62656570, // configfs
  0x65735543, // fusectl
  0x19800202, // mqueue
  0x42494e4d, // binfmt_misc
  0xde5e81e4, // efivarfs
  0x6e736673, // nsfs
]);

/** Whether the mount point `dir` holds a pseudo file system (or is /dev, a tmpfs of device nodes). */
export async function isPseudoFileSystem(dir: string): Promise<boolean> {
  if (resolve(dir) === '/dev') return true;
  try {
    return PSEUDO_FILE_SYSTEMS.has(Number((await statfs(osPath(dir) as string)).type));
  } catch {
    return false;
  }
}

/**
 * Why a walk leaves out the mount point `dir` (another file system than its parent's),
 * or undefined when it walks it: with oneFileSystem every other mount, and always a
 * pseudo file system.
 */
export async function leftOutMount(dir: string, oneFileSystem: boolean | undefined): Promise<'other file system' | 'pseudo file system' | undefined> {
  if (oneFileSystem) return 'other file system';
  return (await isPseudoFileSystem(dir)) ? 'pseudo file system' : undefined;
}
