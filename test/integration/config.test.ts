import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { UsageError } from '../../src/util/errors.js';
import { runCli, tempDir } from '../support/helpers.js';

const valid = `version: 1
stack: acme
repository:
  url: ./repo
  password_env: ACME_PASSWORD
sources:
  - name: data
    type: files
    path: ./data
    exclude: ["*.tmp"]
retention:
  keep_daily: 7
`;

function errorOf(text: string): string {
  try {
    parseConfig(text, '/etc/acme/stackvault.yaml');
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('the config was accepted');
}

test('a valid config loads', () => {
  const { config, baseDir } = parseConfig(valid, '/etc/acme/stackvault.yaml');
  assert.equal(config.stack, 'acme');
  const first = config.sources[0]!;
  assert.equal(first.type === 'files' && first.path, './data');
  assert.equal(baseDir, '/etc/acme');
});

test('a wrong type names file, line, field and what is expected', () => {
  const msg = errorOf(valid.replace('keep_daily: 7', 'keep_daily: seven'));
  assert.match(msg, /\/etc\/acme\/stackvault\.yaml:12:15: retention\.keep_daily: expected number, found string "seven"/);
});

test('an unknown field is named with its line', () => {
  const msg = errorOf(valid.replace('    path: ./data', '    path: ./data\n    pahts: ./other'));
  assert.match(msg, /stackvault\.yaml:10:5: sources\[0\]: unknown field "pahts"/);
});

test('a missing field is reported at its parent', () => {
  const msg = errorOf(valid.replace('  url: ./repo\n', ''));
  assert.match(msg, /stackvault\.yaml:4:3: repository\.url: missing/);
});

test('broken YAML names the line', () => {
  const msg = errorOf('stack: acme\nsources: [\n');
  assert.match(msg, /stackvault\.yaml:\d+:\d+: not valid YAML/);
});

test('an unknown exclusion class is named', () => {
  const msg = errorOf(valid.replace('    exclude: ["*.tmp"]', '    exclusions: [recordings, voicemail]'));
  assert.match(msg, /sources\[0\]\.exclusions: unknown exclusion class "voicemail" \(known: recordings, logs\)/);
});

test('the CLI exits 2 with the config error and changes nothing', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'stackvault.yaml'), valid.replace('stack: acme', 'stack: Acme Corp'));
  const result = await runCli(['backup'], { cwd: dir });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /stackvault\.yaml:2:8: stack: a stack name is lower case/);
  assert.throws(() => loadConfig(join(dir, 'missing.yaml')), /cannot read config .*missing\.yaml: no such file/);
});

test('task runner settings: a bad cron expression, time zone or share is named with its line', () => {
  assert.match(errorOf(`${valid}schedule:\n  backup: "every night"\n`), /stackvault\.yaml:14:11: schedule\.backup: expected a cron expression/);
  assert.match(errorOf(`${valid}schedule:\n  time_zone: Europe/Berlín\n`), /:14:14: schedule\.time_zone: expected an IANA time zone/);
  assert.match(errorOf(`${valid}schedule:\n  check_subset: lots\n`), /:14:17: schedule\.check_subset: .*expected a share such as "5%"/);
  for (const share of ['5', 'true', '[5]']) {
    assert.match(errorOf(`${valid}schedule:\n  check_subset: ${share}\n`), /:14:17: schedule\.check_subset: expected a share such as "5%" or "1\/20"/, `check_subset: ${share}`);
  }
  assert.match(errorOf(`${valid}notify:\n  webhook: not a url\n`), /:14:12: notify\.webhook/);
  assert.match(errorOf(`${valid}drill:\n  database:\n    user: backup\n`), /:15:5: drill\.database needs host \(and port\) or socket/);
  const { config } = parseConfig(`${valid}schedule:\n  time_zone: Europe/Berlin\n  drill: false\n`, '/etc/acme/stackvault.yaml');
  assert.deepEqual(config.schedule, { time_zone: 'Europe/Berlin', backup: '0 2 * * *', drill: false, check_subset: '5%', prune: true });
});

test("the README's stackvault.yaml example is a valid config", async () => {
  const { readFile } = await import('node:fs/promises');
  const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
  const example = /## stackvault\.yaml[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
  const { config } = parseConfig(example, '/srv/acme/stackvault.yaml');
  assert.equal(config.application?.version, '2');
  assert.equal(config.application?.images?.['2']?.WEB_IMAGE, 'registry.example.com/acme/web:2.0');
});
