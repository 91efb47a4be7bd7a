import { resolve } from 'node:path';
import type { z } from 'zod';
import { readSecretFile, secretFromEnv, secretFromFile } from '../../util/secrets.js';
import type { serverSchema } from './config.js';
import type { ConnectOptions } from './connection.js';

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
