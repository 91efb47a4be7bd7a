import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { Compose, type ComposeProject } from '../../src/stack/compose.js';
import { buildExampleImages, startPodman } from '../support/container-engine.js';
import { runCli, tempDir, waitFor } from '../support/helpers.js';
import { freePort } from '../support/storage-servers.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE = join(ROOT, 'examples', 'contact-center');
const RUNNER = join(ROOT, 'deploy', 'task-runner');

test('the runner image, built here, runs beside the example stack: scheduled backups of the stack, /healthz 200, a clean stop', { timeout: 900_000 }, async (t) => {
  const engine = await startPodman(t);
  const images = await buildExampleImages(engine);
  const runnerImage = `localhost/stackvault:t${randomBytes(3).toString('hex')}`;
  await run(join(RUNNER, 'build.sh'), [runnerImage], { env: engine.env, timeout: 600_000 });
  engine.defer(() => run('podman', ['rmi', '-f', runnerImage], { env: engine.env }));

  const dir = await tempDir(t);
  const stack = join(dir, 'stack');
  const share = join(dir, 'share', 'example-contact-center');
  await mkdir(join(stack, 'secrets'), { recursive: true });
  await mkdir(join(stack, 'data', 'config'), { recursive: true });
  await mkdir(share, { recursive: true });
  for (const f of ['docker-compose.yml', '.gitignore']) await copyFile(join(EXAMPLE, f), join(stack, f));
  await copyFile(join(RUNNER, 'compose.snippet.yml'), join(stack, 'runner.yml'));
  // The example's own stackvault.yaml, with this run's images and share, and a schedule a test can wait for.
  const config = parse(await readFile(join(EXAMPLE, 'stackvault.yaml'), 'utf8')) as Record<string, any>;
  // A name of its own: containers are named after it, and the lifecycle test may run the example meanwhile.
  const name = `runner-test-${randomBytes(3).toString('hex')}`;
  config.stack = name;
  config.application.images = { '1': { WEB_IMAGE: images.web1, DB_IMAGE: images.db } };
  config.repository.url = share;
  config.schedule = { time_zone: 'UTC', backup: '*/3 * * * * *', check_subset: '100%', drill: false };
  config.runner = { token_file: './secrets/runner_token' };
  await writeFile(join(stack, 'stackvault.yaml'), stringify(config));
  await writeFile(join(stack, 'secrets', 'db_root_password'), 'db-secret\n');
  await writeFile(join(stack, 'secrets', 'stackvault_password'), 'customer secret\n');
  await writeFile(join(stack, 'secrets', 'runner_token'), 'monitoring token\n');
  await writeFile(join(stack, 'data', 'config', 'app.ini'), 'queues=sales,support\n');
  const git = (...args: string[]) => run('git', ['-c', 'user.name=operator', '-c', 'user.email=operator@example.com', ...args], { cwd: stack }).then((r) => r.stdout.trim());
  await git('init', '--quiet');
  await git('add', '.');
  await git('commit', '--quiet', '-m', 'example-contact-center with its task runner');
  const incarnation = await git('rev-parse', 'HEAD');
  // What "stackvault up" leaves: the version and incarnation this host runs.
  await mkdir(join(stack, '.stackvault'));
  await writeFile(join(stack, '.stackvault', 'state.json'), JSON.stringify({ version: '1', incarnation, time: new Date().toISOString() }));

  const env = { ...engine.env, STACKVAULT_PASSWORD: 'customer secret' };
  assert.equal((await runCli(['init'], { cwd: stack, env })).code, 0);
  const compose = await Compose.detect(engine.env);
  const project: ComposeProject = {
    name,
    files: [join(stack, 'docker-compose.yml'), join(stack, 'runner.yml')],
    directory: stack,
    env: { WEB_IMAGE: images.web1, DB_IMAGE: images.db, WEB_PORT: String(await freePort()), STACKVAULT_PORT: String(await freePort()), STACKVAULT_IMAGE: runnerImage, STACKVAULT_SHARE: share },
  };
  engine.defer(() => compose.down(project, { volumes: true }));
  // The database first: the runner's first backup would otherwise find it still starting
  // (compose's depends_on waits for the start, not for health) and fail, to be retried.
  // The web page needs the release's tables; the database is what backups read.
  await compose.up(project, ['db', 'web']);
  await compose.waitHealthy(project, { services: ['db'], timeoutMs: 300_000 });
  await compose.up(project);
  // The host backs up with the same stackvault.yaml: the database through the engine's address.
  const fromHost = await runCli(['backup', '--quiet'], { cwd: stack, env });
  assert.equal(fromHost.code, 0, fromHost.stderr);

  const runnerAt = `http://${await compose.serviceAddress(project, 'stackvault')}:9180`;
  const token = { authorization: 'Bearer monitoring token' };
  const status = await waitFor(
    'a backup and a check by the runner',
    async () => {
      const s = (await (await fetch(`${runnerAt}/api/status`, { headers: token })).json()) as { recent: Array<{ job: string; status: string }> };
      const ok = (job: string) => s.recent.some((r) => r.job === job && r.status === 'success');
      return ok('backup') && ok('check') ? s : undefined;
    },
    240_000,
  );
  assert.ok(!status.recent.some((r) => r.status === 'failed'), JSON.stringify(status.recent));
  assert.equal((await fetch(`${runnerAt}/healthz`)).status, 200);
  // The snippet's own health check (the image, imported, has none) runs in the image and passes.
  const withCheck = (await compose.containers(project)).find((c) => c.Config.Labels['com.docker.compose.service'] === 'stackvault')!;
  assert.match(JSON.stringify(withCheck.Config.Healthcheck?.Test), /healthz/);
  await compose.waitHealthy(project, { services: ['stackvault'], timeoutMs: 60_000 });
  assert.equal((await fetch(`${runnerAt}/metrics`)).status, 401, 'beyond loopback, metrics need the token');
  assert.match(await (await fetch(`${runnerAt}/metrics`, { headers: token })).text(), new RegExp(`^stackvault_healthy\\{stack="${name}",host="${name}"\\} 1$`, 'm'));

  // The runner's snapshots: the stack's name as host, the incarnation and version as tags, the database in them.
  const snapshots = JSON.parse((await runCli(['snapshots', '--json'], { cwd: stack, env })).stdout) as Array<{ host: string; tags: string[]; sources: Array<{ name: string }> }>;
  if (snapshots.length < 2) {
    // Say what happened: which snapshots were forgotten, and what the runner logged.
    const forgotten = (await runCli(['snapshots', '--forgotten', '--json'], { cwd: stack, env })).stdout;
    const runnerLogs = await run('podman', ['logs', (await compose.containers(project)).find((c) => c.Config.Labels['com.docker.compose.service'] === 'stackvault')!.Id], { env: engine.env });
    assert.fail(`${snapshots.length} snapshots: ${JSON.stringify(snapshots)}\nforgotten: ${forgotten}\nrunner: ${(runnerLogs.stdout + runnerLogs.stderr).slice(-6000)}`);
  }
  for (const s of snapshots) {
    assert.equal(s.host, name);
    assert.ok(s.tags.includes(`incarnation=${incarnation}`), JSON.stringify(s.tags));
    assert.ok(s.tags.includes('version=1'), JSON.stringify(s.tags));
    // The host's backups also hold the stack repository; the runner's image has no git.
    const names = s.sources.map((x) => x.name).filter((n) => n !== 'stack-repository');
    assert.deepEqual(names.sort(), ['data', 'db']);
  }

  // A clean stop: SIGTERM, exit 0, no run left open in its history.
  const runner = (await compose.containers(project)).find((c) => c.Config.Labels['com.docker.compose.service'] === 'stackvault')!;
  await compose.engine.call('POST', `/containers/${runner.Id}/stop?t=30`);
  const stopped = await compose.engine.inspect(runner.Id);
  assert.equal(stopped.State.ExitCode, 0);
  const logs = await run('podman', ['logs', runner.Id], { env: engine.env });
  assert.match(logs.stdout + logs.stderr, /"msg":"task runner started"/);
  assert.match(logs.stdout + logs.stderr, /"msg":"stopping: the current job is abandoned safely"/);
  assert.equal((await runCli(['check', '--read-data'], { cwd: stack, env })).code, 0);
});
