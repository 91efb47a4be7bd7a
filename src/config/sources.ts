import { resolveExclusionClasses } from '../sources/files/exclusion-classes.js';
import { driverOfType, type SourceSpec } from '../sources/registry.js';
import type { LoadedConfig } from './load.js';

/** The sources of stackvault.yaml, each made ready by its driver: paths absolute, secrets read. */
export function resolveSources(loaded: LoadedConfig): SourceSpec[] {
  const exclusionClasses = resolveExclusionClasses(loaded.config.exclusion_classes);
  return loaded.config.sources.map((entry, i) =>
    driverOfType(entry.type).fromConfig(entry as never, { baseDir: loaded.baseDir, where: `${loaded.file}: sources[${i}] ("${entry.name}")`, exclusionClasses }),
  );
}
