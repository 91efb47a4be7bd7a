import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ObjectNotFoundError, StackvaultError, UsageError, errorMessage } from '../../util/errors.js';
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

interface RcloneHelper {
  url: string;
  auth: string;
  child: ChildProcess;
}

interface RcloneItem {
  Path: string;
  Size: number;
  ModTime: string;
  IsDir: boolean;
}

/**
 * Any rclone remote (SFTP, WebDAV, SMB, Azure, S3, ...), with credentials from rclone's own
 * config file or RCLONE_CONFIG_* variables. Two rclone helpers per backend, each on a
 * loopback port with a random password, answer every request over HTTP: `rclone rcd` lists,
 * looks up, stores and deletes; `rclone serve restic` reads objects in ranges. No process
 * is started per request.
 *
 * rclone has no put-if-absent; put() looks first and never uploads over an existing key.
 * Two writers racing for one key write the same bytes, as keys are content hashes.
 */
export class RcloneBackend implements Backend {
  readonly location: string;
  private helper: Promise<RcloneHelper> | undefined;
  private reader: Promise<RcloneHelper> | undefined;
  private readonly uploads = new PerKeyQueue();
  private readonly agent = keepAliveAgent();

  constructor(private readonly options: RcloneOptions) {
    // An on-the-fly remote (":sftp,host=...,pass=...:path") may hold a password.
    this.location = redact(`rclone:${options.remote}`);
  }

  /** rclone's remote control, for listings, lookups, uploads and deletions. */
  private start(): Promise<RcloneHelper> {
    this.helper ??= this.startHelper(['rcd', '--rc-serve'], '--rc-', /Serving remote control on http:\/\/127\.0\.0\.1:(\d+)/, () => (this.helper = undefined));
    return this.helper;
  }

  /**
   * `rclone serve restic` answers reads: it keeps the objects it has looked up, so a pack
   * read in several ranges is looked up at the remote once. Through `rcd` every ranged read
   * looked the object up again (a PROPFIND on WebDAV): 22 ms per 4 MiB against 11 ms here.
   * It serves any key of this repository's layout, which is restic's.
   */
  private startReader(): Promise<RcloneHelper> {
    this.reader ??= this.startHelper(['serve', 'restic', this.root], '--', /Serving restic REST API on http:\/\/127\.0\.0\.1:(\d+)/, () => (this.reader = undefined));
    return this.reader;
  }

  /** An rclone server on a loopback port with a random password; resolves when it listens. */
  private startHelper(args: string[], flagPrefix: string, ready: RegExp, onStop: () => void): Promise<RcloneHelper> {
    return new Promise((resolve, reject) => {
      const user = randomBytes(8).toString('hex');
      const pass = randomBytes(16).toString('hex');
      const child = spawn(this.options.binary, [...args, `${flagPrefix}addr`, '127.0.0.1:0', `${flagPrefix}user`, user, `${flagPrefix}pass`, pass, '--log-level', 'NOTICE'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: this.options.env ?? process.env,
      });
      let log = '';
      const onData = (chunk: Buffer) => {
        log += chunk.toString();
        const port = ready.exec(log)?.[1];
        if (!port) return;
        child.stderr!.off('data', onData);
        child.stderr!.resume();
        // Running from now on, the helper never keeps stackvault alive.
        child.unref();
        (child.stderr as unknown as { unref?: () => void }).unref?.();
        resolve({ url: `http://127.0.0.1:${port}`, auth: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`, child });
      };
      child.stderr!.on('data', onData);
      child.once('error', (err) => {
        onStop();
        reject(new UsageError(`repository ${this.location}: cannot run ${this.options.binary}: ${errorMessage(err)} (install rclone)`));
      });
      child.once('exit', (code) => {
        onStop();
        reject(this.error(500, `rclone stopped (exit ${code}): ${log.trim().split('\n').slice(-3).join(' ')}`, `reaching ${this.options.remote}`));
      });
      running.add(child);
      child.once('exit', () => running.delete(child));
    });
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
    const { url, auth } = await this.startReader();
    const path = key.split('/').map(encodeURIComponent).join('/');
    let answer: HttpAnswer;
    try {
      answer = await httpRequest(`${url}/${path}`, {
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
    const helpers = [this.helper, this.reader];
    this.helper = this.reader = undefined;
    this.agent.destroy();
    await Promise.all(helpers.map((helper) => helper && stopHelper(helper)));
  }
}

/** Helpers still running; none outlives stackvault. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill();
});

async function stopHelper(helper: Promise<RcloneHelper>): Promise<void> {
  const { child } = await helper.catch(() => ({ child: undefined }));
  if (!child || child.exitCode !== null) return;
  child.ref();
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill();
  });
}
