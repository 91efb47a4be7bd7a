/**
 * Database benchmark: a generated contact-center database (calls, customers, queue
 * events; about 3.4 million rows, 500 MB as text) on a throwaway MariaDB server, dumped
 * and restored by stackvault, by mariadb-dump | mariadb, and by mydumper/myloader (plain
 * and with --compress), all in one run on the same server. Every restore is checked with
 * CHECKSUM TABLE. stackvault and mydumper take turns over three rounds (BENCH_RUNS) and
 * count with their medians; mariadb-dump runs once.
 *
 *   BENCH_DB_ROWS=500000 BENCH_ONLY=database npm run bench      # smaller than the default
 *
 * The second nightly backup follows 1% of rows changing the way a contact center's data
 * changes overnight: the day's calls and queue events are appended and recent calls are
 * updated. For contrast it also reports 1% of rows updated at random across every table,
 * where no chunk-level deduplication can help much.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startMariadb, type TestServer } from '../test/support/mariadb-server.js';
import { STACKVAULT, du, has, medianStep, run, type Step } from './common.js';

const totalRows = Number(process.env.BENCH_DB_ROWS ?? 3_450_000);
const calls = Math.round(totalRows * 0.812);
const customers = Math.round(totalRows * 0.072);
const events = totalRows - calls - customers;
const password = 'benchmark password';
/** Rounds of dump and restore per tool, taken in turns. */
const rounds = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));

function generateSql(): string {
  return `
SET sql_mode = '';
CREATE DATABASE bench CHARACTER SET utf8mb4;
USE bench;
CREATE TABLE agents (id SMALLINT PRIMARY KEY, name VARCHAR(50), team VARCHAR(20), hired DATE);
CREATE TABLE customers (
  id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(80) NOT NULL, email VARCHAR(120) NOT NULL, phone VARCHAR(20),
  city VARCHAR(40), created DATETIME NOT NULL, balance DECIMAL(12,2) NOT NULL, tier ENUM('basic','silver','gold'),
  prefs JSON, notes TEXT, UNIQUE KEY u_email (email), KEY k_city (city));
CREATE TABLE calls (
  id BIGINT AUTO_INCREMENT PRIMARY KEY, agent_id SMALLINT NOT NULL, customer_id INT UNSIGNED, queue VARCHAR(30),
  started DATETIME(3) NOT NULL, wait_s INT, talk_s INT, outcome ENUM('answered','missed','voicemail','transferred'),
  caller VARCHAR(20), cost DECIMAL(10,4), recording_sha BINARY(32), tags SET('vip','complaint','sales','support'),
  KEY k_agent (agent_id, started), KEY k_customer (customer_id), KEY k_started (started));
CREATE TABLE queue_events (
  id BIGINT AUTO_INCREMENT PRIMARY KEY, call_id BIGINT NOT NULL, at TIMESTAMP(6) NOT NULL, kind VARCHAR(20), payload JSON, KEY k_call (call_id));
INSERT INTO agents SELECT seq, CONCAT('Agent ', seq), ELT(1 + seq % 5, 'red', 'blue', 'green', 'night', 'vip'), '2020-01-01' + INTERVAL seq DAY FROM seq_1_to_500;
INSERT INTO customers (name, email, phone, city, created, balance, tier, prefs, notes)
  SELECT CONCAT(ELT(1 + seq % 8, 'Anna', 'Ben', 'Carla', 'Deniz', 'Emil', 'Fatma', 'Georg', 'Hanna'), ' ', ELT(1 + (seq DIV 8) % 8, 'Meyer', 'Schulz', 'Yilmaz', 'Novak', 'Rossi', 'Dubois', 'Smith', 'Kowalski')),
    CONCAT('c', seq, '@example.com'), CONCAT('+49', 1000000000 + seq * 7919 % 900000000), ELT(1 + seq % 6, 'Berlin', 'Hamburg', 'München', 'Köln', 'Wien', 'Zürich'),
    '2018-01-01' + INTERVAL seq * 13 MINUTE, (seq * 7919 % 100000) / 100, ELT(1 + seq % 3, 'basic', 'silver', 'gold'),
    JSON_OBJECT('lang', ELT(1 + seq % 3, 'de', 'en', 'tr'), 'sms', seq % 2 = 0), IF(seq % 4 = 0, NULL, REPEAT(MD5(seq), 1 + seq % 3))
  FROM seq_1_to_${customers};
INSERT INTO calls (agent_id, customer_id, queue, started, wait_s, talk_s, outcome, caller, cost, recording_sha, tags)
  SELECT 1 + seq % 500, 1 + (seq * 7919) % ${customers}, ELT(1 + seq % 4, 'sales', 'support', 'billing', 'vip'), '2024-01-01' + INTERVAL seq * 20 SECOND,
    seq % 300, (seq * 31) % 1800, ELT(1 + seq % 4, 'answered', 'missed', 'voicemail', 'transferred'), CONCAT('+49', 1000000000 + (seq * 104729) % 900000000),
    ((seq * 13) % 10000) / 1000, UNHEX(SHA2(seq, 256)), ELT(1 + seq % 5, '', 'vip', 'complaint', 'sales', 'support,vip')
  FROM seq_1_to_${calls};
INSERT INTO queue_events (call_id, at, kind, payload)
  SELECT 1 + (seq * 3) % ${calls}, '2024-01-01' + INTERVAL seq * 60 SECOND, ELT(1 + seq % 4, 'enqueue', 'offer', 'answer', 'abandon'),
    JSON_OBJECT('position', seq % 20, 'agent', 1 + seq % 500, 'skill', ELT(1 + seq % 3, 'de', 'en', 'tr'))
  FROM seq_1_to_${events};
`;
}

/** One night in a contact center, 1% of all rows: new calls and queue events, recent calls updated. */
function nightlySql(round: number): string {
  const onePercent = Math.round(totalRows / 100);
  const newCalls = Math.round(onePercent * 0.5);
  const newEvents = Math.round(onePercent * 0.2);
  const updated = onePercent - newCalls - newEvents;
  const recent = Math.min(calls, updated * 8);
  return `
USE bench;
UPDATE calls SET outcome = 'answered', talk_s = talk_s + ${round} WHERE id > (SELECT MAX(id) FROM calls) - ${recent} AND id % 8 = ${round % 8};
INSERT INTO calls (agent_id, customer_id, queue, started, wait_s, talk_s, outcome, caller, cost, recording_sha, tags)
  SELECT 1 + seq % 500, 1 + (seq * 7919) % ${customers}, 'support', NOW() - INTERVAL seq SECOND, seq % 300, seq % 1800, 'answered',
    CONCAT('+43', 1000000 + seq), 0.5, UNHEX(SHA2(seq + ${round * 10_000_000}, 256)), 'support' FROM seq_1_to_${newCalls};
INSERT INTO queue_events (call_id, at, kind, payload)
  SELECT ${calls} + 1 + seq % ${newCalls}, NOW(), 'answer', JSON_OBJECT('position', 0, 'agent', 1 + seq % 500) FROM seq_1_to_${newEvents};
`;
}

/** 1% of each table's rows updated at random: the worst case for any chunk-level deduplication. */
function scatteredSql(): string {
  return `
USE bench;
UPDATE calls SET talk_s = talk_s + 1 WHERE id % 100 = 37;
UPDATE customers SET balance = balance + 1 WHERE id % 100 = 37;
UPDATE queue_events SET kind = 'offer' WHERE id % 100 = 37;
`;
}

/**
 * Waits until the server has written back its dirty pages and purged old row versions
 * (at most two minutes), as run() syncs the disk before every step: otherwise whichever
 * tool runs right after the data is generated, or after another tool's restore, pays for
 * that work (our first dump took 10.2 s right after generating the data, 6.5 s in other
 * runs).
 */
async function quiesce(server: TestServer): Promise<void> {
  const status = async (name: string) => Number((await server.client(`SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '${name}'`)).trim() || 0);
  const before = (await server.client('SELECT CONCAT_WS(" ", @@GLOBAL.innodb_max_dirty_pages_pct, @@GLOBAL.innodb_io_capacity, @@GLOBAL.innodb_io_capacity_max)')).trim().split(' ');
  // At its default capacity (200 pages a second) the page cleaner took minutes over what generating the data left.
  await server.client('SET GLOBAL innodb_max_dirty_pages_pct = 0, innodb_io_capacity_max = 100000, innodb_io_capacity = 100000');
  try {
    const started = Date.now();
    for (const until = started + 120_000; Date.now() < until; ) {
      if ((await status('INNODB_BUFFER_POOL_PAGES_DIRTY')) < 100 && (await status('INNODB_HISTORY_LIST_LENGTH')) < 1000) {
        process.stderr.write(`quiet after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    process.stderr.write('the server still had pages to write back after two minutes; measuring anyway\n');
  } finally {
    await server.client(`SET GLOBAL innodb_max_dirty_pages_pct = ${before[0]}, innodb_io_capacity = ${before[1]}, innodb_io_capacity_max = ${before[2]}`);
  }
}

async function checksum(server: TestServer): Promise<string> {
  return (await server.client('CHECKSUM TABLE bench.agents, bench.customers, bench.calls, bench.queue_events EXTENDED')).trim();
}

interface DatabaseResult {
  tool: string;
  dump: Step;
  restore: Step;
  /** bytes the tool's output takes (repository, dump file, dump folder) */
  size: number;
  /** every round's seconds, where it ran more than once */
  runs?: { dump: number[]; restore: number[] };
}

export async function benchDatabase(work: string): Promise<{ lines: string[]; results: unknown }> {
  await mkdir(work, { recursive: true });
  process.stderr.write(`starting a MariaDB server and generating ${totalRows} rows...\n`);
  const server = await startMariadb(undefined, { bufferPool: '2G', binlog: false, extraArgs: ['--innodb-log-file-size=512M'] });
  try {
    await server.client(generateSql());
    await server.client('ANALYZE TABLE bench.agents, bench.customers, bench.calls, bench.queue_events');
    const original = await checksum(server);
    const client = ['--no-defaults', `--socket=${server.socket}`, '-uroot'];
    const dropBench = () => server.client('DROP DATABASE bench');
    const verify = async (tool: string) => {
      if ((await checksum(server)) !== original) throw new Error(`${tool}: the restored database differs from the original`);
    };
    // stackvault, configured like a stack would be; each round's first backup into a repository of its own.
    const svDir = join(work, 'stackvault');
    await mkdir(svDir, { recursive: true });
    const svConfig = (round: number) => join(svDir, `stackvault-${round}.yaml`);
    const svRepo = (round: number) => join(svDir, `repo-${round}`);
    for (let round = 0; round < rounds; round++) {
      await writeFile(
        svConfig(round),
        `stack: bench\nrepository:\n  url: ./repo-${round}\n  password_env: BENCH_PASSWORD\nsources:\n  - name: db\n    type: mariadb\n    socket: ${server.socket}\n    user: root\n    databases: [bench]\n`,
      );
    }
    const sv = (round: number, args: string[]) => run(STACKVAULT, ['--quiet', '--config', svConfig(round), ...args], { BENCH_PASSWORD: password });
    const mydumper = has('mydumper') && has('myloader');
    if (!mydumper) process.stderr.write('mydumper not installed: skipped (apt-get install mydumper)\n');
    const mydumperTool = (tool: string, flags: string[]) => ({
      tool,
      round: async (r: number) => {
        const dir = join(work, `${tool.replace(/\W+/g, '-')}-${r}`);
        const dump = run('mydumper', ['--socket', server.socket, '--user', 'root', '--threads', '2', ...flags, '--database', 'bench', '--outputdir', dir]);
        const size = du(dir);
        await dropBench();
        const restore = run('myloader', ['--socket', server.socket, '--user', 'root', '--threads', '2', '--directory', dir]);
        await verify(tool);
        await rm(dir, { recursive: true });
        return { dump, restore, size };
      },
    });

    // The tools take turns within every round and each counts with its median: one restore
    // of the same tool took 16 s in one run and 24 s in the next, myloader 46 s and 62 s.
    const tools: Array<{ tool: string; round: (r: number) => Promise<Omit<DatabaseResult, 'tool'>> }> = [
      {
        tool: 'stackvault',
        round: async (r) => {
          sv(r, ['init']);
          const dump = sv(r, ['backup']);
          const size = du(svRepo(r));
          await dropBench();
          const restore = sv(r, ['restore', 'latest', '--source', 'db']);
          await verify('stackvault');
          return { dump, restore, size };
        },
      },
      // mydumper with compressed output too: closer to what a repository holds.
      ...(mydumper ? [mydumperTool('mydumper', []), mydumperTool('mydumper -c', ['--compress'])] : []),
    ];
    const runsOf = new Map(tools.map(({ tool }) => [tool, [] as Array<Omit<DatabaseResult, 'tool'>>]));
    for (let r = 0; r < rounds; r++) {
      for (const { tool, round } of tools) {
        process.stderr.write(`${tool} ${r + 1}/${rounds}...\n`);
        await quiesce(server);
        runsOf.get(tool)!.push(await round(r));
      }
    }
    const results: DatabaseResult[] = tools.map(({ tool }) => {
      const all = runsOf.get(tool)!;
      return {
        tool,
        dump: medianStep(all.map((a) => a.dump)),
        restore: medianStep(all.map((a) => a.restore)),
        size: all[0]!.size,
        runs: { dump: all.map((a) => Number(a.dump.seconds.toFixed(3))), restore: all.map((a) => Number(a.restore.seconds.toFixed(3))) },
      };
    });
    // Once: a single-threaded anchor, slower than the others by far.
    if (has('mariadb-dump')) {
      process.stderr.write('mariadb-dump | mariadb...\n');
      await quiesce(server);
      const file = join(work, 'dump.sql');
      const dump = run('sh', ['-c', `mariadb-dump ${client.join(' ')} --single-transaction --quick --routines --triggers --events --databases bench > ${file}`]);
      const size = du(file);
      await dropBench();
      const restore = run('sh', ['-c', `mariadb ${client.join(' ')} < ${file}`]);
      await verify('mariadb');
      results.splice(1, 0, { tool: 'mariadb-dump', dump, restore, size });
    }
    const firstAdded = results[0]!.size;
    const last = rounds - 1;

    // The next nights, for stackvault only: what a second backup adds to the repository.
    process.stderr.write('stackvault, next nights...\n');
    await server.client(nightlySql(1));
    const beforeNightly = du(svRepo(last));
    const nightly = sv(last, ['backup']);
    const nightlyAdded = du(svRepo(last)) - beforeNightly;
    await server.client(scatteredSql());
    const beforeScattered = du(svRepo(last));
    sv(last, ['backup']);
    const scatteredAdded = du(svRepo(last)) - beforeScattered;

    const by = (tool: string) => results.find((r) => r.tool === tool);
    const mine = by('stackvault')!;
    const baselines = ['mydumper', 'mydumper -c'].flatMap((tool) => by(tool) ?? []);
    const lines = [`database: ${totalRows} rows (calls ${calls}, customers ${customers}, queue events ${events}), MariaDB ${(await server.client('SELECT VERSION()')).trim()}; each time the median of ${rounds} alternating rounds (mariadb-dump once)`, ''];
    lines.push(['measure'.padEnd(26), ...results.map((r) => r.tool.padStart(14)), ...baselines.map((b) => `stackvault/${b.tool}`.padStart(24))].join(''));
    const row = (name: string, get: (r: DatabaseResult) => number) =>
      lines.push([name.padEnd(26), ...results.map((r) => get(r).toFixed(2).padStart(14)), ...baselines.map((b) => (get(mine) / get(b)).toFixed(2).padStart(24))].join(''));
    row('dump (s)', (r) => r.dump.seconds);
    row('restore (s)', (r) => r.restore.seconds);
    row('size (MiB)', (r) => r.size / 1048576);
    row('peak RSS dump (MiB)', (r) => r.dump.peakRssMb ?? 0);
    row('peak RSS restore (MiB)', (r) => r.restore.peakRssMb ?? 0);
    lines.push('', 'every round (s):');
    for (const r of results) if (r.runs) lines.push(`  ${r.tool}: dump ${r.runs.dump.map((t) => t.toFixed(2)).join(', ')}; restore ${r.runs.restore.map((t) => t.toFixed(2)).join(', ')}`);
    lines.push(
      '',
      `stackvault second backup after 1% of rows changed (nightly pattern): ${nightly.seconds.toFixed(2)} s, added ${(nightlyAdded / 1048576).toFixed(1)} MiB = ${((100 * nightlyAdded) / firstAdded).toFixed(1)}% of the first`,
      `stackvault backup after 1% of rows updated at random in every table: added ${(scatteredAdded / 1048576).toFixed(1)} MiB = ${((100 * scatteredAdded) / firstAdded).toFixed(1)}% of the first`,
    );
    return {
      lines,
      results: { rows: totalRows, tools: results, nightly: { seconds: nightly.seconds, addedBytes: nightlyAdded, firstBytes: firstAdded }, scatteredAddedBytes: scatteredAdded },
    };
  } finally {
    await server.stop();
  }
}
