import type { DumpReader, DumpSink } from './dump-sink.js';
import type { ConnectOptions } from './mariadb/connection.js';

/**
 * A kind of source: how stackvault.yaml describes it, how it is reached inside a stack, and
 * for a streamed source (a database, a git repository) how it is backed up into a small
 * tree of files and put back. Files sources are walked by the snapshot layer instead (they
 * are deduplicated file by file against the parent snapshot); their driver has no backup.
 *
 * A new kind of source is a folder of sources/ with its driver, plus a line in
 * sources/registry.ts and one in sources/config-schema.ts. Drivers load what they run
 * (a database client, a dumper) when they run it: every command imports the registry.
 */
export interface SourceDriver<Spec extends SourceSpecBase = SourceSpecBase> {
  kind: NonNullable<Spec['kind']>;
  /** the `type` values of stackvault.yaml's sources this driver takes (its schema is in sources/config-schema.ts) */
  configTypes: readonly string[];
  /** an entry of stackvault.yaml, checked by its schema, made ready to run: paths absolute, secrets read */
  fromConfig(entry: never, context: SourceConfigContext): Spec;
  /** the compose services the source runs as (started on their own before a restore into them) */
  services?(spec: Spec): string[];
  /** the spec reaching its service at `address` in the stack's network */
  atServiceAddress?(spec: Spec, address: string): Spec;
  /** back up into sink; what it returns goes into the snapshot's record of the source */
  backup?(spec: Spec, sink: DumpSink, options: StreamedBackupOptions): Promise<StreamedBackupRecord>;
  /** put a backup back where spec points (a stack's restore, or disaster recovery) */
  restore?(reader: DumpReader, spec: Spec, options: { force: boolean; signal?: AbortSignal }): Promise<void>;
  /**
   * A restore drill: the backup put into a scratch place, checked there against what was
   * backed up, and removed. Returns what the drill report shows for this source.
   */
  drill?(reader: DumpReader, source: string, record: StreamedBackupRecord, scratch: DrillScratch, signal?: AbortSignal): Promise<Record<string, unknown>>;
}

export interface SourceSpecBase {
  /** a files source given on the command line may leave it out */
  kind?: string;
  name: string;
}

export interface SourceConfigContext {
  /** the folder of stackvault.yaml: relative paths start there */
  baseDir: string;
  /** where the entry is, for messages: `stackvault.yaml: sources[1] ("db")` */
  where: string;
  /** the stack's exclusion classes in force */
  exclusionClasses: Record<string, readonly string[]>;
}

export interface StreamedBackupOptions {
  signal?: AbortSignal;
  progress?: (p: { bytesDone: number; bytesEstimate: number; current: string }) => void;
}

/** What the snapshot records about a streamed source besides its files. */
export interface StreamedBackupRecord {
  /** where it was read from (never a secret): mariadb://user@host:port, a folder */
  path: string;
  database?: DatabaseRecord;
}

/** What a database source's dump recorded about itself (never its password). */
export interface DatabaseRecord {
  server: string;
  consistency: string;
  /** milliseconds commits were held back to align the dump's connections */
  lockMs: number;
  binlog: { gtid?: string; file?: string; position?: string } | null;
  databases: string[];
  tables: number;
  rows: number;
  users: boolean;
  warnings: string[];
}

/** Where drills put streamed sources: a scratch folder, and the scratch database server if configured. */
export interface DrillScratch {
  folder: string;
  database?: ConnectOptions;
}
