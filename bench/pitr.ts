/**
 * Point-in-time recovery: does the binary log archive keep up with a sustained write load,
 * and how long does replaying it take?
 *
 * A MariaDB server (binlog_format=ROW) takes BENCH_PITR_RATE row changes a second
 * (default 5000: transactions of 5 inserted and 5 updated call records, from 4
 * connections) for BENCH_PITR_SECONDS (default 60) while `stackvault run` archives its
 * log with segments every 5 seconds; the archive's lag is read from /api/status every
 * second. Then `restore --to-time` puts the snapshot taken before the load into a second
 * server and replays the whole load; its tables must equal the live server's.
 *
 *   BENCH_ONLY=pitr npm run bench
 *   BENCH_PITR_SECONDS=300 BENCH_PITR_RATE=8000 BENCH_ONLY=pitr npm run bench
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startMariadb, type TestServer } from '../test/support/mariadb-server.js';
import { freePort } from '../test/support/storage-servers.js';
import { runCli } from '../test/support/helpers.js';
import { STACKVAULT } from './common.js';

const SECONDS = Number(process.env.BENCH_PITR_SECONDS ?? 60);
const RATE = Number(process.env.BENCH_PITR_RATE ?? 5000);
const CONNECTIONS = 4;
const ROWS_PER_TRANSACTION = 10;

async function tableChecksum(server: TestServer): Promise<string> {
  return (await server.client('CHECKSUM TABLE bench.calls EXTENDED')).trim().split('\t').pop()!;
}

/** Transactions of 5 inserts and 5 updates, paced to `rate` row changes a second over all connections. */
async function writeLoad(server: TestServer, rate: number, seconds: number): Promise<{ changes: number; seconds: number }> {
  const connections = await Promise.all(Array.from({ length: CONNECTIONS }, () => server.connect()));
  const started = Date.now();
  const end = started + seconds * 1000;
  let changes = 0;
  const perConnection = rate / CONNECTIONS;
  await Promise.all(
    connections.map(async (conn, c) => {
      let done = 0;
      let next = 1 + c;
      while (Date.now() < end) {
        // Paced: ahead of the schedule, wait for it.
        const due = started + (done / perConnection) * 1000;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
        const values = Array.from({ length: 5 }, (_, i) => `(${(c * 7 + i) % 50}, NOW(), ${(done + i) % 600}, 'call ${c}-${done + i}')`).join(',');
        await conn.execute('BEGIN');
        await conn.execute(`INSERT INTO bench.calls (queue, started, seconds, note) VALUES ${values}`);
        await conn.execute(`UPDATE bench.calls SET seconds = seconds + 1, note = CONCAT(note, '+') WHERE id BETWEEN ${next} AND ${next + 4 * CONNECTIONS} AND id % ${CONNECTIONS} = ${c % CONNECTIONS} LIMIT 5`);
        await conn.execute('COMMIT');
        next += 5;
        done += ROWS_PER_TRANSACTION;
        changes += ROWS_PER_TRANSACTION;
      }
    }),
  );
  await Promise.all(connections.map((c) => c.close()));
  return { changes, seconds: (Date.now() - started) / 1000 };
}

export async function benchPitr(work: string): Promise<{ lines: string[]; results: unknown }> {
  await mkdir(work, { recursive: true });
  const live = await startMariadb(undefined, { bufferPool: '1G', extraArgs: ['--binlog-format=ROW', '--sync-binlog=0'] });
  const spare = await startMariadb(undefined, { bufferPool: '1G', binlog: false });
  const port = await freePort();
  const env = { BENCH_PASSWORD: 'bench' };
  let runner: ReturnType<typeof spawn> | undefined;
  try {
    await live.client(
      'CREATE DATABASE bench; CREATE TABLE bench.calls (id BIGINT AUTO_INCREMENT PRIMARY KEY, queue INT NOT NULL, started DATETIME NOT NULL, seconds INT NOT NULL, note VARCHAR(200), KEY (queue)) ENGINE=InnoDB;',
    );
    await live.client(`INSERT INTO bench.calls (queue, started, seconds, note) SELECT seq % 50, NOW(), seq % 600, CONCAT('seed ', seq) FROM seq_1_to_20000`, 'bench');
    await writeFile(
      join(work, 'stackvault.yaml'),
      [
        'stack: bench',
        'repository:',
        '  url: ./repo',
        '  password_env: BENCH_PASSWORD',
        'sources:',
        '  - name: db',
        '    type: mariadb',
        `    socket: ${live.socket}`,
        '    user: root',
        '    databases: [bench]',
        '    binlog: true',
        '    binlog_segment_seconds: 5',
        'schedule:',
        '  backup: "0 3 1 1 *"',
        '  drill: false',
        'runner:',
        `  listen: 127.0.0.1:${port}`,
        '',
      ].join('\n'),
    );
    const cli = (args: string[]) => runCli(args, { cwd: work, env, timeoutMs: 3_600_000 });
    if ((await cli(['init'])).code !== 0) throw new Error('init failed');
    const backup = await cli(['backup']);
    if (backup.code !== 0) throw new Error(`backup failed: ${backup.stderr}`);
    runner = spawn(STACKVAULT, ['run'], { cwd: work, env: { ...process.env, ...env }, stdio: 'ignore' });
    const status = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/api/status`);
      return (await res.json()) as { binlog: Array<{ lagSeconds: number | null; segments: number; bytes: number; coveredUntil: number }> };
    };
    for (let i = 0; i < 100; i++) {
      try {
        if ((await status()).binlog[0]) break;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    process.stderr.write(`pitr: ${RATE} row changes/s for ${SECONDS} s while the runner archives...\n`);
    const lags: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = (await status()).binlog[0]!;
        lags.push(s.lagSeconds ?? Number.POSITIVE_INFINITY);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    const load = await writeLoad(live, RATE, SECONDS);
    const loadEnd = Date.now();
    sampling = false;
    await sampler;
    // Caught up: a segment committed after the last write.
    let caughtUp = Number.NaN;
    for (let i = 0; i < 600; i++) {
      const s = (await status()).binlog[0]!;
      if (s.coveredUntil >= loadEnd) {
        caughtUp = (Date.now() - loadEnd) / 1000;
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const archived = (await status()).binlog[0]!;
    runner.kill('SIGTERM');
    await new Promise((r) => runner!.once('exit', r));
    runner = undefined;

    process.stderr.write('pitr: the snapshot alone, then restore --to-time, into a second server...\n');
    const plainStarted = Date.now();
    const plain = await cli(['restore', 'latest', '--source', 'db', '--db-socket', spare.socket, '--db-user', 'root']);
    const plainSeconds = (Date.now() - plainStarted) / 1000;
    if (plain.code !== 0) throw new Error(`restore failed: ${plain.stderr}`);
    const started = Date.now();
    const restored = await cli(['restore', 'latest', '--source', 'db', '--db-socket', spare.socket, '--db-user', 'root', '--force', '--to-time', new Date(loadEnd).toISOString(), '--json']);
    const replaySeconds = (Date.now() - started) / 1000;
    if (restored.code !== 0) throw new Error(`restore --to-time failed: ${restored.stderr}`);
    const summary = JSON.parse(restored.stdout.trim().split('\n').pop()!) as { rolled_forward: { transactions: number } };
    const equal = (await tableChecksum(live)) === (await tableChecksum(spare));
    if (!equal) {
      const totals = 'SELECT COUNT(*), SUM(seconds), SUM(LENGTH(note)), MAX(id) FROM bench.calls';
      process.stderr.write(`pitr: the tables differ: live ${(await live.client(totals)).trim()}, restored ${(await spare.client(totals)).trim()}\n`);
      process.stderr.write(`pitr: rolled forward ${JSON.stringify(summary)}; archive ${(await cli(['binlog', 'status', '--json'])).stdout}\n`);
      process.stderr.write(`pitr: live gtid ${(await live.client('SELECT @@gtid_binlog_pos')).trim()}\n`);
    }
    const rate = load.changes / load.seconds;
    const maxLag = Math.max(...lags.filter(Number.isFinite));
    const results = {
      targetRate: RATE,
      rowChangesPerSecond: Math.round(rate),
      loadSeconds: load.seconds,
      rowChanges: load.changes,
      transactions: summary.rolled_forward.transactions,
      maxLagSeconds: maxLag,
      caughtUpSeconds: caughtUp,
      segments: archived.segments,
      archivedBytes: archived.bytes,
      restoreSeconds: plainSeconds,
      restoreToTimeSeconds: replaySeconds,
      replaySeconds: replaySeconds - plainSeconds,
      replayShareOfLoad: (replaySeconds - plainSeconds) / load.seconds,
      equal,
    };
    const lines = [
      `point-in-time recovery: ${load.changes} row changes in ${load.seconds.toFixed(1)} s (${Math.round(rate)}/s, target ${RATE}/s), ${summary.rolled_forward.transactions} transactions`,
      `  archive: ${archived.segments} segments, ${(archived.bytes / 2 ** 20).toFixed(1)} MiB; lag at most ${maxLag.toFixed(1)} s during the load (segments every 5 s), complete ${caughtUp.toFixed(1)} s after the last write`,
      `  restore --to-time: ${replaySeconds.toFixed(1)} s, of which the snapshot alone ${plainSeconds.toFixed(1)} s: the replay of the whole load ${(replaySeconds - plainSeconds).toFixed(1)} s = ` +
        `${((replaySeconds - plainSeconds) / load.seconds).toFixed(3)} of the load's duration (target < 0.1); tables equal to the live server: ${equal ? 'yes' : 'NO'}`,
    ];
    return { lines, results };
  } finally {
    runner?.kill('SIGKILL');
    await live.stop();
    await spare.stop();
  }
}
