import { createServer, type IncomingMessage, type Server } from 'node:http';
import { isIP } from 'node:net';
import { UsageError, errorMessage } from '../util/errors.js';
import type { Console } from './console/console.js';
import { ConsoleSessions, sameSecret } from './console/session.js';

export interface StatusEndpoints {
  /** healthy, and if not, why */
  health(): { healthy: boolean; problems: string[] };
  metrics(): string;
  status(): unknown;
}

const STATUS_PATHS = new Set(['/healthz', '/metrics', '/api/status']);

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

/** Whether a request carries the bearer token (compared in constant time). */
function hasToken(req: IncomingMessage, token: string): boolean {
  return sameSecret(/^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '', token);
}

interface ConsoleLogin {
  token?: string;
  consolePasswordHash?: string;
  /** runner.console_login: a login on loopback too */
  consoleLogin?: boolean;
}

function hostOf(listen: string): string {
  return listen.slice(0, listen.lastIndexOf(':')) || '127.0.0.1';
}

/**
 * Why the console cannot be served at `listen`: it needs a login there (beyond loopback,
 * or runner.console_login) and neither the runner token nor a console password is set.
 * Undefined when it can. The runner then serves its status endpoints without a console;
 * "stackvault console", which serves nothing else, refuses to start.
 */
export function consoleUnservable(listen: string, login: ConsoleLogin): string | undefined {
  if (login.token !== undefined || login.consolePasswordHash !== undefined) return undefined;
  const host = hostOf(listen);
  if (isLoopback(host) && !login.consoleLogin) return undefined;
  const where = login.consoleLogin ? 'runner.console_login: the console' : `the console on ${host}, beyond loopback,`;
  return `${where} asks for the runner token, but none is set (runner.token_file, STACKVAULT_RUNNER_TOKEN_FILE or STACKVAULT_RUNNER_TOKEN), nor a console password (runner.console_password_hash)`;
}

/**
 * /healthz, /metrics (Prometheus text format) and /api/status (JSON) on host:port.
 * /healthz is open to all (an engine's health check has no token); the others tell about
 * the stack's repository and history, so beyond loopback they need the bearer `token`,
 * and without one configured they are not served there at all.
 */
export async function startStatusServer(
  listen: string,
  endpoints: StatusEndpoints,
  options: ConsoleLogin & { console?: (sessions: ConsoleSessions) => Console } = {},
): Promise<Server> {
  const host = hostOf(listen);
  const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
  const { token } = options;
  // Beyond loopback the console logs in with the token or its password; without either it is not served there.
  const openConsole = isLoopback(host) && !options.consoleLogin;
  const console = options.console && consoleUnservable(listen, options) === undefined ? options.console(new ConsoleSessions(token, openConsole, options.consolePasswordHash)) : undefined;
  const server = createServer((req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const path = url.pathname;
      if (console && !STATUS_PATHS.has(path)) {
        console.handle(req, res, url).then(
          (handled) => {
            if (!handled) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /, /healthz, /metrics or /api/status\n');
          },
          (err: unknown) => {
            if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`);
            else res.destroy();
          },
        );
      } else if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else if (path !== '/healthz' && token === undefined && !isLoopback(host)) {
        res
          .writeHead(403, { 'content-type': 'text/plain' })
          .end(`this runner listens on ${listen}, beyond loopback: ${path} needs a bearer token (runner.token_file, STACKVAULT_RUNNER_TOKEN_FILE or STACKVAULT_RUNNER_TOKEN); /healthz is open\n`);
      } else if (path !== '/healthz' && token !== undefined && !hasToken(req, token)) {
        res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' }).end(`${path} needs "Authorization: Bearer <token>"\n`);
      } else if (path === '/healthz') {
        const health = endpoints.health();
        res.writeHead(health.healthy ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: health.healthy ? 'ok' : 'failing', problems: health.problems }) + '\n');
      } else if (path === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(endpoints.metrics());
      } else if (path === '/api/status') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(endpoints.status(), null, 2) + '\n');
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /metrics or /api/status\n');
      }
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new UsageError(`runner.listen ${listen}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.code === 'EACCES' ? 'not allowed to listen there' : err.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
  return server;
}
