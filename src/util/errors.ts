/**
 * Errors that reach the user. Each carries the process exit code the CLI uses, so the
 * meaning of an exit code is decided where the failure is understood, not in the CLI.
 */
export const ExitCode = {
  ok: 0,
  error: 1,
  usage: 2,
  /** backup finished and its snapshot is valid, but some source files could not be read */
  partial: 3,
  repositoryNotFound: 10,
  wrongPassword: 12,
  interrupted: 130,
} as const;

export class StackvaultError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.error,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad input from the user: a config file, a flag, an argument. */
export class UsageError extends StackvaultError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

/** Work stopped by a signal (Ctrl-C, SIGTERM) or an abort: exit 130; the message says what was left as it was. */
export class InterruptedError extends StackvaultError {
  constructor(message: string) {
    super(message, ExitCode.interrupted);
  }
}

export class RepositoryNotFoundError extends StackvaultError {
  constructor(location: string) {
    super(`no repository at ${location} (run "stackvault init" to create one)`, ExitCode.repositoryNotFound);
  }
}

export class WrongPasswordError extends StackvaultError {
  constructor(location: string) {
    super(`wrong password: no key of the repository at ${location} opens with it`, ExitCode.wrongPassword);
  }
}

/** Stored data does not match what was written: corruption, truncation or tampering. */
export class IntegrityError extends StackvaultError {}

/** A repository object that is not there (never written, or deleted by prune). */
export class ObjectNotFoundError extends StackvaultError {
  constructor(
    readonly key: string,
    location: string,
  ) {
    super(`cannot read ${key} from ${location}: no such object`);
  }
}

/** Turn a Node.js system error into a sentence that names the object and what went wrong. */
export function describeSystemError(err: unknown, what: string): StackvaultError {
  const e = err as NodeJS.ErrnoException;
  const reasons: Record<string, string> = {
    ENOSPC: 'no space left on device',
    EDQUOT: 'disk quota exceeded',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'read-only file system',
    ENOENT: 'no such file or folder',
    ENOTDIR: 'a path component is not a folder',
    EIO: 'input/output error',
  };
  const reason = (e && e.code && reasons[e.code]) || (e && e.message) || String(err);
  return new StackvaultError(`${what}: ${reason}`, ExitCode.error, { cause: err });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
