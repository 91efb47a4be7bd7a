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

/** Whether an error from a socket, fetch or an SDK looks like a passing network fault. */
export function isTransientNetworkError(err: unknown): boolean {
  for (let e = err as { code?: string; name?: string; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code && TRANSIENT_CODES.has(e.code)) return true;
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return true;
    if (/socket hang up|other side closed|terminated|premature close/i.test(String((e as Error).message))) return true;
  }
  return false;
}

/** Secrets that SDKs and URLs like to put into messages: signatures, keys, tokens, passwords. */
export function redact(text: string): string {
  return text
    .replace(/(AccountKey|SharedAccessSignature|SharedAccessKey|password|pass|secret|key|token)=([^;&\s,:]+)/gi, '$1=***')
    .replace(/([?&](sig|se|sv|sp|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|token)=)[^&\s"]+/gi, '$1***')
    .replace(/(\/\/[^/\s:@]+):[^@/\s]+@/g, '$1:***@');
}
