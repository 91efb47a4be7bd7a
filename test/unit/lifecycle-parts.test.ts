import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { compareVersions } from '../../src/release/release.js';
import { clearSourceContents } from '../../src/sources/files/clear.js';
import { splitSqlStatements } from '../../src/stack/migrations.js';
import { tempDir } from '../support/helpers.js';

test('SQL migrations split into statements as the mariadb client splits them', () => {
  const script = [
    '-- a comment; with a semicolon',
    "INSERT INTO t VALUES ('a;b', \"c;d\", 'it''s', 'back\\'slash;');",
    '# another comment;',
    'UPDATE `odd;name` SET x = 1 /* a; comment */ WHERE y = 2;',
    '/*!40101 SET NAMES utf8mb4 */;',
    'DELIMITER //',
    'CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END//',
    'DELIMITER ;',
    'SELECT 3',
  ].join('\n');
  assert.deepEqual(splitSqlStatements(script), [
    "INSERT INTO t VALUES ('a;b', \"c;d\", 'it''s', 'back\\'slash;')",
    'UPDATE `odd;name` SET x = 1   WHERE y = 2',
    '/*!40101 SET NAMES utf8mb4 */',
    'CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END',
    'SELECT 3',
  ]);
  assert.deepEqual(splitSqlStatements('  \n-- nothing but a comment\n'), []);
});

test('versions are ordered as people write them', () => {
  const sorted = ['10', '2', '1.10', '1.9', '1.9.1', '2.0-rc1', '1'].sort(compareVersions);
  assert.deepEqual(sorted, ['1', '1.9', '1.9.1', '1.10', '2', '2.0-rc1', '10']);
  assert.equal(compareVersions('2', '2'), 0);
});

test('clearing a source before a restore removes what backups hold and keeps what they leave out', async (t) => {
  const root = await tempDir(t);
  const files: Record<string, string> = {
    'config/app.ini': 'a',
    'shared/exports/report.csv': 'b',
    'recordings/2026/call-1.wav': 'c',
    'upload.tmp': 'd',
    'logs/app.log': 'e',
  };
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), content);
  }
  await symlink('config', join(root, 'config-link'));
  const rules = { exclude: ['*.tmp'], classes: { recordings: ['recordings/'] } };
  assert.deepEqual(await clearSourceContents(root, rules, { dryRun: true }), { removed: 4, kept: 2 });
  assert.equal((await readdir(root)).length, 6, 'a dry run removes nothing');
  assert.deepEqual(await clearSourceContents(root, rules), { removed: 4, kept: 2 });
  assert.deepEqual((await readdir(root)).sort(), ['recordings', 'upload.tmp']);
  assert.equal(await readFile(join(root, 'recordings/2026/call-1.wav'), 'utf8'), 'c');
  // A folder that is not there is empty.
  assert.deepEqual(await clearSourceContents(join(root, 'missing'), rules), { removed: 0, kept: 0 });
});

test('a database source is reached by exactly one of host, socket or its compose service', () => {
  const config = (server: string) => `stack: s\nrepository: { url: ./r }\nsources:\n  - { name: db, type: mariadb, ${server} }\n`;
  assert.equal(parseConfig(config('service: db'), '/x/stackvault.yaml').config.sources[0]!.type, 'mariadb');
  assert.throws(() => parseConfig(config('service: db, host: 10.0.0.1'), '/x/stackvault.yaml'), /sources\[0\]: a mariadb source needs only one of host \(and port\), socket, or service/);
  assert.throws(() => parseConfig(config('user: root'), '/x/stackvault.yaml'), /sources\[0\]: a mariadb source needs host \(and port\), socket, or service/);
});
