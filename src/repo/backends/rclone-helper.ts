import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { StackvaultError, UsageError, errorMessage } from '../../util/errors.js';
import { redact } from './transient.js';

/** A running `rclone rcd`: where it listens, how to authenticate, its process. */
export interface RcloneHelper {
  url: string;
  auth: string;
  child: ChildProcess;
}

/**
 * Start `rclone rcd` on a loopback port with a random password. It serves any remote of
 * the rclone config it was started with (`env`); `location` only names the repository
 * in errors.
 */
export function startRcloneHelper(binary: string, env: NodeJS.ProcessEnv, location: string, startTimeoutMs = START_TIMEOUT_MS): Promise<RcloneHelper> {
  return new Promise((resolve, reject) => {
    const user = randomBytes(8).toString('hex');
    const pass = randomBytes(16).toString('hex');
    const child = spawn(binary, ['rcd', '--rc-addr', '127.0.0.1:0', '--rc-user', user, '--rc-pass', pass, '--rc-serve', ...LOG_TO_STDERR], {
      stdio: ['ignore', 'ignore', 'pipe'],
      // rclone links a terminal library (for its ncdu command) whose start builds a table of
      // every character's width unless TCELL_MINIMIZE is set: 0.09 of rclone's 0.22 s of
      // CPU to start here, on the way to the repository's first answer. The helper never
      // draws on a terminal; a value the user set is kept.
      env: { TCELL_MINIMIZE: '1', ...env },
    });
    let log = '';
    const tooLong = setTimeout(() => {
      reject(new StackvaultError(`repository ${location}: rclone did not start within ${startTimeoutMs / 1000} s${log.trim() ? `: ${redact(lastLines(log))}` : ''}`));
      child.kill('SIGKILL');
    }, startTimeoutMs);
    tooLong.unref();
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const port = /Serving remote control on http:\/\/127\.0\.0\.1:(\d+)/.exec(log)?.[1];
      if (!port) return;
      clearTimeout(tooLong);
      child.stderr!.off('data', onData);
      child.stderr!.resume();
      // Running from now on, the helper never keeps stackvault alive.
      child.unref();
      (child.stderr as unknown as { unref?: () => void }).unref?.();
      resolve({ url: `http://127.0.0.1:${port}`, auth: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`, child });
    };
    child.stderr!.on('data', onData);
    child.once('error', (err) => reject(new UsageError(`repository ${location}: cannot run ${binary}: ${errorMessage(err)} (install rclone)`)));
    child.once('exit', (code) => {
      clearTimeout(tooLong);
      reject(new StackvaultError(`repository ${location}: rclone stopped (exit ${code}): ${redact(lastLines(log))}`));
    });
    running.add(child);
    child.once('exit', () => running.delete(child));
  });
}

/**
 * The helper's address comes from its log on stderr, so its log goes there whatever the
 * user's environment says for rclone's own commands (RCLONE_LOG_FILE, RCLONE_SYSLOG): with
 * RCLONE_LOG_FILE set, stackvault waited forever for a line that went to the file, and
 * with RCLONE_VERBOSE or RCLONE_QUIET set the helper refused to start ("Can't set -v and
 * --log-level"). rclone's flags win over its environment variables. A JSON log
 * (RCLONE_USE_JSON_LOG) still holds the address line's text; only long-standing flags are
 * given, so that an older rclone does not refuse them.
 */
const LOG_TO_STDERR = ['--verbose=0', '--quiet=false', '--log-level', 'NOTICE', '--log-file=', '--syslog=false'];
/** rclone listens within a fraction of a second; one that does not in this long never will (a wrapper that hangs, a binary that is not rclone). */
const START_TIMEOUT_MS = 30_000;

function lastLines(log: string): string {
  return log.trim().split('\n').slice(-3).join(' ');
}

/** Helpers still running: none outlives stackvault (one listener for all, not one each). */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill();
});

let prestarted: { binary: string; env: NodeJS.ProcessEnv; helper: Promise<RcloneHelper> } | undefined;

/**
 * Start a helper before stackvault has loaded the rest of itself: rclone takes about a
 * tenth of a second to listen and as long again to answer its first call, time in which
 * Node loads our modules on the other core. The first RcloneBackend with the same binary
 * and environment takes it (takePrestartedHelper); one nobody takes ends with stackvault.
 */
export function prestartRcloneHelper(binary: string, env: NodeJS.ProcessEnv, location: string): void {
  if (prestarted) return;
  const helper = startRcloneHelper(binary, env, redact(location));
  // A failure is reported to the backend that takes it, as if it had started the helper itself.
  helper.catch(() => undefined);
  prestarted = { binary, env, helper };
}

/** The prestarted helper, once, if it was started for this binary and environment. */
export function takePrestartedHelper(binary: string, env: NodeJS.ProcessEnv): Promise<RcloneHelper> | undefined {
  if (!prestarted || prestarted.binary !== binary || prestarted.env !== env) return undefined;
  const { helper } = prestarted;
  prestarted = undefined;
  return helper;
}
