/**
 * Node ends a process whose event loop has nothing left to do while its top-level await
 * still waits, with exit code 13 and not a word: a command waiting for work that nothing
 * could complete any more, which is a bug of ours. Said here instead of a silent 13, so
 * that an operator knows the command did not finish and a report names what happened.
 */
export function reportUnsettledExit(): void {
  process.on('exit', () => {
    // Only Node sets 13, for an await left unsettled: no command of ours exits with it.
    if (process.exitCode !== 13) return;
    process.stderr.write(
      'stackvault: internal error: the command stopped before it finished, waiting for work that nothing could complete any more (exit code 13). ' +
        'This is a bug in stackvault: please report it with the command line and what it printed.\n',
    );
  });
}
