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
