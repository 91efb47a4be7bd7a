import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { check } from '../../src/snapshot/maintenance/check.js';
import type { SnapshotRef } from '../../src/snapshot/snapshot.js';
import { openSourceReader } from '../../src/snapshot/restore/streamed-source.js';
import { Connection, ServerError } from '../../src/sources/mariadb/connection.js';
import type { MariadbSource } from '../../src/sources/mariadb/dump.js';
import { restoreMariadb, retryLockConflicts, type MariadbRestoreOptions, type MariadbRestoreProgress } from '../../src/sources/mariadb/restore.js';
import { verifyMariadb } from '../../src/sources/mariadb/verify.js';
import { FIXTURE_DATABASES, FIXTURE_TABLES, checksums, createFixture } from '../support/mariadb-fixture.js';
import { startMariadb, type TestServer } from '../support/mariadb-server.js';
import { tempDir } from '../support/helpers.js';
import { createServer, type AddressInfo } from 'node:net';

function source(server: TestServer, extra: Partial<MariadbSource> = {}): MariadbSource {
  return { kind: 'mariadb', name: 'db', connection: { host: server.host, port: server.port, user: 'root' }, threads: 2, rowsPerPart: 4096, ...extra };
}

const restoreDatabaseSource = async (repo: Repository, ref: SnapshotRef, name: string, options: Omit<MariadbRestoreOptions, 'name'>) =>
  restoreMariadb(await openSourceReader(repo, ref, name), { ...options, name });
const verifyDatabaseSource = async (repo: Repository, ref: SnapshotRef, name: string, options: Omit<Parameters<typeof verifyMariadb>[1], 'name'>) =>
  verifyMariadb(await openSourceReader(repo, ref, name), { ...options, name });

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

  let last: MariadbRestoreProgress | undefined;
  const summary = await restoreDatabaseSource(repo, { id: saved.id, snapshot: saved.snapshot }, 'db', {
    connection: { socket: b.socket, user: 'root' },
    users: true,
    threads: 3,
    progress: (p) => (last = { ...p }),
  });
  assert.deepEqual(summary.warnings, []);
  // The progress counts rows out of the dump's total, which the restore reaches.
  assert.ok(summary.rows > 0 && last?.rowsTotal === summary.rows && last.rowsDone === summary.rows, JSON.stringify({ last, rows: summary.rows }));
  assert.deepEqual(await checksums(b), await checksums(a));
  assert.equal(await definitions(b, FIXTURE_DATABASES), await definitions(a, FIXTURE_DATABASES));
  assert.equal(await grants(b), await grants(a));
  // values the checksums cannot see: sequences' next values, what generated and invisible columns hold
  const probe = 'SELECT NEXTVAL(shop.order_numbers), NEXTVAL(legacy.kundennummer); SELECT SUM(gen_v), SUM(hidden), COUNT(gen_s) FROM shop.all_types; CALL legacy.gruss();';
  assert.equal(await b.client(probe), await a.client(probe));

  // Reading every table back the way the dump did gives the dump's bytes, for every type...
  const ref = { id: saved.id, snapshot: saved.snapshot };
  const verdicts = await verifyDatabaseSource(repo, ref, 'db', { connection: { socket: b.socket, user: 'root' } });
  assert.deepEqual(verdicts.filter((v) => !v.equal), []);
  assert.equal(verdicts.length, FIXTURE_TABLES.length + 1, 'every table, the empty one too');
  // ...and one changed value is found.
  await b.client('UPDATE shop.calls SET seconds = seconds + 1 WHERE id = 4242');
  const changed = await verifyDatabaseSource(repo, ref, 'db', { connection: { socket: b.socket, user: 'root' } });
  assert.deepEqual(changed.filter((v) => !v.equal).map((v) => `${v.database}.${v.table}`), ['shop.calls']);
});

test('a dump taken while writers move money between tables is consistent', async (t) => {
  const [server, target] = await Promise.all([startMariadb(t), startMariadb(t)]);
  const rows = 100_000;
  await server.client(`
    CREATE DATABASE bank;
    USE bank;
    CREATE TABLE bank.a (id INT PRIMARY KEY, balance INT NOT NULL) ENGINE=InnoDB;
    CREATE TABLE bank.b (id INT PRIMARY KEY, balance INT NOT NULL) ENGINE=InnoDB;
    INSERT INTO bank.a SELECT seq, 100 FROM seq_1_to_${rows};
    INSERT INTO bank.b SELECT seq, 100 FROM seq_1_to_${rows};`);
  const total = String(2 * rows * 100);

  // Writers keep SUM(a) + SUM(b) constant: every transaction takes from one table and gives to the other.
  let stop = false;
  let transfers = 0;
  const writer = async (seed: number) => {
    const conn = await server.connect();
    let x = seed;
    while (!stop) {
      x = (x * 1103515245 + 12345) % 2147483648;
      const from = 1 + (x % rows);
      const to = 1 + ((x >> 8) % rows);
      const amount = 1 + (x % 7);
      await conn.execute('BEGIN');
      await conn.execute(`UPDATE bank.a SET balance = balance - ${amount} WHERE id = ${from}`);
      await conn.execute(`UPDATE bank.b SET balance = balance + ${amount} WHERE id = ${to}`);
      await conn.execute('COMMIT');
      transfers++;
    }
    await conn.close();
  };
  const writers = [writer(1), writer(2), writer(3)];
  while (transfers < 200) await new Promise((r) => setTimeout(r, 10));

  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const startedAt = transfers;
  const saved = await backup(repo, { sources: [source(server, { databases: ['bank'], rowsPerPart: 4096 })] });
  const during = transfers - startedAt;
  stop = true;
  await Promise.all(writers);
  assert.ok(during > 50, `writers kept writing during the dump (${during} transfers)`);
  assert.equal(saved.snapshot.sources[0]!.database!.consistency, 'backup-stage');

  await restoreDatabaseSource(repo, { id: saved.id, snapshot: saved.snapshot }, 'db', { connection: { socket: target.socket, user: 'root' } });
  const sums = await target.client('SELECT (SELECT SUM(balance) FROM bank.a) + (SELECT SUM(balance) FROM bank.b); SELECT COUNT(*) > 0 FROM bank.a WHERE balance <> 100;');
  assert.deepEqual(sums.trim().split('\n'), [total, '1']);
});

test('nightly dumps are stable: unchanged data adds nothing, a few changed rows add little', async (t) => {
  const server = await startMariadb(t);
  await createFixture(server);
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const spec = source(server, { databases: ['shop'] });
  const first = await backup(repo, { sources: [spec] });
  const firstAdded = first.snapshot.sources[0]!.stats.bytesAdded;

  const unchanged = await backup(repo, { sources: [spec] });
  assert.equal(unchanged.snapshot.sources[0]!.stats.bytesAdded, 0, 'the same data gives the same bytes');

  await server.client(`
    USE shop;
    UPDATE shop.calls SET seconds = seconds + 1 WHERE id IN (17, 30000, 59990);
    INSERT INTO shop.calls SELECT 60000 + seq, 1, NOW(), 1, 'answered', NULL FROM seq_1_to_50;`);
  const changed = await backup(repo, { sources: [spec] });
  const added = changed.snapshot.sources[0]!.stats.bytesAdded;
  assert.ok(added > 0 && added < firstAdded * 0.25, `added ${added} of ${firstAdded}`);
  assert.ok(changed.snapshot.sources[0]!.stats.files > 10, 'the calls table was split into parts');
});

test('a LOAD DATA whose connection is closed between two writes fails at once instead of waiting for the closed socket to drain', async (t) => {
  const server = await startMariadb(t);
  const conn = await server.connect();
  t.after(() => conn.close());
  await conn.execute('CREATE DATABASE drained');
  await conn.execute('CREATE TABLE drained.t (id INT PRIMARY KEY)');
  // An interrupted restore closes its connections while a part's next blob is being read:
  // by the time that blob comes, the socket is closed, and a write to it returns false for good.
  async function* content(): AsyncGenerator<Buffer> {
    yield Buffer.from('1\n');
    conn.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    yield Buffer.from('2\n');
  }
  const outcome = await Promise.race([
    conn.loadLocal("LOAD DATA LOCAL INFILE 'x' INTO TABLE drained.t", content()).then(
      () => 'loaded',
      (err: Error) => `failed: ${err.message}`,
    ),
    new Promise((resolve) => setTimeout(() => resolve('hanging'), 5000)),
  ]);
  assert.match(String(outcome), /^failed: /);
});

test('a restore statement the server rolls back over a lock conflict runs again; other errors do not', async (t) => {
  const server = await startMariadb(t);
  const holder = await server.connect();
  const loader = await server.connect();
  t.after(() => Promise.all([holder.close(), loader.close()]));
  await holder.execute('CREATE DATABASE locks');
  await holder.execute('CREATE TABLE locks.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB');
  await holder.execute('INSERT INTO locks.t VALUES (1, 0)');
  await loader.execute('SET SESSION innodb_lock_wait_timeout = 1');
  // Another session holds the row past the loader's first lock wait (1 s), then lets go.
  await holder.execute('BEGIN');
  await holder.execute('UPDATE locks.t SET v = v + 10 WHERE id = 1');
  const released = new Promise((resolve) => setTimeout(resolve, 1500)).then(() => holder.execute('COMMIT'));
  let tries = 0;
  let undone = 0;
  await retryLockConflicts(
    () => {
      tries++;
      return loader.execute('UPDATE locks.t SET v = v + 1 WHERE id = 1');
    },
    () => undone++,
  );
  await released;
  assert.equal(tries, 2, 'the statement timed out once (error 1205) and ran again');
  assert.equal(undone, 1);
  assert.deepEqual(await loader.queryStrings('SELECT v FROM locks.t WHERE id = 1'), [['11']], 'the rolled-back try left nothing behind');

  let syntaxTries = 0;
  await assert.rejects(
    retryLockConflicts(() => {
      syntaxTries++;
      return loader.execute('UPDATE locks.t SET');
    }),
    (err: unknown) => err instanceof ServerError && err.code === 1064,
  );
  assert.equal(syntaxTries, 1, 'an error that is not a lock conflict is not retried');
});

test('odd schemas come back exactly: a newline in a column name, string literals under --rename-db, grants to PUBLIC', async (t) => {
  const [a, b] = await Promise.all([startMariadb(t), startMariadb(t)]);
  const conn = await a.connect();
  for (const sql of [
    'CREATE DATABASE app',
    'CREATE TABLE app.t (id INT PRIMARY KEY, `a\nb` INT NOT NULL, note VARCHAR(40), KEY `k\nab` (`a\nb`)) ENGINE=InnoDB',
    "INSERT INTO app.t VALUES (1, 10, 'one'), (2, 20, 'see `app`.t'), (3, 30, NULL)",
    "CREATE VIEW app.v AS SELECT id, 'see `app`.x' AS hint, `a\nb` AS ab FROM app.t",
    'GRANT SELECT ON app.* TO PUBLIC',
  ]) await conn.execute(sql);
  await conn.close();
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [source(a, { databases: ['app'], users: true })] });
  const ref = { id: saved.id, snapshot: saved.snapshot };

  // Token by token: a line-by-line reading split the CREATE TABLE inside the name "a<newline>b".
  const summary = await restoreDatabaseSource(repo, ref, 'db', { connection: { socket: b.socket, user: 'root' }, rename: { app: 'app2' }, users: true });
  assert.deepEqual(summary.warnings, []);
  assert.equal(await b.client('SELECT id, `a\nb`, note FROM app2.t ORDER BY id'), await a.client('SELECT id, `a\nb`, note FROM app.t ORDER BY id'));
  assert.match(await b.client('SHOW CREATE TABLE app2.t'), /KEY `k\\nab` \(`a\\nb`\)/);
  // Only names are renamed: the view's string literal still says `app`.
  assert.equal((await b.client("SELECT hint FROM app2.v WHERE id = 1")).trim(), 'see `app`.x');
  assert.match(await b.client("SHOW CREATE VIEW app2.v"), /from `app2`\.`t`/i);
  // PUBLIC is no role to create: its grants are applied as they are.
  assert.match(await b.client('SHOW GRANTS FOR PUBLIC'), /GRANT SELECT ON `app`\.\* TO PUBLIC/);
});

test('system-versioned tables keep their history: every row version with its period, AS OF answers as before', async (t) => {
  const [a, b] = await Promise.all([startMariadb(t), startMariadb(t)]);
  await a.client(
    [
      'CREATE DATABASE crm',
      'CREATE TABLE crm.tickets (id INT PRIMARY KEY, state VARCHAR(20)) WITH SYSTEM VERSIONING',
      'CREATE TABLE crm.agents (id INT PRIMARY KEY, team VARCHAR(20), since TIMESTAMP(6) GENERATED ALWAYS AS ROW START, until TIMESTAMP(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME(since, until)) WITH SYSTEM VERSIONING',
      "INSERT INTO crm.tickets VALUES (1, 'open'), (2, 'open'), (3, 'open')",
      "INSERT INTO crm.agents (id, team) VALUES (1, 'sales'), (2, 'support')",
      'DO SLEEP(0.05)',
      "UPDATE crm.tickets SET state = 'pending' WHERE id = 1",
      "UPDATE crm.agents SET team = 'billing' WHERE id = 2",
      'DO SLEEP(0.05)',
      "UPDATE crm.tickets SET state = 'closed' WHERE id = 1",
      'DELETE FROM crm.tickets WHERE id = 2',
    ].join(';\n'),
  );
  const history = 'SELECT id, state, ROW_START, ROW_END FROM crm.tickets FOR SYSTEM_TIME ALL ORDER BY id, ROW_END; SELECT id, team, since, until FROM crm.agents FOR SYSTEM_TIME ALL ORDER BY id, until';
  const before = await a.client(history);
  assert.equal(before.trim().split('\n').length, 5 + 3, 'five versions of tickets, three of agents');
  const moment = (await a.client("SELECT DATE_FORMAT(MIN(ROW_END) - INTERVAL 1 MICROSECOND, '%Y-%m-%d %H:%i:%s.%f') FROM crm.tickets FOR SYSTEM_TIME ALL WHERE id = 1")).trim();
  const asOf = `SELECT id, state FROM crm.tickets FOR SYSTEM_TIME AS OF TIMESTAMP '${moment}' ORDER BY id`;

  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [source(a, { databases: ['crm'] })] });
  const ref = { id: saved.id, snapshot: saved.snapshot };
  await restoreDatabaseSource(repo, ref, 'db', { connection: { socket: b.socket, user: 'root' } });

  // The restore time used to replace every period, and the history was gone (5 rows became 2).
  assert.equal(await b.client(history), before);
  assert.equal(await b.client(asOf), await a.client(asOf));
  assert.match(await b.client(asOf), /^1\topen$/m);
  const verdicts = await verifyDatabaseSource(repo, ref, 'db', { connection: { socket: b.socket, user: 'root' } });
  assert.deepEqual(verdicts.filter((v) => !v.equal), []);
  assert.equal(verdicts.find((v) => v.table === 'tickets')?.rows, 5);
});

test('a server asking for the password in clear text (PAM) gets it only over a Unix socket or TLS', async (t) => {
  const server = await startMariadb(t);
  await server.client("INSTALL SONAME 'auth_pam'; CREATE USER pamuser@'%' IDENTIFIED VIA pam; CREATE USER pamuser@'localhost' IDENTIFIED VIA pam");
  // Over TCP without TLS the password would cross in clear: refused before it is sent.
  await assert.rejects(Connection.connect({ host: server.host, port: server.port, user: 'pamuser', password: 'not sent' }), /asks for the password in clear text \(dialog\); use TLS or a Unix socket/);
  // Over the socket it is sent, and PAM (no such system user here) says no.
  await assert.rejects(Connection.connect({ socket: server.socket, user: 'pamuser', password: 'sent' }), (err: Error) => !/clear text/.test(err.message) && /Access denied/.test(err.message));
});

test("an account on MySQL's caching_sha2_password gets an error naming what to change, and no password is sent", async (t) => {
  // No MySQL server runs here: a listener that greets as MySQL 8 does (protocol 10, plugin caching_sha2_password).
  const received: Buffer[] = [];
  const fake = createServer((socket) => {
    socket.on('data', (d) => received.push(d));
    const caps = 0x00080000 | 0x00008000 | 0x00000200; // PLUGIN_AUTH | SECURE_CONNECTION | PROTOCOL_41
    const payload = Buffer.concat([
      Buffer.of(10),
      Buffer.from('8.0.36\0', 'latin1'),
      Buffer.from([1, 0, 0, 0]),
      Buffer.alloc(8, 0x61),
      Buffer.of(0),
      Buffer.from([caps & 0xff, (caps >> 8) & 0xff]),
      Buffer.of(0xff, 2, 0),
      Buffer.from([(caps >> 16) & 0xff, (caps >> 24) & 0xff]),
      Buffer.of(21),
      Buffer.alloc(10),
      Buffer.concat([Buffer.alloc(12, 0x62), Buffer.of(0)]),
      Buffer.from('caching_sha2_password\0', 'latin1'),
    ]);
    socket.write(Buffer.concat([Buffer.from([payload.length & 0xff, (payload.length >> 8) & 0xff, payload.length >> 16, 0]), payload]));
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  t.after(() => fake.close());
  const { port } = fake.address() as AddressInfo;
  await assert.rejects(Connection.connect({ host: '127.0.0.1', port, user: 'backup', password: 'never sent', connectTimeoutMs: 5_000 }), /uses MySQL's caching_sha2_password.*IDENTIFIED WITH mysql_native_password/);
  assert.equal(Buffer.concat(received).length, 0, 'nothing was sent to the server');
});

test('a backup user authenticated with ed25519 (client_ed25519) logs in, dumps and restores', async (t) => {
  const [a, b] = await Promise.all([startMariadb(t), startMariadb(t)]);
  await a.client("INSTALL SONAME 'auth_ed25519'; CREATE DATABASE calls; CREATE TABLE calls.c (id INT PRIMARY KEY, agent VARCHAR(20)); INSERT INTO calls.c VALUES (1, 'ana'), (2, 'bo')");
  await a.client("CREATE USER backup@'%' IDENTIFIED VIA ed25519 USING PASSWORD('s3cret pw'); GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, RELOAD, LOCK TABLES, PROCESS, BINLOG MONITOR ON *.* TO backup@'%'");
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const spec = { ...source(a, { databases: ['calls'] }), connection: { host: a.host, port: a.port, user: 'backup', password: 's3cret pw' } };
  const saved = await backup(repo, { sources: [spec] });
  assert.equal(saved.snapshot.sources[0]!.database!.rows, 2);
  await restoreDatabaseSource(repo, { id: saved.id, snapshot: saved.snapshot }, 'db', { connection: { socket: b.socket, user: 'root' } });
  assert.equal(await b.client('SELECT id, agent FROM calls.c ORDER BY id'), await a.client('SELECT id, agent FROM calls.c ORDER BY id'));
  // A wrong password is refused by the server, with its message.
  await assert.rejects(backup(repo, { sources: [{ ...spec, connection: { ...spec.connection, password: 'wrong' } }] }), /Access denied/);
});
