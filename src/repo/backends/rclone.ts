import { basename, dirname } from 'node:path';
import { ObjectNotFoundError, StackvaultError, UsageError, errorMessage } from '../../util/errors.js';
import { startRcloneHelper, takePrestartedHelper, type RcloneHelper } from './rclone-helper.js';
import type { Backend, ByteRange, ObjectInfo } from './backend.js';
import { httpRequest, keepAliveAgent, type HttpAnswer } from './http-request.js';
import { PerKeyQueue, alreadyStored, refuseIfNotEmpty, shortRead, truncated } from './objects.js';
import { TransientError, isTransientNetworkError, isTransientStatus, redact } from './transient.js';

export interface RcloneOptions {
  /** an rclone remote and path, "remote:path", as rclone itself takes it */
  remote: string;
  /** the rclone binary */
  binary: string;
  timeoutMs: number;
  /** where rclone finds its config (RCLONE_CONFIG, RCLONE_CONFIG_*) */
  env?: NodeJS.ProcessEnv;
}

interface RcloneItem {
  Path: string;
  Size: number;
  ModTime: string;
  IsDir: boolean;
}

/**
 * Any rclone remote (SFTP, WebDAV, SMB, Azure, S3, ...), with credentials from rclone's own
 * config file or RCLONE_CONFIG_* variables. One `rclone rcd` helper per backend, on a
 * loopback port with a random password, answers every request over HTTP: objects are read
 * in ranges without a process per read.
 *
 * rclone has no put-if-absent; put() looks first and never uploads over an existing key.
 * Two writers racing for one key write the same bytes, as keys are content hashes.
 *
 * rclone's own `serve restic` would keep the objects it looked up (rcd looks one up again
 * for every ranged read); as a second helper for reads it made restores slower here, on
 * loopback and behind 20 ms of round trip alike (docs/performance.md).
 */
export class RcloneBackend implements Backend {
  readonly location: string;
  private helper: Promise<RcloneHelper> | undefined;
  private readonly uploads = new PerKeyQueue();
  private readonly agent = keepAliveAgent();

  constructor(private readonly options: RcloneOptions) {
    // An on-the-fly remote (":sftp,host=...,pass=...:path") may hold a password.
    this.location = redact(`rclone:${options.remote}`);
  }

  private start(): Promise<RcloneHelper> {
    if (this.helper) return this.helper;
    const env = this.options.env ?? process.env;
    const helper = takePrestartedHelper(this.options.binary, env) ?? startRcloneHelper(this.options.binary, env, this.location);
    this.helper = helper;
    // A helper that failed or stopped is started again by the next call (the retries').
    helper.then(
      ({ child }) => child.once('exit', () => this.helper === helper && (this.helper = undefined)),
      () => this.helper === helper && (this.helper = undefined),
    );
    return helper;
  }

  private get root(): string {
    return this.options.remote;
  }

  /** One call of rclone's remote-control API. */
  private async call<T>(method: string, body: Record<string, unknown>, what: string): Promise<T> {
    const { url, auth } = await this.start();
    let answer: HttpAnswer;
    try {
      answer = await httpRequest(`${url}/${method}`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        timeoutMs: this.options.timeoutMs,
        agent: this.agent,
      });
    } catch (err) {
      if (isTransientNetworkError(err)) throw new TransientError(`${what} on ${this.location}: ${errorMessage(err)}`);
      throw new StackvaultError(`${what} on ${this.location}: ${errorMessage(err)}`);
    }
    const text = answer.body.toString('utf8');
    if (answer.status < 200 || answer.status > 299) throw this.error(answer.status, text, what);
    return JSON.parse(text) as T;
  }

  private error(status: number, text: string, what: string): StackvaultError {
    let message = text;
    try {
      message = (JSON.parse(text) as { error?: string }).error ?? text;
    } catch {
      /* not JSON */
    }
    const full = `${what} on ${this.location}: ${redact(message.trim() || `HTTP ${status}`)}`;
    // rclone answers 500 for its remote's failures; those that name the network may pass.
    if (isTransientStatus(status) && (status !== 500 || /timeout|connection|reset|refused|EOF|temporar|5\d\d|unavailable|broken pipe/i.test(message))) return new TransientError(full);
    if (/didn't find section in config file|couldn't find type/i.test(message)) return new UsageError(`${full} (configure the remote with "rclone config" or RCLONE_CONFIG_* variables)`);
    return new StackvaultError(full);
  }

  async prepare(): Promise<void> {
    await refuseIfNotEmpty(this, 'folder');
  }

  async put(key: string, data: Uint8Array): Promise<{ created: boolean }> {
    return this.uploads.run(key, () => this.upload(key, data));
  }

  private async upload(key: string, data: Uint8Array): Promise<{ created: boolean }> {
    const existing = await this.stat(key);
    if (existing) return alreadyStored(this.location, key, existing.size, data.length);
    const { url, auth } = await this.start();
    const slash = key.lastIndexOf('/');
    const form = new FormData();
    form.append('file', new Blob([data]), key.slice(slash + 1));
    const query = new URLSearchParams({ fs: this.root, remote: slash < 0 ? '' : key.slice(0, slash) });
    try {
      const response = await fetch(`${url}/operations/uploadfile?${query}`, {
        method: 'POST',
        headers: { authorization: auth },
        body: form,
        signal: AbortSignal.timeout(this.options.timeoutMs + Math.round(data.length / 1000)),
      });
      const text = await response.text().catch(() => '');
      if (!response.ok) throw this.error(response.status, text, `storing ${key}`);
    } catch (err) {
      // Another writer may have stored the same bytes meanwhile (keys are content hashes).
      if ((await this.stat(key).catch(() => undefined))?.size === data.length) return { created: false };
      await this.removeBrokenUpload(key, data.length);
      if (err instanceof StackvaultError) throw err;
      if (isTransientNetworkError(err)) throw new TransientError(`storing ${key} on ${this.location}: ${errorMessage(err)}`);
      throw new StackvaultError(`storing ${key} on ${this.location}: ${errorMessage(err)}`);
    }
    const stored = await this.stat(key);
    if (!stored || stored.size !== data.length) {
      await this.removeBrokenUpload(key, data.length);
      throw new TransientError(`storing ${key} on ${this.location}: the upload did not arrive whole`);
    }
    return { created: true };
  }

  /**
   * Some remotes (SFTP, WebDAV) show a file while it is written. A failed upload of ours
   * that left one of the wrong size is removed, so that the retry can store the object:
   * nothing can reference an object whose bytes do not match its name.
   */
  private async removeBrokenUpload(key: string, size: number): Promise<void> {
    try {
      const left = await this.stat(key);
      if (left && left.size !== size) await this.delete(key);
    } catch {
      /* the retry or check will report it */
    }
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const { url, auth } = await this.start();
    const path = key.split('/').map(encodeURIComponent).join('/');
    let answer: HttpAnswer;
    try {
      answer = await httpRequest(`${url}/${encodeURIComponent(`[${this.root}]`)}/${path}`, {
        headers: { authorization: auth, ...(range ? { range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {}) },
        timeoutMs: this.options.timeoutMs,
        agent: this.agent,
      });
      if (answer.status === 404) throw new ObjectNotFoundError(key, this.location);
      if (answer.status === 416 && range) throw truncated(this.location, key, range);
      if (answer.status < 200 || answer.status > 299) throw this.error(answer.status, answer.body.toString('utf8'), `reading ${key}`);
    } catch (err) {
      if (err instanceof StackvaultError) throw err;
      if (isTransientNetworkError(err)) throw new TransientError(`reading ${key} from ${this.location}: ${errorMessage(err)}`);
      throw new StackvaultError(`reading ${key} from ${this.location}: ${errorMessage(err)}`);
    }
    const body = answer.body;
    if (range && body.length !== range.length) await shortRead(this, key, range, body.length);
    const expected = Number(answer.headers['content-length'] ?? body.length);
    if (!range && body.length !== expected) {
      throw new TransientError(`reading ${key} from ${this.location}: the answer was cut short (${body.length} of ${expected} bytes)`);
    }
    return body;
  }

  /**
   * rclone copies the object into the file itself (BackendExtras.downloadToFile): its bytes
   * never pass through this process, which a restore's main thread spent most of its time
   * on, receiving and handing them on to the writer threads.
   *
   * Without rclone's own checksum comparison: through SFTP it asks the server to run
   * md5sum over the whole file after the copy (another pass over it there, a round trip,
   * and an MD5 of the copy here: 60-80 ms of a 16 MiB pack on two busy cores). The copy's
   * reader checks it against the object's name instead (PackSpool: a pack's name is the
   * SHA-256 of its bytes).
   */
  async downloadToFile(key: string, path: string): Promise<void> {
    // ":local:" makes the folder a local one whatever its name holds (a colon would name a remote).
    await this.call(
      'operations/copyfile',
      { srcFs: this.root, srcRemote: key, dstFs: `:local:${dirname(path)}`, dstRemote: basename(path), _config: { IgnoreChecksum: true } },
      `copying ${key} to ${path}`,
    );
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const { item } = await this.call<{ item: RcloneItem | null }>('operations/stat', { fs: this.root, remote: key }, `looking up ${key}`);
    if (!item || item.IsDir) return undefined;
    return { key, size: item.Size, created: new Date(item.ModTime) };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const dir = prefix.replace(/\/$/, '');
    let list: RcloneItem[];
    try {
      ({ list } = await this.call<{ list: RcloneItem[] }>('operations/list', { fs: this.root, remote: dir, opt: { recurse: true, filesOnly: true } }, `listing ${prefix}`));
    } catch (err) {
      if (err instanceof StackvaultError && /directory not found|not found|doesn't exist/i.test(err.message) && !(err instanceof TransientError)) return;
      throw err;
    }
    for (const item of list) {
      if (item.IsDir || !item.Path.startsWith(prefix)) continue;
      yield { key: item.Path, size: item.Size, created: new Date(item.ModTime) };
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.call('operations/deletefile', { fs: this.root, remote: key }, `deleting ${key}`);
    } catch (err) {
      if (err instanceof StackvaultError && /not found/i.test(err.message)) return;
      throw err;
    }
  }

  async close(): Promise<void> {
    const helper = this.helper;
    this.helper = undefined;
    if (!helper) return;
    this.agent.destroy();
    const { child } = await helper.catch(() => ({ child: undefined }));
    if (!child || child.exitCode !== null) return;
    child.ref();
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill();
    });
  }
}
