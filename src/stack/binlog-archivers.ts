import type { LoadedConfig } from '../config/load.js';
import type { Repository } from '../repo/repository.js';
import { BinlogArchiver, type ArchiverOptions } from '../snapshot/binlog/archiver.js';
import type { MariadbSource } from '../sources/mariadb/dump.js';
import { StackvaultError } from '../util/errors.js';
import { stackHost } from './context.js';
import { reachStackSources } from './stack-sources.js';

/**
 * One binary log archiver per database source with `binlog: true`. A source that runs as a
 * compose service is looked up before every connection: its address changes with the
 * container.
 */
export function binlogArchivers(
  loaded: LoadedConfig,
  openRepository: () => Promise<Repository>,
  signal: AbortSignal,
  log: ArchiverOptions['log'],
  only?: string,
): BinlogArchiver[] {
  const { config } = loaded;
  const configured = config.sources.filter((s) => (s.type === 'mariadb' || s.type === 'mysql') && (only ? s.name === only : s.binlog === true));
  if (only && configured.length === 0) throw new StackvaultError(`stackvault.yaml has no database source "${only}"`);
  return configured.map(
    (entry) =>
      new BinlogArchiver({
        openRepository,
        stack: config.stack,
        host: stackHost(config),
        source: entry.name,
        connection: async () => {
          const found = (await reachStackSources(loaded)).find((s): s is MariadbSource => s.kind === 'mariadb' && s.name === entry.name);
          if (!found) throw new StackvaultError(`database source "${entry.name}" is not reachable`);
          return found.connection;
        },
        segmentSeconds: ('binlog_segment_seconds' in entry ? entry.binlog_segment_seconds : undefined) ?? 60,
        signal,
        log,
      }),
  );
}
