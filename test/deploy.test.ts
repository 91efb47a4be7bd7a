import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadConfig } from '../src/config/load.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy/task-runner');

test('the task runner container: its stackvault.yaml loads, the compose snippet mounts what it names, the image copies what exists', () => {
  const loaded = loadConfig(join(DEPLOY, 'stackvault.yaml'));
  assert.equal(loaded.config.schedule?.backup, '0 2 * * *');
  const compose = parse(readFileSync(join(DEPLOY, 'compose.snippet.yml'), 'utf8')) as {
    services: { stackvault: { command: string[]; volumes: string[]; environment: Record<string, string>; secrets: string[] } };
    secrets: Record<string, unknown>;
  };
  const service = compose.services.stackvault;
  assert.equal(service.command[0], 'run');
  const mounted = service.volumes.map((v) => v.split(':')[1]!);
  assert.ok(mounted.includes(dirname(loaded.config.runner!.history)), 'the job history lives on a volume');
  assert.ok(mounted.includes(loaded.config.repository.url), 'the repository share is mounted');
  for (const secret of service.secrets) assert.ok(compose.secrets[secret], `secret ${secret} is declared`);
  assert.ok(loaded.config.repository.password_file?.startsWith('/run/secrets/'));
  const copied = [...readFileSync(join(DEPLOY, 'Containerfile'), 'utf8').matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '));
  for (const path of copied) assert.ok(existsSync(join(ROOT, path)), `Containerfile copies ${path}`);
});
