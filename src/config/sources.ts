import { resolve } from 'node:path';
import { readSecretFile, secretFromEnv, secretFromFile } from '../util/secrets.js';
import { resolveExclusionClasses } from './exclusion-classes.js';
import type { LoadedConfig } from './load.js';

/** A files source of stackvault.yaml with its path made absolute and its exclusion classes resolved. */
export interface ResolvedFilesSource {
  kind: 'files';
  name: string;
  path: string;
  include?: string[];
  exclude?: string[];
  exclusionClasses: Record<string, readonly string[]>;
}

/** A database source with its password and TLS files read: ready to connect. */
export interface ResolvedDatabaseSource {
  kind: 'mariadb';
  name: string;
  connection: {
    host?: string;
    port?: number;
    socket?: string;
    user: string;
    password?: string;
    tls?: { ca?: string; cert?: string; key?: string; verify?: boolean };
  };
  /** the compose service the server runs as; its address in the stack's network is found when the stack runs */
  service?: string;
  databases?: string[];
  excludeDatabases?: string[];
  excludeTableData?: string[];
  users?: boolean;
  threads?: number;
}

export type ResolvedSource = ResolvedFilesSource | ResolvedDatabaseSource;

export function resolveSources(loaded: LoadedConfig): ResolvedSource[] {
  const classes = resolveExclusionClasses(loaded.config.exclusion_classes);
  return loaded.config.sources.map((s, i): ResolvedSource => {
    if (s.type === 'files') {
      return {
        kind: 'files',
        name: s.name,
        path: resolve(loaded.baseDir, s.path),
        include: s.include,
        exclude: s.exclude,
        exclusionClasses: s.exclusions ? Object.fromEntries(s.exclusions.map((c) => [c, classes[c]!])) : classes,
      };
    }
    const connection = resolveConnection(loaded, s, `${loaded.file}: sources[${i}] ("${s.name}")`);
    return {
      kind: 'mariadb',
      name: s.name,
      connection,
      service: s.service,
      databases: s.databases,
      excludeDatabases: s.exclude_databases,
      excludeTableData: s.exclude_table_data,
      users: s.users,
      threads: s.threads,
    };
  });
}

interface ServerFields {
  host?: string;
  port?: number;
  socket?: string;
  user: string;
  password_env?: string;
  password_file?: string;
  tls?: boolean | { ca?: string; cert?: string; key?: string; verify?: boolean };
}

/** How to reach a database server of stackvault.yaml: its password and TLS files read, paths made absolute. */
export function resolveConnection(loaded: LoadedConfig, s: ServerFields, where: string): ResolvedDatabaseSource['connection'] {
  let password: string | undefined;
  if (s.password_file) password = secretFromFile(resolve(loaded.baseDir, s.password_file), `${where}.password_file`);
  else if (s.password_env) password = secretFromEnv(s.password_env, `${where}.password_env`);
  const tlsFile = (f: string | undefined, field: string) => (f ? readSecretFile(resolve(loaded.baseDir, f), `${where}.tls.${field}`) : undefined);
  const tls = s.tls === true ? {} : s.tls ? { ca: tlsFile(s.tls.ca, 'ca'), cert: tlsFile(s.tls.cert, 'cert'), key: tlsFile(s.tls.key, 'key'), verify: s.tls.verify } : undefined;
  return { host: s.host, port: s.port, socket: s.socket ? resolve(loaded.baseDir, s.socket) : undefined, user: s.user, password, tls };
}
