import { InterruptedError, UsageError } from '../util/errors.js';

/** Whether a password can be asked for: someone types on a terminal, as restic and borg require. */
export function canPrompt(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY);
}

/**
 * Read a password typed on the terminal without echoing it, as restic and borg do: the
 * prompt goes to stderr (stdout may be a pipe), Backspace erases, Ctrl-C interrupts
 * (exit 130), Ctrl-D on an empty line gives up.
 */
export function promptPassword(prompt: string): Promise<string> {
  const input = process.stdin;
  return new Promise((resolve, reject) => {
    let typed = '';
    process.stderr.write(prompt);
    input.setRawMode(true);
    input.resume();
    input.setEncoding('utf8');
    const finish = (result: () => void) => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
      result();
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish(() => resolve(typed));
        if (ch === '\u0003') return finish(() => reject(new InterruptedError('interrupted while the password was typed')));
        if (ch === '\u0004' && typed === '') return finish(() => reject(new UsageError('no password typed')));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else if (ch === '\u0015') typed = ''; // Ctrl-U erases the line, as in a shell
        else if (ch >= ' ') typed += ch;
      }
    };
    input.on('data', onData);
  });
}

/** A new password typed twice; refused when the two differ or it is empty. */
export async function promptNewPassword(what: string): Promise<string> {
  const first = await promptPassword(`enter ${what}: `);
  if (!first) throw new UsageError('the password is empty');
  const again = await promptPassword(`enter ${what} again: `);
  if (again !== first) throw new UsageError('the two passwords differ: nothing was changed');
  return first;
}
