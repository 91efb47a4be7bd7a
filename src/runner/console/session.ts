import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { verifyConsolePassword } from './password.js';

const COOKIE = 'sv_session';
const SESSION_MS = 12 * 3_600_000;
/** Form bodies are small: a login, an action's CSRF token. */
const MAX_BODY = 16 * 1024;

interface Session {
  csrf: string;
  expires: number;
  /** logged in with the token (beyond loopback), or given on loopback */
  authenticated: boolean;
}

/** Constant-time comparison of two secrets of any length. */
export function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * The console's sessions: a random id in an HttpOnly, SameSite=Strict cookie, each with
 * its CSRF token that every form posts back. Beyond loopback a session is made only by
 * logging in with the runner's token or the console password; on loopback every visitor gets one (the machine's
 * users are trusted there, as for /metrics), still with its CSRF token, so another site
 * open in the browser cannot post an action.
 */
export class ConsoleSessions {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly token: string | undefined,
    readonly loopback: boolean,
    /** the console password's hash (see password.ts), which logs in beside the token */
    private readonly passwordHash?: string,
  ) {}

  /** The request's session, if it has a valid one. */
  current(req: IncomingMessage): Session | undefined {
    const id = /(?:^|;\s*)sv_session=([0-9a-f]{64})/.exec(req.headers.cookie ?? '')?.[1];
    const session = id ? this.sessions.get(id) : undefined;
    if (!session || session.expires < Date.now()) return undefined;
    return session;
  }

  /** A session for this request: the existing one, or on loopback a new one. */
  ensure(req: IncomingMessage, res: ServerResponse): Session | undefined {
    const existing = this.current(req);
    if (existing) return existing;
    if (!this.loopback) return undefined;
    return this.start(res, false);
  }

  /** Log in with the token or the console password; true when it was right (a new session is set). */
  async login(given: string, res: ServerResponse): Promise<boolean> {
    const right = (this.token !== undefined && sameSecret(given, this.token)) || (this.passwordHash !== undefined && given !== '' && (await verifyConsolePassword(given, this.passwordHash)));
    if (!right) return false;
    this.start(res, true);
    return true;
  }

  logout(req: IncomingMessage, res: ServerResponse): void {
    const id = /(?:^|;\s*)sv_session=([0-9a-f]{64})/.exec(req.headers.cookie ?? '')?.[1];
    if (id) this.sessions.delete(id);
    res.setHeader('set-cookie', `${COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
  }

  /** Whether a posted form comes from our own page: the session's CSRF token, and an Origin (when sent) of this host. */
  verifyPost(req: IncomingMessage, form: URLSearchParams): Session | undefined {
    const session = this.current(req);
    if (!session) return undefined;
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}` && origin !== `https://${req.headers.host}`) return undefined;
    return sameSecret(form.get('csrf') ?? '', session.csrf) ? session : undefined;
  }

  private start(res: ServerResponse, authenticated: boolean): Session {
    for (const [id, s] of this.sessions) if (s.expires < Date.now()) this.sessions.delete(id);
    const id = randomBytes(32).toString('hex');
    const session: Session = { csrf: randomBytes(24).toString('hex'), expires: Date.now() + SESSION_MS, authenticated };
    this.sessions.set(id, session);
    res.setHeader('set-cookie', `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MS / 1000}`);
    return session;
  }
}

/** A url-encoded form body, refused above MAX_BODY. */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('the form is too large');
    parts.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(parts).toString('utf8'));
}
