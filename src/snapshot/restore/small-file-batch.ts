/** The messages between SmallFileWriters and its threads (small-file-writer-worker.ts). */

/**
 * Files to write, in columns of strings and numbers rather than objects: a batch of 64
 * files was some 500 objects (a job, its metadata and one per blob for each file) to
 * build on the main thread, serialize, and build again on the writer's side.
 */
export interface SmallFileBatch {
  /** per file: where it goes, and its modification time (nanoseconds, decimal) */
  dests: string[];
  mtimes: string[];
  /** per file, FILE_FIELDS numbers: mode, owner, group, how many blobs of `ids` are its content */
  files: Float64Array;
  /** per blob, the files' blobs in order */
  ids: string[];
  /**
   * per blob, BLOB_FIELDS numbers: its pack (an index into `packs`), offset in the pack,
   * stored length, raw length, compressed (1) or not (0)
   */
  blobs: Float64Array;
  /** pack ids, and each pack's file ('' where its blobs' stored bytes follow one another in `bytes`) */
  packs: string[];
  packFiles: string[];
  bytes: Uint8Array;
}

export const FILE_FIELDS = 4;
export const BLOB_FIELDS = 5;

/** The files of a batch that could not be written: index, message, error code, whether a blob was damaged. */
export type SmallFileFailure = [file: number, message: string, code: string | undefined, damaged: boolean];

/** A writer's first message: the repository's keys and how files are created (the thread may start before the repository is open). */
export interface WriterSetup {
  setup: true;
  encryptionKey: Uint8Array | null;
  idKey: Uint8Array;
  replaceExisting: boolean;
  /** see SmallFileCreation.directWrites */
  directWrites: boolean;
}
