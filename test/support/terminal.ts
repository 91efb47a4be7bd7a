import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

/** A command running in a real terminal. */
export interface Terminal {
  keys: (k: string) => void;
  screen: () => string;
  /** the command's exit code, once it ended within `withinMs` */
  exitCode: (withinMs: number) => Promise<number | undefined>;
}

/**
 * A real terminal: a tmux server of the test's own (its own socket), one window running
 * `command` with `env`; the exit code lands in a file when it ends.
 */
export async function inTerminal(t: TestContext, dir: string, env: Record<string, string>, command: string): Promise<Terminal> {
  // Not in `dir`: the test's folder is removed before its other clean-ups run, and the
  // server must still be reachable then to be stopped.
  const socket = join(tmpdir(), `sv-tmux-${randomBytes(6).toString('hex')}.sock`);
  const exitFile = join(dir, 'exit-code');
  const tmux = (...args: string[]) => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8' });
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ');
  // Written aside and renamed: read between the shell's creating the file and its writing
  // the code, the file was empty, which read as exit code 0 (a CI run's Ctrl-C test).
  tmux('new-session', '-d', '-x', '160', '-y', '30', `env ${assignments} ${command}; echo $? > ${exitFile}.part; mv ${exitFile}.part ${exitFile}; sleep 60`);
  t.after(() => {
    try {
      execFileSync('tmux', ['-S', socket, 'kill-server'], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
    rmSync(socket, { force: true });
  });
  return {
    keys: (k) => tmux('send-keys', k),
    screen: () => tmux('capture-pane', '-p'),
    exitCode: async (withinMs) => {
      const until = Date.now() + withinMs;
      while (Date.now() < until) {
        const written = await readFile(exitFile, 'utf8').catch(() => '');
        if (/^\d+\n$/.test(written)) return Number(written);
        await sleep(50);
      }
      return undefined;
    },
  };
}

export async function waitForScreen(term: { screen: () => string }, pattern: RegExp, withinMs: number): Promise<void> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    if (pattern.test(term.screen())) return;
    await sleep(100);
  }
  throw new Error(`the screen never showed ${pattern}:\n${term.screen()}`);
}

