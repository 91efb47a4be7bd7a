import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { Compose, type ComposeProject } from '../../src/stack/compose.js';
import { busyboxImage, startPodman } from '../support/container-engine.js';
import { tempDir } from '../support/helpers.js';

test('the compose adapter starts a stack on Podman, waits for its health checks, and takes it down', async (t) => {
  const engine = await startPodman(t);
  const image = await busyboxImage(t, engine);
  const dir = await tempDir(t);
  await mkdir(join(dir, 'www'));
  await writeFile(join(dir, 'www', 'index.html'), 'hello from the stack\n');
  await writeFile(
    join(dir, 'docker-compose.yml'),
    stringify({
      version: '3.7',
      services: {
        web: {
          image: '${WEB_IMAGE}',
          command: ['/bin/httpd', '-f', '-p', '8080', '-h', '/www'],
          volumes: ['./www:/www:ro'],
          healthcheck: { test: ['CMD', '/bin/wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/'], interval: '2s' },
        },
        worker: { image: '${WEB_IMAGE}', command: ['/bin/sleep', '3600'] },
      },
    }),
  );
  const compose = await Compose.detect(engine.env);
  const project: ComposeProject = { name: `svtest${Date.now() % 100000}`, files: ['docker-compose.yml'], directory: dir, env: { WEB_IMAGE: image } };
  engine.defer(() => compose.down(project, { volumes: true }));
  await compose.up(project);
  await compose.waitHealthy(project, { timeoutMs: 60_000, intervalMs: 200 });
  const containers = await compose.containers(project);
  assert.deepEqual(containers.map((c) => c.Config.Labels['com.docker.compose.service']).sort(), ['web', 'worker']);
  const web = containers.find((c) => c.Config.Labels['com.docker.compose.service'] === 'web')!;
  const page = await compose.engine.exec(web.Id, ['/bin/wget', '-q', '-O', '-', 'http://127.0.0.1:8080/']);
  assert.equal(page.exitCode, 0);
  assert.match(page.output, /hello from the stack/);
  // 51 bytes of output: its frame header's length byte is a printable "3", which must not leak into the text.
  const echoed = await compose.engine.exec(web.Id, ['/bin/echo', 'x'.repeat(50)]);
  assert.equal(echoed.output, 'x'.repeat(50) + '\n');
  await compose.down(project);
  assert.deepEqual(await compose.containers(project), []);
});

test('a stack whose health check fails is reported with the service and what its check said', async (t) => {
  const engine = await startPodman(t);
  const image = await busyboxImage(t, engine);
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'docker-compose.yml'),
    stringify({
      version: '3.7',
      services: {
        sick: { image, command: ['/bin/sleep', '3600'], healthcheck: { test: ['CMD-SHELL', 'echo database not ready; exit 3'], interval: '2s' } },
        gone: { image, command: ['/bin/sh', '-c', 'exit 7'] },
      },
    }),
  );
  const compose = await Compose.detect(engine.env);
  const project: ComposeProject = { name: `svsick${Date.now() % 100000}`, files: ['docker-compose.yml'], directory: dir };
  engine.defer(() => compose.down(project, { volumes: true }));
  await compose.up(project);
  const err = await compose.waitHealthy(project, { timeoutMs: 3000, intervalMs: 200 }).then(
    () => assert.fail('a failing health check must not pass'),
    (e: unknown) => e as Error,
  );
  assert.match(err.message, /stack "svsick\d+" is not healthy/);
  assert.match(err.message, /sick: health check "\/bin\/sh -c echo database not ready; exit 3" exited 3: database not ready/);
  assert.match(err.message, /gone: exited \(exit code 7\)/);
});
