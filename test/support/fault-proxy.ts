import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * An HTTP proxy on loopback that makes a storage server look like a bad network: for a
 * share of requests it drops the connection (before or after the server acted), answers
 * 503, cuts the response body short, or stalls. Faults follow a seeded sequence, so a
 * failing run can be repeated.
 */
export type Fault = 'drop-before' | 'drop-after' | 'error-503' | 'truncate' | 'stall';
export const ALL_FAULTS: Fault[] = ['drop-before', 'drop-after', 'error-503', 'truncate', 'stall'];

export interface FaultProxy {
  url: string;
  /** share of requests (0..1) that meet a fault from now on */
  rate: number;
  /** faults injected so far, by kind */
  injected: Record<Fault, number>;
  /** every request forwarded to the server or answered by `intercept` */
  forwarded: Array<{ method: string; path: string; headers: IncomingMessage['headers']; body: Buffer }>;
  stop(): Promise<void>;
}

/** An answer the proxy gives in the server's place: for a feature the test server lacks. */
export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export async function startFaultProxy(
  target: string,
  options: {
    seed: number;
    rate: number;
    faults?: Fault[];
    stallMs?: number;
    /** inject at most this many faults, then pass everything */
    budget?: number;
    intercept?: (method: string, path: string, headers: IncomingMessage['headers']) => Answer | undefined;
    /** change the server's response headers, e.g. to add one it does not send */
    rewrite?: (method: string, path: string, headers: IncomingMessage['headers']) => void;
    /** a body of the same length to send in the server's place: damaged on its way, say */
    alterBody?: (method: string, path: string, headers: IncomingMessage['headers'], body: Buffer) => Buffer;
    /** send the body a piece at a time, as a slow network would: pieces of `bytes`, one every `everyMs` */
    trickle?: (method: string, path: string, headers: IncomingMessage['headers']) => { bytes: number; everyMs: number } | undefined;
  },
): Promise<FaultProxy> {
  const faults = options.faults ?? ALL_FAULTS;
  const stallMs = options.stallMs ?? 5000;
  let state = options.seed >>> 0 || 1;
  const random = () => {
    // xorshift32: small, seeded, good enough to pick faults
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const upstream = new URL(target);
  const sockets = new Set<Socket>();
  const proxy: FaultProxy = {
    url: '',
    rate: options.rate,
    injected: Object.fromEntries(ALL_FAULTS.map((f) => [f, 0])) as Record<Fault, number>,
    forwarded: [],
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const forward = (req: IncomingMessage, body: Buffer): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> =>
    new Promise((resolve, reject) => {
      proxy.forwarded.push({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body });
      const out = request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(parts) }));
          res.on('error', reject);
        },
      );
      out.on('error', reject);
      out.end(body);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const parts: Buffer[] = [];
    for await (const d of req) parts.push(d as Buffer);
    const body = Buffer.concat(parts);
    const stand = options.intercept?.(req.method ?? 'GET', req.url ?? '/', req.headers);
    if (stand) {
      proxy.forwarded.push({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body });
      res.writeHead(stand.status, stand.headers ?? {});
      return res.end(stand.body ?? '');
    }
    const injectedSoFar = Object.values(proxy.injected).reduce((a, b) => a + b, 0);
    const fault = random() < proxy.rate && injectedSoFar < (options.budget ?? Infinity) ? faults[Math.floor(random() * faults.length)]! : undefined;
    if (fault) proxy.injected[fault]++;
    if (fault === 'drop-before') return req.socket.destroy();
    if (fault === 'error-503') {
      res.writeHead(503, { 'content-type': 'text/plain', connection: 'close' });
      return res.end('injected: service unavailable');
    }
    if (fault === 'stall') {
      setTimeout(() => req.socket.destroy(), stallMs).unref();
      return;
    }
    let answer;
    try {
      answer = await forward(req, body);
    } catch {
      return req.socket.destroy();
    }
    if (fault === 'drop-after') return req.socket.destroy();
    const headers = { ...answer.headers };
    delete headers['transfer-encoding'];
    options.rewrite?.(req.method ?? 'GET', req.url ?? '/', headers);
    // A HEAD answer has no body but says how long the object is: leave its length alone.
    if (req.method !== 'HEAD') headers['content-length'] = String(answer.body.length);
    if (fault === 'truncate' && answer.body.length > 1) {
      res.writeHead(answer.status, headers);
      res.write(answer.body.subarray(0, Math.floor(answer.body.length / 2)));
      setTimeout(() => req.socket.destroy(), 10).unref();
      return;
    }
    const sent = options.alterBody?.(req.method ?? 'GET', req.url ?? '/', req.headers, answer.body) ?? answer.body;
    res.writeHead(answer.status, headers);
    const slow = options.trickle?.(req.method ?? 'GET', req.url ?? '/', req.headers);
    if (!slow) return res.end(sent);
    for (let at = 0; at < sent.length; at += slow.bytes) {
      res.write(sent.subarray(at, at + slow.bytes));
      await new Promise((resolve) => setTimeout(resolve, slow.everyMs));
    }
    res.end();
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => req.socket.destroy());
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  proxy.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return proxy;
}
