/**
 * bin/stackvault sets glibc's malloc tunables for stackvault's own process (glibc reads
 * them only as a process starts) and says here what the caller had: "-" for none, or "+"
 * and the caller's value. The processes stackvault starts (rclone, mariadb-dump, hooks,
 * docker-compose) get the caller's environment back, not stackvault's tuning.
 */
export const CALLER_TUNABLES = 'STACKVAULT_CALLER_GLIBC_TUNABLES';

export function restoreCallerTunables(env: NodeJS.ProcessEnv): void {
  const caller = env[CALLER_TUNABLES];
  if (caller === undefined) return;
  delete env[CALLER_TUNABLES];
  if (caller.startsWith('+')) env.GLIBC_TUNABLES = caller.slice(1);
  else delete env.GLIBC_TUNABLES;
}

/**
 * bin/stackvault moves the caller's NODE_EXTRA_CA_CERTS here, so that Node does not load it
 * as it starts (src/util/extra-ca-on-first-use.ts says why). The processes stackvault
 * starts get it back under its own name; the file is returned, for this process to trust
 * on its first TLS connection.
 */
export const CALLER_EXTRA_CA = 'STACKVAULT_CALLER_NODE_EXTRA_CA_CERTS';

export function restoreCallerExtraCa(env: NodeJS.ProcessEnv): string | undefined {
  const file = env[CALLER_EXTRA_CA];
  if (file === undefined) return undefined;
  delete env[CALLER_EXTRA_CA];
  env.NODE_EXTRA_CA_CERTS = file;
  return file;
}
