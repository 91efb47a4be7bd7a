import { request } from 'node:http';
import { StackvaultError, errorMessage } from '../util/errors.js';

/**
 * A Docker-compatible engine's API (Docker, or Podman's compatible service) at DOCKER_HOST:
 * unix:///path/to.sock or tcp://host:port. Only what the stack lifecycle needs.
 */
export class Engine {
  private readonly socketPath?: string;
  private readonly host?: string;
  private readonly port?: number;

  constructor(readonly dockerHost: string = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock') {
    if (dockerHost.startsWith('unix://')) this.socketPath = dockerHost.slice('unix://'.length);
    else if (dockerHost.startsWith('tcp://')) {
      const url = new URL(`http://${dockerHost.slice('tcp://'.length)}`);
      this.host = url.hostname;
      this.port = Number(url.port || 2375);
    } else throw new StackvaultError(`DOCKER_HOST=${dockerHost}: expected unix:///path or tcp://host:port`);
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const { status, raw } = await this.callRaw(method, path, body);
    const text = raw.toString('utf8');
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* a stream or plain text */
    }
    return { status, body: parsed as T };
  }

  private async callRaw(method: string, path: string, body?: unknown): Promise<{ status: number; raw: Buffer }> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = request(
        {
          socketPath: this.socketPath,
          host: this.host,
          port: this.port,
          method,
          path,
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
          timeout: 60_000,
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, raw: Buffer.concat(parts) }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('the engine did not answer in 60 s')));
      req.on('error', (err) => reject(new StackvaultError(`container engine at ${this.dockerHost}: ${errorMessage(err)}`)));
      req.end(payload);
    });
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.call('GET', '/_ping')).status === 200;
    } catch {
      return false;
    }
  }

  /** Containers (running or not) carrying every label given. */
  async containers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) }));
    const { status, body } = await this.call<ContainerSummary[]>('GET', `/containers/json?all=true&filters=${filters}`);
    if (status !== 200) throw new StackvaultError(`container engine at ${this.dockerHost}: listing containers failed (HTTP ${status})`);
    return body;
  }

  async inspect(id: string): Promise<ContainerDetails> {
    const { status, body } = await this.call<ContainerDetails>('GET', `/containers/${encodeURIComponent(id)}/json`);
    if (status !== 200) throw new StackvaultError(`container engine at ${this.dockerHost}: no container ${id}`);
    return body;
  }

  /** Run a command in a running container; its exit code and output. */
  async exec(id: string, cmd: string[]): Promise<{ exitCode: number; output: string }> {
    const created = await this.call<{ Id: string }>('POST', `/containers/${encodeURIComponent(id)}/exec`, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
    if (created.status !== 201) throw new StackvaultError(`cannot run ${cmd.join(' ')} in container ${id} (HTTP ${created.status})`);
    const started = await this.callRaw('POST', `/exec/${created.body.Id}/start`, { Detach: false, Tty: false });
    const inspected = await this.call<{ ExitCode: number | null }>('GET', `/exec/${created.body.Id}/json`);
    return { exitCode: inspected.body.ExitCode ?? -1, output: demultiplex(started.raw).toString('utf8') };
  }
}

/**
 * Attached output without a terminal comes in frames: a byte for the stream (stdout 1,
 * stderr 2), three zero bytes, the payload's length (4 bytes, big-endian), the payload.
 */
export function demultiplex(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + 8 <= raw.length && raw[at]! <= 2 && raw[at + 1] === 0 && raw[at + 2] === 0 && raw[at + 3] === 0) {
    const size = raw.readUInt32BE(at + 4);
    parts.push(raw.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  // Anything that is not framed (an engine that sends plain output) is kept as it came.
  if (at < raw.length) parts.push(raw.subarray(at));
  return Buffer.concat(parts);
}

export interface ContainerSummary {
  Id: string;
  Names: string[];
  State: string;
  Labels: Record<string, string>;
}

export interface ContainerDetails {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; ExitCode: number; Health?: { Status: string } };
  Config: { Labels: Record<string, string>; Healthcheck?: { Test?: string[] } };
  NetworkSettings?: { IPAddress?: string; Networks?: Record<string, { IPAddress?: string }> };
}
