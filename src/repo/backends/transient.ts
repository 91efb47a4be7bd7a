import { StackvaultError } from '../../util/errors.js';

/** A failure a retry may cure: a dropped connection, a server error, a stall, a short body. */
export class TransientError extends StackvaultError {}

/** Node's network error codes that mean "try again", not "you asked for something wrong". */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

export function isTransientStatus(status: number | undefined): boolean {
  return status === undefined || status === 408 || status === 429 || status >= 500;
}

type ChainedError = { code?: string; name?: string; message?: string; cause?: unknown };

/** An error and the causes it wraps (fetch and the SDKs wrap the socket's error), a few deep. */
function* errorChain(err: unknown): Generator<ChainedError> {
  for (let e = err as ChainedError | undefined, depth = 0; e && depth < 5; e = e.cause as ChainedError | undefined, depth++) yield e;
}

/** Whether an error from a socket, fetch or an SDK looks like a passing network fault. */
export function isTransientNetworkError(err: unknown): boolean {
  for (const e of errorChain(err)) {
    if (e.code && TRANSIENT_CODES.has(e.code)) return true;
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return true;
    if (/socket hang up|other side closed|terminated|premature close/i.test(String(e.message))) return true;
  }
  return false;
}

/** Node's codes for a server certificate that no authority this machine trusts has signed. */
const UNTRUSTED_CERTIFICATE_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/**
 * What to say of a server whose certificate does not verify for want of a trusted
 * authority (a private CA, a TLS-inspecting proxy), with how to trust one; undefined for
 * any other error. No retry cures it: an SDK's "UNABLE_TO_VERIFY_LEAF_SIGNATURE
 * (undefined)" was retried 8 times and then named only by its code.
 */
export function untrustedCertificate(err: unknown): string | undefined {
  for (const e of errorChain(err)) {
    if (e.code && UNTRUSTED_CERTIFICATE_CODES.has(e.code)) {
      return `the server's certificate is not signed by an authority this machine trusts (${e.code}); for a private CA, name a file with its certificate in NODE_EXTRA_CA_CERTS`;
    }
  }
  return undefined;
}

/** Secrets that SDKs and URLs like to put into messages: signatures, keys, tokens, passwords. */
export function redact(text: string): string {
  return text
    .replace(/(AccountKey|SharedAccessSignature|SharedAccessKey|password|pass|secret|key|token)=([^;&\s,:]+)/gi, '$1=***')
    .replace(/([?&](sig|se|sv|sp|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|token)=)[^&\s"]+/gi, '$1***')
    .replace(/(\/\/[^/\s:@]+):[^@/\s]+@/g, '$1:***@');
}
