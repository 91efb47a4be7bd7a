import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import type { BinlogSegment } from '../../src/snapshot/binlog-segments.js';
import { executePrune, planPrune } from '../../src/snapshot/maintenance/prune.js';
import { startMariadb, type TestServer } from '../support/mariadb-server.js';
import { CLI, runCli, tempDir, waitFor } from '../support/helpers.js';
import { freePort } from '../support/storage-servers.js';

/** The archiver as an operator runs it, in its own process (so that it can be killed). */
function startArchiver(dir: string, env: Record<string, string>): ChildProcess & { log: () => string } {
  const child = spawn(process.execPath, [CLI, 'binlog', 'archive', '--source', 'db'], {
    cwd: dir,
    env: { ...process.env, STACKVAULT_PASSWORD: undefined, STACKVAULT_REPOSITORY: undefined, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const err: Buffer[] = [];
  child.stderr!.on('data', (d: Buffer) => err.push(d));
  return Object.assign(child, { log: () => Buffer.concat(err).toString('utf8') });
}

async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** Wait past the next whole second: rows written after it carry a later binary log time. */
async function nextSecond(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 150));
}

const rowsOf = async (server: TestServer) => (await server.client('SELECT id, note FROM shop.calls ORDER BY id')).trim();

test('point-in-time recovery: a restore to a second between two writes has exactly the rows before it; a killed archiver, a rotation and a server restart lose and duplicate nothing', async (t) => {
  const live = await startMariadb(t, { extraArgs: ['--binlog-format=ROW'] });
  const spare = await startMariadb(t);
  await live.client('CREATE DATABASE shop; CREATE TABLE shop.calls (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200), amount DECIMAL(10,2)) ENGINE=InnoDB;');
  await live.client("INSERT INTO shop.calls (note, amount) VALUES ('before the snapshot', 1.50), ('also before', 2.25)");
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
      `    host: ${live.host}`,
      `    port: ${live.port}`,
      '    user: root',
      '    databases: [shop]',
      '    binlog: true',
      '    binlog_segment_seconds: 2',
      '',
    ].join('\n'),
  );
  const env = { REPO_PW: 'repo pw' };
  const cli = (args: string[]) => runCli(args, { cwd: dir, env });
  assert.equal((await cli(['init'])).code, 0);
  const backup = await cli(['backup']);
  assert.equal(backup.code, 0, backup.stderr);

  let archiver = startArchiver(dir, env);
  t.after(() => stopProcess(archiver, 'SIGKILL'));
  const archived = async (rows: number) =>
    waitFor(`${rows} rows archived`, async () => {
      const status = await cli(['binlog', 'status', '--json']);
      const chains = JSON.parse(status.stdout).sources[0]?.chains ?? [];
      return chains.length === 1 && chains[0].events >= rows ? chains[0] : undefined;
    }, 60_000, 300);

  // Writes at known seconds.
  await nextSecond();
  await live.client("INSERT INTO shop.calls (note, amount) VALUES ('first after', 3.00)");
  const firstSecond = new Date(Math.floor(Date.now() / 1000) * 1000);
  const afterFirst = await rowsOf(live);
  const firstGtid = (await live.client('SELECT @@gtid_binlog_pos')).trim();
  await nextSecond();
  await live.client("UPDATE shop.calls SET amount = amount + 10 WHERE id = 1; DELETE FROM shop.calls WHERE id = 2; INSERT INTO shop.calls (note) VALUES ('second after')");
  await archived(6);

  // Killed with events read but not committed (a segment waits 2 s): they are read again, never stored twice.
  await live.client("INSERT INTO shop.calls (note) VALUES ('read, not committed')");
  await new Promise((r) => setTimeout(r, 400));
  await stopProcess(archiver, 'SIGKILL');
  await live.client("INSERT INTO shop.calls (note) VALUES ('while the archiver was down')");
  await live.client('FLUSH BINARY LOGS');
  await live.client("INSERT INTO shop.calls (note) VALUES ('after a rotation')");
  await live.restart();
  await live.client("INSERT INTO shop.calls (note, amount) VALUES ('after a server restart', 7.77)");
  archiver = startArchiver(dir, env);
  // Enough transactions for the replay to send its statements in several batches.
  const writer = await live.connect();
  for (let i = 0; i < 1500; i++) await writer.execute(`INSERT INTO shop.calls (note, amount) VALUES ('bulk ${i}', ${i % 100})`);
  await writer.close();
  await nextSecond();
  await live.client("INSERT INTO shop.calls (note) VALUES ('the last one')");
  const lastSecond = new Date(Math.floor(Date.now() / 1000) * 1000);
  const final = await rowsOf(live);
  // Complete once a segment committed after the last write says so.
  await waitFor('the archive to reach the last write', async () => {
    const status = await cli(['binlog', 'status', '--json']);
    const chain = JSON.parse(status.stdout).sources[0]?.chains[0];
    return chain && Date.parse(chain.covered_until) >= lastSecond.getTime() + 1000 ? chain : undefined;
  }, 60_000, 300);
  await stopProcess(archiver, 'SIGTERM');
  assert.doesNotMatch(archiver.log(), /new chain/, 'one chain throughout: no gap');

  const restoreTo = (when: Date) =>
    cli(['restore', 'latest', '--source', 'db', '--db-host', spare.host, '--db-port', String(spare.port), '--db-user', 'root', '--force', '--to-time', when.toISOString(), '--json']);

  // A second between the first and the second write: exactly the rows before it.
  const mid = await restoreTo(new Date(firstSecond.getTime() + 500));
  assert.equal(mid.code, 0, mid.stderr);
  assert.equal(await rowsOf(spare), afterFirst);

  // To the last write: every row, each once, across the kill, the rotation and the restart.
  const end = await restoreTo(new Date(lastSecond.getTime() + 500));
  assert.equal(end.code, 0, end.stderr);
  assert.equal(await rowsOf(spare), final);
  const summary = JSON.parse(end.stdout.trim().split('\n').pop()!);
  assert.ok(summary.rolled_forward.transactions >= 6, JSON.stringify(summary));

  // To a transaction, by its GTID.
  const byGtid = await cli(['restore', 'latest', '--source', 'db', '--db-host', spare.host, '--db-port', String(spare.port), '--force', '--to-gtid', firstGtid]);
  assert.equal(byGtid.code, 0, byGtid.stderr);
  assert.equal(await rowsOf(spare), afterFirst);

  // Prune keeps the packs of the segments: twice, a day ahead and two hours apart (record, then delete), and the archive still replays.
  const openRepo = () => Repository.open(new LocalBackend(join(dir, 'repo')), env.REPO_PW);
  for (const hours of [25, 27]) {
    const repo = await openRepo();
    const plan = await planPrune(repo, { now: new Date(Date.now() + hours * 3_600_000) });
    assert.equal(plan.delete.binlogSegments.length, 0, 'every segment is needed by the kept snapshot');
    await executePrune(repo, plan);
  }
  const afterPrune = await restoreTo(new Date(lastSecond.getTime() + 500));
  assert.equal(afterPrune.code, 0, afterPrune.stderr);
  assert.equal(await rowsOf(spare), final);

  // Past what the archive holds: refused, and the spare server is left as it was.
  const beyond = await restoreTo(new Date(Date.now() + 3_600_000));
  assert.notEqual(beyond.code, 0);
  assert.match(beyond.stderr, /archive reaches only to/);
  assert.equal(await rowsOf(spare), final);

  // A segment gone from the middle: a gap, refused, never skipped.
  const repo = await openRepo();
  const segments = (await readdir(join(dir, 'repo', 'binlog'))).sort();
  const records = await Promise.all(segments.map(async (id) => ({ id, segment: await repo.loadObject<BinlogSegment>('binlog', id) })));
  const middle = records.find((r) => r.segment.events > 0 && r.segment.prev !== null && records.some((o) => o.segment.prev === r.id))!;
  await rm(join(dir, 'repo', 'binlog', middle.id));
  const gap = await restoreTo(new Date(lastSecond.getTime() + 500));
  assert.notEqual(gap.code, 0);
  assert.match(gap.stderr, /missing|gap/);

  // A damaged segment record is found by check, like a damaged snapshot.
  const other = records.find((r) => r.id !== middle.id)!;
  const file = join(dir, 'repo', 'binlog', other.id);
  const bytes = await readFile(file);
  bytes[bytes.length - 20]! ^= 0xff;
  await chmod(file, 0o644);
  await writeFile(file, bytes);
  const checked = await cli(['check']);
  assert.equal(checked.code, 1, checked.stdout + checked.stderr);
  assert.match(checked.stdout + checked.stderr, new RegExp(`binlog/${other.id} is damaged`));
});

test('the task runner archives the binary log while it serves, says how far behind it is in /metrics, /healthz and /api/status, and the drill rolls one snapshot forward to the next', async (t) => {
  const server = await startMariadb(t, { extraArgs: ['--binlog-format=ROW'] });
  await server.client('CREATE DATABASE shop; CREATE TABLE shop.calls (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200));');
  const dir = await tempDir(t);
  const port = await freePort();
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
      `    socket: ${server.socket}`,
      '    user: root',
      '    binlog: true',
      '    binlog_segment_seconds: 1',
      'drill:',
      '  database:',
      `    socket: ${server.socket}`,
      '    user: root',
      'schedule:',
      '  backup: "0 3 1 1 *"',
      '  drill: false',
      'runner:',
      `  listen: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const env = { REPO_PW: 'repo pw' };
  assert.equal((await runCli(['init'], { cwd: dir, env })).code, 0);
  assert.equal((await runCli(['backup'], { cwd: dir, env })).code, 0);
  const runner = spawn(process.execPath, [CLI, 'run'], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => stopProcess(runner, 'SIGKILL'));
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, text: await res.text() };
  };
  const metric = (text: string, name: string) => Number(new RegExp(`^${name}\\{[^}]*source="db"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

  await waitFor('the archiver to connect', async () => (metric((await get('/metrics')).text, 'stackvault_binlog_archive_connected') === 1 ? true : undefined), 60_000, 200);
  await server.client("INSERT INTO shop.calls (note) VALUES ('archived by the runner')");
  const metrics = await waitFor('a segment committed', async () => {
    const text = (await get('/metrics')).text;
    return metric(text, 'stackvault_binlog_archive_segments_total') >= 1 ? text : undefined;
  }, 60_000, 200);
  assert.ok(metric(metrics, 'stackvault_binlog_archive_lag_seconds') < 60, metrics);
  assert.equal((await get('/healthz')).status, 200);
  const status = JSON.parse((await get('/api/status')).text);
  assert.equal(status.binlog[0].source, 'db');
  assert.equal(status.binlog[0].connected, true);

  // The drill rolls the first snapshot forward to the second through the archive, and
  // verifies every table against the second snapshot's dump.
  await server.client("UPDATE shop.calls SET note = 'changed before the second snapshot'; INSERT INTO shop.calls (note) VALUES ('x'), ('y'); DELETE FROM shop.calls WHERE note = 'x'");
  assert.equal((await runCli(['backup'], { cwd: dir, env })).code, 0);
  await server.client("INSERT INTO shop.calls (note) VALUES ('after the second snapshot')");
  await waitFor('the archive to pass the second snapshot', async () => {
    const status = JSON.parse((await get('/api/status')).text);
    return status.binlog[0].lagSeconds === 0 && status.binlog[0].oldestPendingAt === null ? true : undefined;
  }, 60_000, 200);
  const drill = await runCli(['drill', '--json'], { cwd: dir, env });
  assert.equal(drill.code, 0, drill.stderr + drill.stdout);
  const report = JSON.parse(drill.stdout.trim().split('\n').pop()!);
  assert.equal(report.pointInTime.length, 1, drill.stdout);
  assert.ok(report.pointInTime[0].transactions >= 2, drill.stdout);
  assert.equal(report.pointInTime[0].verified, 1);
  assert.ok(report.pointInTime[0].rpoSeconds < 60);
  assert.equal((await server.client("SHOW DATABASES LIKE 'drill%'")).trim(), '', 'the drill removed its databases');

  // SIGTERM commits what was read and stops the runner cleanly.
  await stopProcess(runner, 'SIGTERM');
  assert.equal(runner.exitCode, 0);
});

test('archiving a server without a binary log, or as a user who may not read it, fails at once and says what to change', async (t) => {
  const server = await startMariadb(t, { binlog: false });
  await server.client("CREATE USER 'dumper'@'localhost'; GRANT SELECT ON *.* TO 'dumper'@'localhost';");
  const dir = await tempDir(t);
  const config = (user: string) =>
    ['stack: acme', 'repository:', '  url: ./repo', '  password_env: REPO_PW', 'sources:', '  - name: db', '    type: mariadb', `    socket: ${server.socket}`, `    user: ${user}`, '    binlog: true', ''].join('\n');
  await writeFile(join(dir, 'stackvault.yaml'), config('root'));
  const env = { REPO_PW: 'repo pw' };
  assert.equal((await runCli(['init'], { cwd: dir, env })).code, 0);
  const off = await runCli(['binlog', 'archive', '--source', 'db'], { cwd: dir, env, timeoutMs: 60_000 });
  assert.equal(off.code, 1, off.stderr);
  assert.match(off.stderr, /log_bin is off.*--log-bin/);

  const withLog = await startMariadb(t);
  await withLog.client("CREATE USER 'dumper'@'localhost'; GRANT SELECT ON *.* TO 'dumper'@'localhost';");
  await writeFile(join(dir, 'stackvault.yaml'), config('dumper').replace(server.socket, withLog.socket));
  const denied = await runCli(['binlog', 'archive', '--source', 'db'], { cwd: dir, env, timeoutMs: 60_000 });
  assert.equal(denied.code, 1, denied.stderr);
  assert.match(denied.stderr, /REPLICATION SLAVE|BINLOG MONITOR/);
  // Nothing was written: no segment, and the repository holds only what init made.
  assert.deepEqual(await readdir(join(dir, 'repo', 'binlog')).catch(() => []), []);
});
