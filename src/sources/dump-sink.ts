/**
 * How a streamed source (a database dump) hands its output to the snapshot layer and gets
 * it back on restore, without knowing about repositories: a dump is a small tree of files.
 */
export interface DumpSink {
  /** Store `content` as the file at `path` ("/"-separated, relative to the source). Several files may be written at once. */
  writeFile(path: string, content: AsyncIterable<Buffer> | Buffer): Promise<{ size: number }>;
}

export interface DumpReader {
  has(path: string): boolean;
  size(path: string): number;
  /** The file's content, verified block by block as it is read. */
  read(path: string): AsyncIterable<Buffer>;
}

export async function readWhole(reader: DumpReader, path: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of reader.read(path)) parts.push(part);
  return Buffer.concat(parts);
}
