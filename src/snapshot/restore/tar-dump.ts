import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { pack as tarPack, type Header } from 'tar-stream';
import type { Repository } from '../../repo/repository.js';
import type { TreeLoader, TreeNode } from '../tree.js';
import { walkTree } from '../walk.js';
import { contentIds } from '../content-list.js';

type EntryHeader = Partial<Header> & Pick<Header, 'name'>;

export interface TarDumpResult {
  /** entries a tar cannot hold (sockets), with why */
  skipped: Array<{ path: string; message: string }>;
}

/**
 * A folder of a snapshot as a tar stream, as `restic dump` writes one: paths start with the
 * folder's name, owners, modes, times, symlinks, hard links (as links to the first path),
 * FIFOs and device nodes as stored. Every blob is verified before it is written; memory
 * stays at one blob, whatever the size of a file, since writing waits for `out` to drain.
 */
export async function dumpTar(repo: Repository, loader: TreeLoader, folder: TreeNode, name: string, out: Writable): Promise<TarDumpResult> {
  const result: TarDumpResult = { skipped: [] };
  const archive = tarPack();
  const piped = new Promise<void>((resolve, reject) => {
    archive.on('error', reject);
    out.on('error', reject);
    archive.on('end', resolve);
    archive.on('data', (chunk: unknown) => {
      if (!out.write(chunk as Buffer)) {
        archive.pause();
        out.once('drain', () => archive.resume());
      }
    });
  });
  piped.catch(() => undefined);
  /** dev:inode -> the first path of a hard-link group in the archive */
  const firstLinks = new Map<string, string>();
  const put = async (header: EntryHeader, content?: (entry: Writable) => Promise<void>) => {
    await new Promise<void>((resolve, reject) => {
      // tar-stream's entries are streamx streams: used here as node's Writable.
      const entry = archive.entry(header, (err) => (err ? reject(err) : resolve())) as unknown as Writable;
      if (!content) return;
      content(entry).then(
        () => entry.end(),
        (err: unknown) => {
          entry.destroy(err as Error);
          reject(err);
        },
      );
    });
  };
  const common = (path: string, node: TreeNode): EntryHeader => {
    const ns = BigInt(node.mtime);
    const fraction = ns % 1_000_000_000n;
    return {
      name: path,
      mode: node.mode & 0o7777,
      uid: node.uid,
      gid: node.gid,
      mtime: new Date(Number(ns / 1_000_000n)),
      // A tar header holds whole seconds; a pax record carries the rest, as GNU tar writes it.
      ...(fraction === 0n ? {} : { pax: { mtime: `${ns / 1_000_000_000n}.${fraction.toString().padStart(9, '0')}` } }),
    };
  };

  await put({ ...common(`${name}/`, folder), type: 'directory' });
  if (folder.subtree) {
    for await (const { path, node } of walkTree(loader, folder.subtree, `/${name}`)) {
      const rel = path.slice(1);
      if (node.type === 'dir') await put({ ...common(`${rel}/`, node), type: 'directory' });
      else if (node.type === 'symlink') await put({ ...common(rel, node), type: 'symlink', linkname: node.target ?? '' });
      else if (node.type === 'fifo') await put({ ...common(rel, node), type: 'fifo' });
      else if (node.type === 'chardev' || node.type === 'blockdev') {
        const rdev = node.rdev ?? 0;
        await put({ ...common(rel, node), type: node.type === 'chardev' ? 'character-device' : 'block-device', devmajor: ((rdev >> 8) & 0xfff) | ((rdev >>> 32) & ~0xfff), devminor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) });
      } else if (node.type === 'file') {
        const linkKey = node.nlink > 1 ? `${node.dev}:${node.inode}` : undefined;
        const first = linkKey ? firstLinks.get(linkKey) : undefined;
        if (first) {
          await put({ ...common(rel, node), type: 'link', linkname: first });
          continue;
        }
        if (linkKey) firstLinks.set(linkKey, rel);
        await put({ ...common(rel, node), type: 'file', size: node.size ?? 0 }, async (entry) => {
          for await (const id of contentIds(repo, node.content)) {
            const data = await repo.loadBlob(id, 'data');
            if (!entry.write(data)) await once(entry, 'drain');
          }
        });
      } else {
        result.skipped.push({ path: rel, message: `a ${node.type} cannot go into a tar archive` });
      }
    }
  }
  archive.finalize();
  await piped;
  return result;
}
