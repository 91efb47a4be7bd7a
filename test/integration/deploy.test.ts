import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy/task-runner');

test('the task runner container: its stackvault.yaml loads, the compose snippet mounts what it names, the image copies what exists', () => {
  const loaded = loadConfig(join(DEPLOY, 'stackvault.yaml'));
  assert.equal(loaded.config.schedule?.backup, '0 2 * * *');
  const compose = parse(readFileSync(join(DEPLOY, 'compose.snippet.yml'), 'utf8')) as {
    services: { stackvault: { command: string[]; volumes: string[]; environment: Record<string, string>; working_dir: string; healthcheck?: { test: string[] } } };
  };
  const service = compose.services.stackvault;
  assert.equal(service.command[0], 'run');
  // "host:container[:ro]", where either side may be "${VAR:-default}".
  const sides = service.volumes.map((v) => [...v.matchAll(/\$\{\w+:-([^}]+)\}|([^:]+)/g)].map((m) => m[1] ?? m[2]!));
  const mounted = sides.map((s) => s[1]!);
  const inside = (path: string) => (isAbsolute(path) ? path : join(service.working_dir, path));
  assert.ok(mounted.includes(inside(dirname(loaded.config.runner!.history))), 'the job history lives on a mounted folder');
  assert.ok(mounted.includes(inside('.stackvault')), 'the state up writes (the incarnation) reaches the runner');
  assert.ok(sides.some(([host, container]) => host === loaded.config.repository.url && container === loaded.config.repository.url), 'the share is mounted at the same path as on the host');
  for (const file of [service.environment.STACKVAULT_PASSWORD_FILE!, service.environment.STACKVAULT_RUNNER_TOKEN_FILE!]) {
    assert.ok(mounted.some((m) => file.startsWith(`${m}/`)), `${file} is on a mounted folder`);
  }
  assert.match(JSON.stringify(service.healthcheck?.test), /healthz/, 'the snippet has its own health check');
  const copied = [...readFileSync(join(DEPLOY, 'Containerfile'), 'utf8').matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '));
  for (const path of copied) assert.ok(existsSync(join(ROOT, path)), `Containerfile copies ${path}`);
});
