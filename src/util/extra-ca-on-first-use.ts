import { readFileSync } from 'node:fs';
import tls, { type SecureContext, type SecureContextOptions } from 'node:tls';
import { errorMessage } from './errors.js';

/**
 * Node 20 reads NODE_EXTRA_CA_CERTS as the process starts and builds its whole root store
 * there and then, its own ~140 certificates and the file's: 60-85 ms before our first line
 * on this machine (whose file is the system's 144), in every command, though most never
 * make a TLS connection (nodejs/node#40524). bin/stackvault hands the file over under
 * another name instead, and this loads it on the first TLS context the process makes,
 * with the meaning Node gives it: a context without its own `ca` trusts Node's bundled
 * roots and the file's certificates; one with its own `ca` trusts that alone. Every TLS
 * connection of the main thread (the AWS and Azure SDKs, their credential providers,
 * fetch, MariaDB's TLS; worker threads make none) gets its context from
 * `tls.createSecureContext`, so that is where the file's certificates join.
 */
export function trustExtraCaOnFirstUse(file: string): void {
  const make = tls.createSecureContext;
  let roots: string[] | null | undefined;
  // Shared by every connection that shapes its context in no way of its own: building a
  // context from ~290 certificates takes 40-45 ms here, too much for each connection.
  let plain: SecureContext | undefined;
  tls.createSecureContext = (options?: SecureContextOptions): SecureContext => {
    if (options?.ca !== undefined) return make(options);
    roots ??= loadRoots(file);
    if (roots === null) return make(options);
    if (options === undefined || SHAPING_OPTIONS.every((name) => options[name] === undefined)) return (plain ??= make({ ca: roots }));
    return make({ ...options, ca: roots });
  };
}

/** What a secure context is made of; the rest of a connection's options (host, servername, ...) do not change it. */
const SHAPING_OPTIONS = [
  'cert', 'key', 'pfx', 'passphrase', 'crl', 'ciphers', 'sigalgs', 'ecdhCurve', 'dhparam', 'honorCipherOrder', 'secureOptions',
  'secureProtocol', 'minVersion', 'maxVersion', 'privateKeyEngine', 'privateKeyIdentifier', 'clientCertEngine', 'sessionIdContext',
  'ticketKeys', 'sessionTimeout',
] as const satisfies readonly (keyof SecureContextOptions)[];

/** Node's roots and the file's certificates; null, with Node's own warning, when the file cannot be used (Node then trusts its roots alone). */
function loadRoots(file: string): string[] | null {
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch (err) {
    process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${errorMessage(err)}`);
    return null;
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: no certificate in it`);
    return null;
  }
  return [...tls.rootCertificates, text];
}
