import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import { Engine } from '../../src/stack/engine.js';

const run = promisify(execFile);

export interface TestEngine {
  /** DOCKER_HOST of the test's own Podman API service */
  dockerHost: string;
  /** environment for podman and compose commands of this engine */
  env: NodeJS.ProcessEnv;
  /** clean-up to run before the service stops (last registered, first run) */
  defer(cleanup: () => Promise<unknown>): void;
}

/**
 * A Podman API service of the test's own, on a socket in a temp folder, with its own
 * containers.conf (no ulimits, runc, cgroupfs, netavark: what works in this sandbox), stopped when
 * the test ends. Needs Debian's podman, runc and docker-compose (scripts/install-test-deps.sh).
 */
export async function startPodman(t: TestContext): Promise<TestEngine> {
  const dir = await mkdtemp(join(tmpdir(), 'sv-podman-'));
  const conf = join(dir, 'containers.conf');
  // netavark: compose networks get DNS (aardvark), so services reach each other by name.
  await writeFile(conf, '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n[network]\nnetwork_backend = "netavark"\n');
  const socket = join(dir, 'podman.sock');
  const env = { ...process.env, CONTAINERS_CONF: conf, DOCKER_HOST: `unix://${socket}` };
  const child = spawn('podman', ['system', 'service', '--time=0', `unix://${socket}`], { env, stdio: 'ignore' });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const deferred: Array<() => Promise<unknown>> = [];
  t.after(async () => {
    // Containers, networks and images go while the service and its config still exist.
    for (const cleanup of deferred.reverse()) await cleanup().catch(() => undefined);
    process.off('exit', killOnExit);
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
    await rm(dir, { recursive: true, force: true });
  });
  const engine = new Engine(env.DOCKER_HOST);
  const deadline = Date.now() + 30_000;
  while (!(await engine.ping())) {
    if (child.exitCode !== null) throw new Error(`podman system service exited with ${child.exitCode} (install podman: scripts/install-test-deps.sh)`);
    if (Date.now() > deadline) throw new Error('the Podman API service did not answer in 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { dockerHost: env.DOCKER_HOST, env, defer: (cleanup) => deferred.push(cleanup) };
}

/**
 * A tiny image made here, with no registry: a root file system of busybox-static with
 * sh, httpd, wget and friends, imported into the engine under a tag unique to the test.
 */
export async function busyboxImage(t: TestContext, engine: TestEngine, name = 'sv-test-busybox'): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'sv-rootfs-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  for (const d of ['bin', 'etc', 'tmp', 'www', 'data']) await mkdir(join(root, d), { recursive: true });
  await copyFile('/bin/busybox', join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'ls', 'cat', 'echo', 'sleep', 'httpd', 'wget', 'mkdir', 'test', 'true', 'false']) await symlink('busybox', join(root, 'bin', applet));
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  const tag = `localhost/${name}:${randomBytes(4).toString('hex')}`;
  await run('sh', ['-c', `tar -C '${root}' -c . | podman import - '${tag}'`], { env: engine.env, timeout: 120_000 });
  engine.defer(() => run('podman', ['rmi', '-f', tag], { env: engine.env }));
  return tag;
}

const EXAMPLE_IMAGES = fileURLToPath(new URL('../../../examples/contact-center/vendor/images/build.sh', import.meta.url));

/** Build the example stack's images (no registry) under tags unique to this run; removed when the test ends. */
export async function buildExampleImages(engine: TestEngine): Promise<{ db: string; web1: string; web2: string }> {
  const suffix = `-t${randomBytes(3).toString('hex')}`;
  const { stdout } = await run(EXAMPLE_IMAGES, [suffix], { env: engine.env, timeout: 300_000 });
  const tags = stdout.trim().split('\n');
  engine.defer(() => run('podman', ['rmi', '-f', ...tags], { env: engine.env }));
  return {
    db: `localhost/contact-center-db:10.11${suffix}`,
    web1: `localhost/contact-center-web:1${suffix}`,
    web2: `localhost/contact-center-web:2${suffix}`,
  };
}
