import { resolve } from 'node:path';
import { resolveExclusionClasses } from './exclusion-classes.js';
import type { LoadedConfig } from './load.js';

/** A files source of stackvault.yaml with its path made absolute and its exclusion classes resolved. */
export interface ResolvedFilesSource {
  name: string;
  path: string;
  include?: string[];
  exclude?: string[];
  exclusionClasses: Record<string, readonly string[]>;
}

export function resolveSources(loaded: LoadedConfig): ResolvedFilesSource[] {
  const classes = resolveExclusionClasses(loaded.config.exclusion_classes);
  return loaded.config.sources.map((s) => ({
    name: s.name,
    path: resolve(loaded.baseDir, s.path),
    include: s.include,
    exclude: s.exclude,
    exclusionClasses: s.exclusions ? Object.fromEntries(s.exclusions.map((c) => [c, classes[c]!])) : classes,
  }));
}
