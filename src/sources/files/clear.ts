import { lstat, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { osPath, readNames } from '../../util/os-path.js';
import { ExclusionMatcher, type ExclusionRules } from './exclusions.js';

/**
 * Remove (or with dryRun, count) what a backup of this folder would hold, and nothing else: files the source's
 * rules leave out (call recordings, logs, temporary files) stay where they are, with the
 * folders that hold them. Restoring a snapshot over a live stack starts here, so that
 * what a failed step added goes while what no snapshot holds is never lost.
 */
export async function clearSourceContents(root: string, rules: ExclusionRules, options: { dryRun?: boolean } = {}): Promise<{ removed: number; kept: number }> {
  const matcher = new ExclusionMatcher(rules);
  const counts = { removed: 0, kept: 0 };
  /** whether the folder is empty afterwards */
  const clear = async (dir: string, rel: string, included: boolean): Promise<boolean> => {
    let names: string[];
    try {
      names = await readNames(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
      throw err;
    }
    let empty = true;
    for (const name of names) {
      const full = join(dir, name);
      const childRel = rel ? `${rel}/${name}` : name;
      const isDir = (await lstat(osPath(full))).isDirectory();
      const inScope = included || !matcher.hasIncludes || matcher.isIncluded(childRel, isDir);
      if (matcher.classify(childRel, isDir).excluded) {
        counts.kept++;
        empty = false;
      } else if (isDir) {
        // Below a folder no include names, an included path may still lie deeper: look inside, keep the folder.
        if ((await clear(full, childRel, inScope)) && inScope) {
          if (!options.dryRun) await rmdir(osPath(full));
        }
        else empty = false;
      } else if (inScope) {
        if (!options.dryRun) await rm(osPath(full), { force: true });
        counts.removed++;
      } else {
        counts.kept++;
        empty = false;
      }
    }
    return empty;
  };
  await clear(root, '', false);
  return counts;
}
