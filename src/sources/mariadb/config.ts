import { resolve } from 'node:path';
import { z } from 'zod';
import { readSecretFile, secretFromEnv, secretFromFile } from '../../util/secrets.js';
import type { ConnectOptions } from './connection.js';

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

export const sourceName = z.string().regex(/^[A-Za-z0-9._-]+$/, 'a source name may only hold letters, digits, ".", "_" and "-"');

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
});

type ServerEntry = z.infer<typeof serverSchema>;

/** How to reach a database server of stackvault.yaml: its password and TLS files read, paths made absolute. */
export function resolveConnection(baseDir: string, s: ServerEntry, where: string): ConnectOptions {
  let password: string | undefined;
  if (s.password_file) password = secretFromFile(resolve(baseDir, s.password_file), `${where}.password_file`);
  else if (s.password_env) password = secretFromEnv(s.password_env, `${where}.password_env`);
  const tlsFile = (f: string | undefined, field: string) => (f ? readSecretFile(resolve(baseDir, f), `${where}.tls.${field}`) : undefined);
  const tls = s.tls === true ? {} : s.tls ? { ca: tlsFile(s.tls.ca, 'ca'), cert: tlsFile(s.tls.cert, 'cert'), key: tlsFile(s.tls.key, 'key'), verify: s.tls.verify } : undefined;
  return { host: s.host, port: s.port, socket: s.socket ? resolve(baseDir, s.socket) : undefined, user: s.user, password, tls };
}
