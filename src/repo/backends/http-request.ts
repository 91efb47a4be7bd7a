import { Agent, request, type IncomingHttpHeaders } from 'node:http';

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One HTTP request to a helper on loopback (rclone's remote control), its whole answer in
 * one buffer. node:http rather than fetch: a restore reads tens of megabytes per second
 * through such a helper, and fetch's web streams cost the main thread about a third of a
 * second per 100 MB here (undici's readAllBytes, then a concatenation). The body goes into
 * one buffer of the announced length, so nothing is copied twice.
 */
export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs: number; agent: Agent },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: options.agent, signal: AbortSignal.timeout(options.timeoutMs) }, (res) => {
      const announced = Number(res.headers['content-length']);
      const whole = Number.isSafeInteger(announced) && announced >= 0 ? Buffer.allocUnsafe(announced) : undefined;
      const chunks: Buffer[] = [];
      let filled = 0;
      res.on('data', (chunk: Buffer) => {
        if (whole && chunks.length === 0 && filled + chunk.length <= whole.length) {
          chunk.copy(whole, filled);
          filled += chunk.length;
        } else chunks.push(chunk);
      });
      res.once('error', reject);
      res.once('end', () => {
        // A body cut short, or longer than announced, comes back as it arrived: the caller compares lengths.
        const body = whole && filled === whole.length && chunks.length === 0 ? whole : Buffer.concat([whole?.subarray(0, filled) ?? Buffer.alloc(0), ...chunks]);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
      // The stream ends without 'end' when the connection drops mid-body.
      res.once('aborted', () => reject(Object.assign(new Error('the connection closed mid-answer'), { code: 'ECONNRESET' })));
    });
    req.once('error', reject);
    req.end(options.body);
  });
}

/** Connections kept open between requests, as fetch does: a restore sends thousands. */
export function keepAliveAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 32 });
}
