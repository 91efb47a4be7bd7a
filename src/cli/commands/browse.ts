import type { Command } from 'commander';
import { once } from 'node:events';
import { diffSnapshots } from '../../snapshot/diff.js';
import { describeProblems, findSnapshot, listSnapshots, matchesFilter, shortId, snapshotProblems, type SnapshotFilter, type SnapshotRef } from '../../snapshot/snapshot.js';
import { TreeLoader } from '../../snapshot/tree.js';
import { findNode, findSnapshotNode, normalizeSnapshotPath, walkTree } from '../../snapshot/walk.js';
import { UsageError } from '../../util/errors.js';
import { formatBytes, plural } from '../../util/format.js';
import type { Repository } from '../../repo/repository.js';
import type { CliContext } from '../context.js';
import { collect, emit } from '../output.js';
import { contentIds } from '../../snapshot/content-list.js';

interface FilterFlags {
  host?: string;
  stack?: string;
  tag: string[];
}

export function filterFrom(flags: FilterFlags): SnapshotFilter {
  return { host: flags.host, stack: flags.stack, tags: flags.tag };
}

export function addFilterOptions(cmd: Command): Command {
  return cmd
    .option('--host <name>', 'only snapshots of this host')
    .option('--stack <name>', 'only snapshots of this stack')
    .option('--tag <tag>', 'only snapshots with this tag (repeatable: all must match)', collect, []);
}

export async function resolveSnapshot(repo: Repository, ref: string, filter: SnapshotFilter = {}): Promise<SnapshotRef> {
  return findSnapshot(await listSnapshots(repo), ref, filter);
}

function modeString(type: string, mode: number): string {
  const t = { dir: 'd', symlink: 'l', fifo: 'p', socket: 's', chardev: 'c', blockdev: 'b' }[type] ?? '-';
  const rwx = ['r', 'w', 'x'];
  let out = t;
  for (let i = 8; i >= 0; i--) out += mode & (1 << i) ? rwx[(8 - i) % 3] : '-';
  return out;
}

/** Write to stdout honoring back-pressure, so dumping a large file keeps memory bounded. */
async function writeOut(data: Uint8Array): Promise<void> {
  if (!process.stdout.write(data)) await once(process.stdout, 'drain');
}

export function registerBrowseCommands(program: Command, context: () => CliContext): void {
  addFilterOptions(
    program
      .command('snapshots')
      .description('list snapshots')
      .option('--latest <n>', 'only the newest n per host and stack', (v) => Number(v))
      .option('--forgotten', 'the forgotten snapshots prune has not deleted yet ("forget --undo ID" keeps one again)'),
  )
    .addHelpText('after', `\nExamples:\n  stackvault snapshots\n  stackvault snapshots --stack acme --tag nightly --json\n  stackvault snapshots --forgotten`)
    .action(async (flags: FilterFlags & { latest?: number; forgotten?: boolean }) => {
      const ctx = context();
      const repo = await ctx.openRepository();
      const filter = filterFrom(flags);
      let refs = (await listSnapshots(repo, { onlyForgotten: flags.forgotten })).filter((r) => matchesFilter(r.snapshot, filter));
      if (flags.latest !== undefined) {
        const groups = new Map<string, SnapshotRef[]>();
        for (const r of refs) groups.set(`${r.snapshot.host}\0${r.snapshot.stack}`, [...(groups.get(`${r.snapshot.host}\0${r.snapshot.stack}`) ?? []), r]);
        refs = [...groups.values()].flatMap((g) => g.slice(-flags.latest!));
      }
      emit(
        ctx,
        () => {
          const rows = refs.map((r) => {
            const s = r.snapshot;
            const bytes = s.sources.reduce((n, x) => n + x.stats.bytes, 0);
            const sources = s.sources.map((x) => (x.path && x.path !== x.name ? `${x.name} (${x.path})` : x.name)).join(', ');
            return [shortId(r.id), s.time.replace('T', ' ').slice(0, 19), s.host, s.stack ?? '-', s.tags.join(',') || '-', formatBytes(bytes), describeProblems(snapshotProblems(s)) || '-', sources];
          });
          const header = ['ID', 'Time (UTC)', 'Host', 'Stack', 'Tags', 'Size', 'Problems', 'Sources'];
          const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
          const line = (cols: string[]) => cols.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
          return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line), plural(refs.length, flags.forgotten ? 'forgotten snapshot' : 'snapshot')].join('\n');
        },
        () =>
          refs.map((r) => {
            const problems = snapshotProblems(r.snapshot);
            // The counts the backup's own summary gave; each source's record names the entries.
            return { id: r.id, short_id: shortId(r.id), ...r.snapshot, error_count: problems.unreadable, changed_while_read_count: problems.changedWhileRead };
          }),
      );
    });

  program
    .command('ls')
    .description('list the files in a snapshot')
    .argument('<snapshot>', 'snapshot id or "latest"')
    .argument('[path]', 'only below this path, e.g. /data/prompts', '/')
    .option('-l, --long', 'show mode, owner, size and time')
    .addHelpText('after', `\nExamples:\n  stackvault ls latest\n  stackvault ls -l 1a2b3c4d /data`)
    .action(async (snapshot: string, path: string, flags: { long?: boolean }) => {
      const ctx = context();
      const repo = await ctx.openRepository();
      await repo.loadIndex();
      const ref = await resolveSnapshot(repo, snapshot);
      const loader = new TreeLoader(repo);
      const base = normalizeSnapshotPath(path);
      let treeId = ref.snapshot.tree;
      if (base !== '/') {
        const node = await findNode(loader, ref.snapshot.tree, base);
        if (!node) throw new UsageError(`${base} is not in snapshot ${shortId(ref.id)}`);
        if (!node.subtree) {
          process.stdout.write(ctx.json ? JSON.stringify({ path: base, ...node }) + '\n' : base + '\n');
          return;
        }
        treeId = node.subtree;
      }
      for await (const { path: p, node } of walkTree(loader, treeId, base)) {
        if (ctx.json) await writeOut(Buffer.from(JSON.stringify({ path: p, type: node.type, mode: node.mode, uid: node.uid, gid: node.gid, size: node.size ?? 0, mtime: new Date(Number(BigInt(node.mtime) / 1_000_000n)).toISOString(), target: node.target }) + '\n'));
        else if (flags.long) {
          const time = new Date(Number(BigInt(node.mtime) / 1_000_000n)).toISOString().replace('T', ' ').slice(0, 19);
          await writeOut(Buffer.from(`${modeString(node.type, node.mode)} ${String(node.uid).padStart(5)} ${String(node.gid).padStart(5)} ${String(node.size ?? 0).padStart(12)} ${time} ${p}${node.target ? ` -> ${node.target}` : ''}\n`));
        } else await writeOut(Buffer.from(p + '\n'));
      }
    });

  program
    .command('diff')
    .description('show what changed between two snapshots (+ added, - removed, M modified, T type changed, U metadata)')
    .argument('<snapshot-a>')
    .argument('<snapshot-b>')
    .addHelpText('after', `\nExample:\n  stackvault diff 1a2b3c4d latest`)
    .action(async (a: string, b: string) => {
      const ctx = context();
      const repo = await ctx.openRepository();
      const refs = await listSnapshots(repo);
      const left = findSnapshot(refs, a);
      const right = findSnapshot(refs, b);
      const counts: Record<string, number> = { '+': 0, '-': 0, M: 0, T: 0, U: 0 };
      for await (const change of diffSnapshots(repo, left, right)) {
        counts[change.kind]!++;
        await writeOut(Buffer.from(ctx.json ? JSON.stringify({ message_type: 'change', modifier: change.kind, path: change.path, type: change.type }) + '\n' : `${change.kind}    ${change.path}\n`));
      }
      emit(
        ctx,
        () => `\nadded ${counts['+']}, removed ${counts['-']}, modified ${counts['M']}, type changed ${counts['T']}, metadata ${counts['U']}`,
        () => ({ message_type: 'statistics', added: counts['+'], removed: counts['-'], modified: counts['M'], type_changed: counts['T'], metadata: counts['U'] }),
      );
    });

  program
    .command('dump')
    .description('write a file of a snapshot to standard output, or a folder as a tar archive')
    .argument('<snapshot>', 'snapshot id or "latest"')
    .argument('<path>', 'a file, e.g. /data/config/settings.ini, or a folder, e.g. /data/config')
    .addHelpText('after', `\nExamples:\n  stackvault dump latest /data/config/settings.ini > settings.ini\n  stackvault dump latest /data/config > config.tar          # a folder: a tar archive, as restic writes\n  stackvault dump latest / | tar -t                          # everything`)
    .action(async (snapshot: string, path: string) => {
      const ctx = context();
      const repo = await ctx.openRepository();
      await repo.loadIndex();
      const ref = await resolveSnapshot(repo, snapshot);
      const loader = new TreeLoader(repo);
      const wanted = normalizeSnapshotPath(path);
      // The snapshot's root is a folder too: its tree holds one folder per source.
      const node = await findSnapshotNode(loader, ref, wanted);
      if (!node) throw new UsageError(`${wanted} is not in snapshot ${shortId(ref.id)}`);
      if (node.type === 'dir') {
        if (process.stdout.isTTY) throw new UsageError(`${wanted} is a folder: its tar archive would go to the terminal; redirect it to a file or a pipe`);
        const { dumpTar } = await import('../../snapshot/restore/tar-dump.js');
        const name = wanted === '/' ? `snapshot-${shortId(ref.id)}` : wanted.slice(wanted.lastIndexOf('/') + 1);
        const result = await dumpTar(repo, loader, node, name, process.stdout);
        for (const s of result.skipped) process.stderr.write(`warning: ${s.path} left out: ${s.message}\n`);
        return;
      }
      if (node.type !== 'file') throw new UsageError(`${wanted} is a ${node.type}, not a file or folder`);
      for await (const id of contentIds(repo, node.content)) await writeOut(await repo.loadBlob(id, 'data'));
    });
}
