import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../src/repo/backends/local.js';
import { Repository } from '../src/repo/repository.js';
import { backup } from '../src/snapshot/backup.js';
import { check } from '../src/snapshot/check.js';
import { restoreDatabaseSource } from '../src/snapshot/restore-database.js';
import type { MariadbSourceSpec } from '../src/sources/mariadb/dump.js';
import { FIXTURE_DATABASES, checksums, createFixture } from './mariadb-fixture.js';
import { startMariadb, type TestServer } from './mariadb-server.js';
import { tempDir } from './helpers.js';

function source(server: TestServer, extra: Partial<MariadbSourceSpec> = {}): MariadbSourceSpec {
  return { kind: 'mariadb', name: 'db', connection: { host: server.host, port: server.port, user: 'root' }, threads: 2, rowsPerPart: 4000, ...extra };
}

/** What the server's own tool prints of the definitions, minus the lines that name the host or the time. */
async function definitions(server: TestServer, databases: string[]): Promise<string> {
  const text = await server.dump(['--no-data', '--routines', '--triggers', '--events', '--skip-dump-date', '--databases', ...databases]);
  return text
    .split('\n')
    .filter((l) => !l.startsWith('-- Host:') && !l.startsWith('-- Server version'))
    .join('\n');
}

async function grants(server: TestServer): Promise<string> {
  const out: string[] = [];
  for (const account of ["'app'@'%'", "'reader'@'10.0.%'", 'reporting']) out.push(await server.client(`SHOW GRANTS FOR ${account}`));
  return out.join('');
}

test('a database with every type and object comes back identical on another server', async (t) => {
  const [a, b] = await Promise.all([startMariadb(t), startMariadb(t)]);
  await createFixture(a);
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [source(a, { users: true })] });
  const record = saved.snapshot.sources[0]!;
  assert.equal(record.kind, 'mariadb');
  assert.deepEqual(record.database!.databases, FIXTURE_DATABASES);
  assert.equal(record.database!.consistency, 'backup-stage');
  assert.ok(record.database!.binlog?.file, 'the binlog position is recorded');
  assert.ok(record.database!.warnings.some((w) => w.includes('shop.archive') && w.includes('MyISAM')));
  assert.ok(!JSON.stringify(saved.snapshot).includes('app secret'));
  assert.equal((await check(repo, { readData: true })).errors.length, 0);

  const summary = await restoreDatabaseSource(repo, { id: saved.id, snapshot: saved.snapshot }, 'db', {
    connection: { socket: b.socket, user: 'root' },
    users: true,
    threads: 3,
  });
  assert.deepEqual(summary.warnings, []);
  assert.deepEqual(await checksums(b), await checksums(a));
  assert.equal(await definitions(b, FIXTURE_DATABASES), await definitions(a, FIXTURE_DATABASES));
  assert.equal(await grants(b), await grants(a));
  // values the checksums cannot see: sequences' next values, what generated and invisible columns hold
  const probe = 'SELECT NEXTVAL(shop.order_numbers), NEXTVAL(legacy.kundennummer); SELECT SUM(gen_v), SUM(hidden), COUNT(gen_s) FROM shop.all_types; CALL legacy.gruss();';
  assert.equal(await b.client(probe), await a.client(probe));
});
