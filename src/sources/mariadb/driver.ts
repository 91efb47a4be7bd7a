import type { z } from 'zod';
import { StackvaultError } from '../../util/errors.js';
import type { SourceDriver } from '../driver.js';
import type { mariadbSourceSchema } from './config.js';
import { resolveConnection } from './connect-options.js';
import type { MariadbSource } from './dump.js';

const MARIADB_PORT = 3306;

/**
 * MariaDB and MySQL: a consistent dump over the server's own protocol, restored in
 * parallel. The client (wire protocol, dump, restore) loads when a database is backed up
 * or restored, not with every command.
 */
export const mariadbDriver: SourceDriver<MariadbSource> = {
  kind: 'mariadb',
  configTypes: ['mariadb', 'mysql'],
  fromConfig: (entry: z.infer<typeof mariadbSourceSchema>, context) => ({
    kind: 'mariadb',
    name: entry.name,
    connection: resolveConnection(context.baseDir, entry, context.where),
    service: entry.service,
    databases: entry.databases,
    excludeDatabases: entry.exclude_databases,
    excludeTableData: entry.exclude_table_data,
    users: entry.users,
    threads: entry.threads,
    binlog: entry.binlog ? { segmentSeconds: entry.binlog_segment_seconds ?? 60 } : undefined,
  }),
  services: (spec) => (spec.service ? [spec.service] : []),
  atServiceAddress: (spec, address) => ({ ...spec, connection: { ...spec.connection, host: address, port: spec.connection.port ?? MARIADB_PORT } }),

  async backup(spec, sink, options) {
    const [{ dumpMariadb }, { describeEndpoint }] = await Promise.all([import('./dump.js'), import('./connection.js')]);
    const dumped = await dumpMariadb(spec, sink, {
      signal: options.signal,
      progress: options.progress && ((p) => options.progress!({ bytesDone: p.bytesDone, bytesEstimate: p.bytesEstimate, current: p.current })),
    });
    return {
      path: `mariadb://${spec.connection.user}@${describeEndpoint(spec.connection)}`,
      database: {
        server: `${dumped.manifest.server.flavor} ${dumped.manifest.server.version}`,
        consistency: dumped.manifest.consistency,
        lockMs: dumped.lockMs,
        binlog: dumped.manifest.binlog,
        databases: dumped.manifest.databases,
        tables: dumped.tables,
        rows: dumped.rows,
        users: dumped.manifest.users,
        warnings: dumped.manifest.warnings,
      },
    };
  },

  async restore(reader, spec, options) {
    const { restoreMariadb } = await import('./restore.js');
    await restoreMariadb(reader, { name: spec.name, connection: spec.connection, force: options.force, users: spec.users, threads: spec.threads, signal: options.signal });
  },

  /** Into the scratch server under drill_ names, read back table by table and compared with the dump, then dropped. */
  async drill(reader, source, record, scratch, signal) {
    if (!scratch.database) return { source, skipped: 'no drill.database server configured' };
    const [{ restoreMariadb }, { verifyMariadb }, { Connection }, { ident }] = await Promise.all([import('./restore.js'), import('./verify.js'), import('./connection.js'), import('./sql.js')]);
    const rename = Object.fromEntries((record.database?.databases ?? []).map((d) => [d, `drill_${d}`]));
    const started = Date.now();
    const summary = await restoreMariadb(reader, { name: source, connection: scratch.database, rename, force: true, signal });
    const restoreMs = Date.now() - started;
    try {
      // Read back the way the dump read: every table must be byte for byte what the snapshot holds.
      const verdicts = await verifyMariadb(reader, { name: source, connection: scratch.database, rename });
      const differing = verdicts.filter((v) => !v.equal).map((v) => `${v.database}.${v.table}`);
      if (differing.length > 0) throw new StackvaultError(`the drill of source "${source}" restored tables that differ from the snapshot: ${differing.join(', ')}`);
      const rows = verdicts.reduce((n, v) => n + v.rows, 0);
      return { source, databases: summary.databases, tables: verdicts.length, rows, restoreMs, verified: verdicts.length };
    } finally {
      const conn = await Connection.connect(scratch.database);
      try {
        for (const { to } of summary.databases) await conn.execute(`DROP DATABASE IF EXISTS ${ident(to)}`);
      } finally {
        await conn.close();
      }
    }
  },
};
