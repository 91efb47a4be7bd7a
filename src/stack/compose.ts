import { execFile } from 'node:child_process';
import { StackvaultError, UsageError } from '../util/errors.js';
import { Engine, type ContainerDetails } from './engine.js';

export interface ComposeProject {
  /** the compose project name: containers, networks and volumes are named after it */
  name: string;
  /** compose files, in order */
  files: string[];
  /** folder relative paths in the compose files are taken from */
  directory: string;
  /** variables the compose files interpolate (image tags of the wanted version, ...) */
  env?: Record<string, string>;
}

const PROJECT_LABEL = 'com.docker.compose.project';
const SERVICE_LABEL = 'com.docker.compose.service';

/**
 * Starts and stops a stack's containers with docker compose v2 (`docker compose`) or
 * Debian's docker-compose v1, against any Docker-compatible engine at DOCKER_HOST,
 * Podman's included. Health is judged by running each service's own health check in its
 * container, so it works on engines that do not schedule health checks themselves
 * (Podman without systemd).
 */
export class Compose {
  private constructor(
    private readonly command: string[],
    readonly engine: Engine,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async detect(env: NodeJS.ProcessEnv = process.env): Promise<Compose> {
    const engine = new Engine(env.DOCKER_HOST);
    for (const command of [['docker', 'compose'], ['docker-compose']]) {
      const ok = await run(command[0]!, [...command.slice(1), 'version'], { env, timeoutMs: 20_000 }).then(
        () => true,
        () => false,
      );
      if (ok) return new Compose(command, engine, env);
    }
    throw new UsageError('neither "docker compose" nor "docker-compose" runs here: install one (Debian: apt-get install docker-compose)');
  }

  get version(): 'v2' | 'v1' {
    return this.command.length === 2 ? 'v2' : 'v1';
  }

  private async compose(project: ComposeProject, args: string[], timeoutMs = 600_000): Promise<string> {
    const files = project.files.flatMap((f) => ['-f', f]);
    try {
      return await run(this.command[0]!, [...this.command.slice(1), '-p', project.name, ...files, ...args], {
        env: { ...this.env, ...project.env },
        cwd: project.directory,
        timeoutMs,
      });
    } catch (err) {
      throw new StackvaultError(`${this.command.join(' ')} ${args[0]} of stack "${project.name}" failed: ${(err as Error).message}`);
    }
  }

  /** Create and start the stack's containers, or only these services (recreating those whose configuration changed). */
  async up(project: ComposeProject, services: string[] = []): Promise<void> {
    await this.compose(project, ['up', '-d', ...(services.length ? ['--no-deps'] : ['--remove-orphans']), ...services]);
  }

  /** Stop and remove the containers; named volumes stay unless asked. */
  async down(project: ComposeProject, options: { volumes?: boolean } = {}): Promise<void> {
    await this.compose(project, ['down', '--remove-orphans', ...(options.volumes ? ['--volumes'] : [])]);
  }

  /**
   * Where a service's container is reached from this host: its address in the stack's
   * network, so a database whose port is not published is still reachable.
   */
  async serviceAddress(project: ComposeProject, service: string): Promise<string> {
    const container = (await this.containers(project)).find((c) => c.Config.Labels[SERVICE_LABEL] === service && c.State.Running);
    if (!container) throw new StackvaultError(`stack "${project.name}" has no running container of service "${service}"`);
    const address = Object.values(container.NetworkSettings?.Networks ?? {}).find((n) => n.IPAddress)?.IPAddress ?? container.NetworkSettings?.IPAddress;
    if (!address) throw new StackvaultError(`service "${service}" of stack "${project.name}" has no network address (network_mode host or none?)`);
    return address;
  }

  async containers(project: ComposeProject): Promise<ContainerDetails[]> {
    const summaries = await this.engine.containers({ [PROJECT_LABEL]: project.name });
    return Promise.all(summaries.map((s) => this.engine.inspect(s.Id)));
  }

  /**
   * Wait until every container runs and every health check passes; fail naming the
   * services that did not, with what their check last said.
   */
  async waitHealthy(project: ComposeProject, options: { timeoutMs?: number; intervalMs?: number; services?: string[] } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    let failing: string[] = [];
    for (;;) {
      const containers = (await this.containers(project)).filter((c) => !options.services || options.services.includes(c.Config.Labels[SERVICE_LABEL] ?? ''));
      if (containers.length === 0) throw new StackvaultError(`stack "${project.name}" has no containers${options.services ? ` for ${options.services.join(', ')}` : ''}: was it started?`);
      failing = [];
      for (const c of containers) {
        const service = c.Config.Labels[SERVICE_LABEL] ?? c.Name;
        if (!c.State.Running) {
          failing.push(`${service}: ${c.State.Status} (exit code ${c.State.ExitCode})`);
          continue;
        }
        const test = c.Config.Healthcheck?.Test;
        if (!test || test[0] === 'NONE' || c.State.Health?.Status === 'healthy') continue;
        const cmd = test[0] === 'CMD-SHELL' ? ['/bin/sh', '-c', test.slice(1).join(' ')] : test[0] === 'CMD' ? test.slice(1) : test;
        const { exitCode, output } = await this.engine.exec(c.Id, cmd);
        if (exitCode !== 0) failing.push(`${service}: health check "${cmd.join(' ')}" exited ${exitCode}${output.trim() ? `: ${output.trim().slice(0, 200)}` : ''}`);
      }
      if (failing.length === 0) return;
      if (Date.now() > deadline) throw new StackvaultError(`stack "${project.name}" is not healthy: ${failing.join('; ')}`);
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 1000));
    }
  }
}

function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env: options.env, cwd: options.cwd, timeout: options.timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || stdout || err.message).trim().split('\n').slice(-5).join(' | ');
        reject(new Error((err as NodeJS.ErrnoException).code === 'ENOENT' ? `${command} is not installed` : detail));
      } else resolve(stdout);
    });
  });
}
