import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { checksums, createFixture } from '../support/mariadb-fixture.js';
import { startMariadb } from '../support/mariadb-server.js';
import { runCli, tempDir } from '../support/helpers.js';

const TABLES = ['shop.calls', 'shop.customers', 'shop.orders', 'shop.all_types', 'legacy.kunden'];

test('the CLI backs up a configured database and restores it beside, over, and refusing to overwrite', async (t) => {
  const server = await startMariadb(t);
  await createFixture(server);
  await server.client("CREATE USER 'backup'@'127.0.0.1' IDENTIFIED BY 'db pass word'; GRANT ALL ON *.* TO 'backup'@'127.0.0.1';");
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'stackvault.yaml'),
    [
      'stack: acme',
      'repository:',
      '  url: ./repo',
      '  password_env: REPO_PW',
      'sources:',
      '  - name: db',
      '    type: mariadb',
      `    host: ${server.host}`,
      `    port: ${server.port}`,
      '    user: backup',
      '    password_env: DB_PW',
      '    databases: [shop, legacy]',
      '',
    ].join('\n'),
  );
  const env = { REPO_PW: 'repo pw', DB_PW: 'db pass word' };
  const cli = (args: string[], extra: Record<string, string> = {}) => runCli(args, { cwd: dir, env: { ...env, ...extra } });

  assert.equal((await cli(['init'])).code, 0);
  const saved = await cli(['backup', '--json']);
  assert.equal(saved.code, 0, saved.stderr);
  assert.ok(!saved.stdout.includes('db pass word'), 'the password is not in the output');
  const summary = JSON.parse(saved.stdout.trim().split('\n').pop()!);
  assert.equal(summary.sources[0].kind, 'mariadb');
  assert.equal(summary.sources[0].path, `mariadb://backup@${server.host}:${server.port}`);

  // The databases exist: restore refuses and changes nothing.
  const before = await checksums(server, TABLES);
  await server.client('INSERT INTO shop.customers (name, email) VALUES ("after backup", "later@example.com")');
  const changed = await checksums(server, TABLES);
  const refused = await cli(['restore', 'latest', '--source', 'db']);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /database "legacy", "shop" already exists and is not empty.*--force/);
  assert.deepEqual(await checksums(server, TABLES), changed);

  // Beside the live databases, under other names.
  const beside = await cli(['restore', 'latest', '--source', 'db', '--rename-db', 'shop=shop_check', '--rename-db', 'legacy=legacy_check']);
  assert.equal(beside.code, 0, beside.stderr);
  assert.match(beside.stdout, /shop as shop_check/);
  assert.deepEqual(await checksums(server, TABLES, { shop: 'shop_check', legacy: 'legacy_check' }), before);
  // a view that names its database follows the rename
  assert.equal((await server.client('SELECT COUNT(*) FROM shop_check.big_customers')).trim(), (await server.client('SELECT COUNT(*) FROM shop.big_customers')).trim());
  assert.match(await server.client('SHOW CREATE VIEW shop_check.customer_orders'), /`shop_check`|from \(`customers`/);

  // Over them with --force: back to the moment of the snapshot.
  const forced = await cli(['restore', 'latest', '--source', 'db', '--force', '--threads', '3', '--json']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(await checksums(server, TABLES), before);
  // Its progress counts rows, and says so: no "files" in a database restore's status.
  const status = forced.stdout.split('\n').filter((line) => line.startsWith('{"message_type":"status"')).map((line) => JSON.parse(line) as Record<string, unknown>).at(-1);
  assert.ok(status, forced.stdout);
  assert.equal(status.action, 'restore db');
  assert.ok((status.total_rows as number) > 0 && status.rows_done === status.total_rows, JSON.stringify(status));
  assert.equal(status.files_done, undefined);

  // As files: the dump is plain text a person can load by hand.
  const asFiles = await cli(['restore', 'latest', '--target', join(dir, 'files')]);
  assert.equal(asFiles.code, 0, asFiles.stderr);
  const listed = await cli(['ls', 'latest', '/db/shop/customers']);
  assert.match(listed.stdout, /all\.tsv/);
});

test('a wrong database password or an unreachable server fails clearly and saves nothing', async (t) => {
  const server = await startMariadb(t);
  const dir = await tempDir(t);
  const config = (port: number) =>
    ['stack: acme', 'repository:', '  url: ./repo', 'sources:', '  - name: db', '    type: mariadb', '    host: 127.0.0.1', `    port: ${port}`, '    user: root', '    password_env: DB_PW', ''].join('\n');
  await writeFile(join(dir, 'stackvault.yaml'), config(server.port));
  const env = { STACKVAULT_PASSWORD: 'pw' };
  assert.equal((await runCli(['init'], { cwd: dir, env })).code, 0);

  const wrong = await runCli(['backup'], { cwd: dir, env: { ...env, DB_PW: 'not the password' } });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /source "db": mariadb at 127\.0\.0\.1:\d+: Access denied for user 'root'/);
  assert.ok(!wrong.stderr.includes('not the password'));

  const unset = await runCli(['backup'], { cwd: dir, env });
  assert.equal(unset.code, 2);
  assert.match(unset.stderr, /password_env names DB_PW, but that variable is not set/);

  const closedPort = server.port;
  await server.stop();
  await writeFile(join(dir, 'stackvault.yaml'), config(closedPort));
  const unreachable = await runCli(['backup'], { cwd: dir, env: { ...env, DB_PW: '' } });
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /cannot connect to mariadb at 127\.0\.0\.1:\d+: connection refused/);

  const none = await runCli(['snapshots', '--json'], { cwd: dir, env });
  assert.deepEqual(JSON.parse(none.stdout), []);
});

test('values the server cannot take back are named at backup, and restore exits non-zero unless --allow-lossy', async (t) => {
  const server = await startMariadb(t);
  const conn = await server.connect();
  await conn.execute('SET NAMES utf8mb4');
  for (const sql of ['CREATE DATABASE moods CHARACTER SET utf8mb4', "CREATE TABLE moods.calls (id INT PRIMARY KEY, mood ENUM('😀','ok') CHARACTER SET utf8mb4)", "INSERT INTO moods.calls VALUES (1, '😀'), (2, 'ok')"]) await conn.execute(sql);
  await conn.close();
  const dir = await tempDir(t);
  await writeFile(join(dir, 'stackvault.yaml'), ['stack: acme', 'repository: { url: ./repo }', 'sources:', '  - name: db', '    type: mariadb', `    socket: ${server.socket}`, '    databases: [moods]', ''].join('\n'));
  const cli = (args: string[]) => runCli(args, { cwd: dir, env: { STACKVAULT_PASSWORD: 'pw' } });
  assert.equal((await cli(['init'])).code, 0);
  const saved = await cli(['backup', '--json']);
  assert.equal(saved.code, 0, saved.stderr);
  const warnings = (JSON.parse(saved.stdout.trim().split('\n').pop()!) as { sources: Array<{ database: { warnings: string[] } }> }).sources[0]!.database.warnings;
  assert.ok(warnings.some((w) => w.startsWith('moods.calls.mood:') && w.includes('"😀"')), JSON.stringify(warnings));

  const lossy = await cli(['restore', 'latest', '--source', 'db', '--rename-db', 'moods=moods_copy']);
  assert.equal(lossy.code, 1, lossy.stderr);
  assert.match(lossy.stderr, /--allow-lossy/);
  const accepted = await cli(['restore', 'latest', '--source', 'db', '--rename-db', 'moods=moods_accepted', '--allow-lossy']);
  assert.equal(accepted.code, 0, accepted.stderr);
  assert.match(accepted.stdout, /warning: /);
});
