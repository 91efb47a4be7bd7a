import type { BlobWriter, SaveResult } from '../repo/encode/blob-writer.js';
import type { FileEncoder } from '../repo/encode/file-encoder.js';

/** chunks of one dump file being compressed and encrypted while the next are read */
const CHUNKS_AHEAD = 4;
import type { Repository } from '../repo/repository.js';
import type { DumpReader, DumpSink } from '../sources/dump-sink.js';
import { InterruptedError, UsageError } from '../util/errors.js';
import type { SourceStats } from './snapshot.js';
import { ContentBuilder, contentLists, type FileContent } from './content-list.js';
import { TreeLoader, saveTree, type TreeNode } from './tree.js';
import { walkTree } from './walk.js';

/**
 * A streamed source's files become a folder of the snapshot like any other: content goes
 * through the chunker (so unchanged stretches of a dump deduplicate night to night), and
 * the folders are built from the paths once every file is stored.
 */
export class DumpTreeWriter implements DumpSink {
  private readonly files = new Map<string, { size: number; content: FileContent }>();

  constructor(
    private readonly repo: Repository,
    private readonly writer: BlobWriter,
    private readonly stats: SourceStats,
    private readonly time: Date,
    private readonly onAdded: (storedBytes: number) => void,
    private readonly signal?: AbortSignal,
    private readonly encoder: FileEncoder | null = null,
  ) {}

  async writeFile(path: string, content: AsyncIterable<Buffer> | Buffer): Promise<{ size: number }> {
    if (this.files.has(path)) throw new Error(`internal error: ${path} written twice`);
    const blocks = Buffer.isBuffer(content) ? (async function* () { yield content; })() : content;
    // A table's dump can be many gigabytes: its list goes to content parts as they fill.
    const ids = new ContentBuilder(this.writer);
    let size = 0;
    const storing: Array<Promise<SaveResult>> = [];
    const stored = async (saved: SaveResult) => {
      await ids.add(saved.id);
      this.stats.bytesAdded += saved.storedBytes;
      this.onAdded(saved.storedBytes);
    };
    for await (const chunk of this.repo.chunker.chunkStream(blocks)) {
      if (this.signal?.aborted) throw new InterruptedError('backup interrupted; nothing was committed');
      size += chunk.length;
      const saving = this.store(chunk);
      saving.catch(() => undefined); // awaited in order below
      storing.push(saving);
      if (storing.length >= CHUNKS_AHEAD) await stored(await storing.shift()!);
    }
    for (const saving of storing) await stored(await saving);
    this.files.set(path, { size, content: await ids.finish() });
    this.stats.files++;
    this.stats.newFiles++;
    this.stats.bytes += size;
    this.stats.bytesRead += size;
    return { size };
  }

  /**
   * A new chunk is compressed and encrypted on an encoder thread while this thread goes
   * on reading rows and chunking; it is hashed here first, so a chunk the repository
   * already has (most of a nightly dump) costs no compression.
   */
  private async store(chunk: Buffer): Promise<SaveResult> {
    if (!this.encoder) return this.writer.save('data', chunk);
    const id = this.repo.blobId(chunk);
    if (this.writer.has(id)) return { id, added: false, storedBytes: 0 };
    return this.writer.addEncoded('data', await this.encoder.encodeChunk(id, chunk));
  }

  /** Store the folders; returns the source folder's tree id. */
  async saveTree(): Promise<string> {
    const timeNs = (BigInt(this.time.getTime()) * 1_000_000n).toString();
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const node = (name: string, type: 'file' | 'dir'): TreeNode => ({
      name,
      type,
      mode: type === 'dir' ? 0o700 : 0o600,
      uid,
      gid,
      mtime: timeNs,
      ctime: timeNs,
      inode: '0',
      dev: '0',
      nlink: 1,
    });
    interface Folder {
      files: Map<string, { size: number; content: FileContent }>;
      folders: Map<string, Folder>;
    }
    const root: Folder = { files: new Map(), folders: new Map() };
    for (const [path, file] of this.files) {
      const parts = path.split('/');
      let folder = root;
      for (const part of parts.slice(0, -1)) {
        let sub = folder.folders.get(part);
        if (!sub) folder.folders.set(part, (sub = { files: new Map(), folders: new Map() }));
        folder = sub;
      }
      folder.files.set(parts[parts.length - 1]!, file);
    }
    const save = async (folder: Folder): Promise<string> => {
      const nodes: TreeNode[] = [];
      for (const [name, sub] of folder.folders) {
        nodes.push({ ...node(name, 'dir'), subtree: await save(sub) });
        this.stats.dirs++;
      }
      for (const [name, file] of folder.files) nodes.push({ ...node(name, 'file'), size: file.size, content: file.content });
      nodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return saveTree(this.writer, { nodes });
    };
    return save(root);
  }
}

/** Read a streamed source's files back from its folder in a snapshot. */
export async function openDumpReader(repo: Repository, subtree: string, source: string): Promise<DumpReader> {
  const loader = new TreeLoader(repo);
  const files = new Map<string, TreeNode>();
  for await (const { path, node } of walkTree(loader, subtree)) if (node.type === 'file') files.set(path.slice(1), node);
  const lookup = (path: string): TreeNode => {
    const node = files.get(path);
    if (!node) throw new UsageError(`source "${source}" has no ${path} in this snapshot`);
    return node;
  };
  return {
    has: (path) => files.has(path),
    size: (path) => lookup(path).size ?? 0,
    read: (path) => readBlobs(repo, lookup(path).content),
  };
}

/** A file's blobs in order, the next one fetched while the current one is consumed. */
async function* readBlobs(repo: Repository, content: FileContent | undefined): AsyncGenerator<Buffer> {
  for await (const ids of contentLists(repo, content)) yield* readListed(repo, ids);
}

async function* readListed(repo: Repository, ids: readonly string[]): AsyncGenerator<Buffer> {
  let pending = ids.length > 0 ? repo.loadBlob(ids[0]!, 'data') : undefined;
  for (let i = 0; i < ids.length; i++) {
    const current = pending!;
    pending = i + 1 < ids.length ? repo.loadBlob(ids[i + 1]!, 'data') : undefined;
    // A read-ahead that fails while the consumer stops early must not go unhandled.
    pending?.catch(() => undefined);
    yield await current;
  }
}
