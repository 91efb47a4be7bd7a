import { resolve } from 'node:path';
import type { SourceDriver } from '../driver.js';
import type { z } from 'zod';
import type { filesSourceSchema } from './schema.js';

/** A folder: walked and deduplicated file by file by the snapshot layer (snapshot/backup.ts). */
export interface FilesSource {
  kind?: 'files';
  name: string;
  path: string;
  include?: string[];
  exclude?: string[];
  /** exclusion classes in force; defaults to the built-in classes */
  exclusionClasses?: Record<string, readonly string[]>;
  /** stay on the source folder's file system: other mounts below it become empty folders (restic's --one-file-system) */
  oneFileSystem?: boolean;
}

export const filesDriver: SourceDriver<FilesSource> = {
  kind: 'files',
  configTypes: ['files'],
  fromConfig: (entry: z.infer<typeof filesSourceSchema>, context) => ({
    kind: 'files',
    name: entry.name,
    path: resolve(context.baseDir, entry.path),
    include: entry.include,
    exclude: entry.exclude,
    exclusionClasses: entry.exclusions ? Object.fromEntries(entry.exclusions.map((c) => [c, context.exclusionClasses[c]!])) : context.exclusionClasses,
  }),
};

export function isFilesSource(s: { kind?: string }): s is FilesSource {
  return s.kind === undefined || s.kind === 'files';
}
