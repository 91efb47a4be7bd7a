import { z } from 'zod';
import { sourceName } from '../source-name.js';

/** How stackvault.yaml says to reach a database server; the password is never written to a snapshot or a log. */
export const serverFields = {
  /** host and port, or a Unix socket */
  host: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  socket: z.string().min(1).optional(),
  user: z.string().min(1).default('root'),
  password_env: z.string().optional(),
  password_file: z.string().optional(),
  /** true for TLS with the system's CAs, or files for a private CA and client certificates */
  tls: z
    .union([
      z.boolean(),
      z.strictObject({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional(), verify: z.boolean().optional() }),
    ])
    .optional(),
};

/** A server of stackvault.yaml outside the sources (drill.database). */
export const serverSchema = z.strictObject(serverFields);

export const mariadbSourceSchema = z.strictObject({
  name: sourceName,
  type: z.literal(['mariadb', 'mysql']),
  ...serverFields,
  /** the compose service the server runs as: reached at its address in the stack's network, so its port need not be published */
  service: z.string().min(1).optional(),
  /** databases to back up; every database but the server's own (mysql, sys, ...) when omitted */
  databases: z.array(z.string().min(1)).optional(),
  exclude_databases: z.array(z.string().min(1)).optional(),
  /** "database.table": keep the table's definition, leave out its rows */
  exclude_table_data: z.array(z.string().regex(/^[^.]+\..+$/, 'expected "database.table"')).optional(),
  /** back up user accounts and their grants too */
  users: z.boolean().optional(),
  /** connections that read (and on restore, load) table data at once */
  threads: z.number().int().min(1).max(64).optional(),
  /** archive the server's binary log continuously (stackvault run), for point-in-time recovery */
  binlog: z.boolean().optional(),
  /** commit archived events at least this often: at most this much is lost with the host (default 60) */
  binlog_segment_seconds: z.number().int().min(1).max(3600).optional(),
});
