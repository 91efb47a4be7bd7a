/**
 * Database benchmark: a generated contact-center database (calls, customers, queue
 * events; about 3.4 million rows, 500 MB as text) on a throwaway MariaDB server, dumped
 * and restored by stackvault, by mariadb-dump | mariadb, and by mydumper/myloader (plain
 * and with --compress), all in one run on the same server. Every restore is checked with
 * CHECKSUM TABLE.
 *
 *   BENCH_DB_ROWS=500000 BENCH_ONLY=database npm run bench      # smaller than the default
 *
 * The second nightly backup follows 1% of rows changing the way a contact center's data
 * changes overnight: the day's calls and queue events are appended and recent calls are
 * updated. For contrast it also reports 1% of rows updated at random across every table,
 * where no chunk-level deduplication can help much.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startMariadb, type TestServer } from '../test/support/mariadb-server.js';
import { STACKVAULT, du, has, run, type Step } from './common.js';

const totalRows = Number(process.env.BENCH_DB_ROWS ?? 3_450_000);
const calls = Math.round(totalRows * 0.812);
const customers = Math.round(totalRows * 0.072);
const events = totalRows - calls - customers;
const password = 'benchmark password';

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

async function checksum(server: TestServer): Promise<string> {
  return (await server.client('CHECKSUM TABLE bench.agents, bench.customers, bench.calls, bench.queue_events EXTENDED')).trim();
}

interface DatabaseResult {
  tool: string;
  dump: Step;
  restore: Step;
  /** bytes the tool's output takes (repository, dump file, dump folder) */
  size: number;
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
    const results: DatabaseResult[] = [];

    // stackvault, configured like a stack would be
    const svDir = join(work, 'stackvault');
    await mkdir(svDir, { recursive: true });
    await writeFile(
      join(svDir, 'stackvault.yaml'),
      `stack: bench\nrepository:\n  url: ./repo\n  password_env: BENCH_PASSWORD\nsources:\n  - name: db\n    type: mariadb\n    socket: ${server.socket}\n    user: root\n    databases: [bench]\n`,
    );
    const sv = (args: string[]) => run(STACKVAULT, ['--quiet', '--config', join(svDir, 'stackvault.yaml'), ...args], { BENCH_PASSWORD: password });
    process.stderr.write('stackvault...\n');
    sv(['init']);
    const svDump = sv(['backup']);
    const firstAdded = du(join(svDir, 'repo'));
    await dropBench();
    const svRestore = sv(['restore', 'latest', '--source', 'db']);
    await verify('stackvault');
    results.push({ tool: 'stackvault', dump: svDump, restore: svRestore, size: firstAdded });

    if (has('mariadb-dump')) {
      process.stderr.write('mariadb-dump | mariadb...\n');
      const file = join(work, 'dump.sql');
      const dump = run('sh', ['-c', `mariadb-dump ${client.join(' ')} --single-transaction --quick --routines --triggers --events --databases bench > ${file}`]);
      const size = du(file);
      await dropBench();
      const restore = run('sh', ['-c', `mariadb ${client.join(' ')} < ${file}`]);
      await verify('mariadb');
      results.push({ tool: 'mariadb-dump', dump, restore, size });
    }
    if (has('mydumper') && has('myloader')) {
      process.stderr.write('mydumper/myloader -t 2...\n');
      const dir = join(work, 'mydumper');
      const dump = run('mydumper', ['--socket', server.socket, '--user', 'root', '--threads', '2', '--database', 'bench', '--outputdir', dir]);
      const size = du(dir);
      await dropBench();
      const restore = run('myloader', ['--socket', server.socket, '--user', 'root', '--threads', '2', '--directory', dir]);
      await verify('myloader');
      results.push({ tool: 'mydumper', dump, restore, size });

      // The same with compressed output: closer to what a repository holds.
      process.stderr.write('mydumper -c/myloader -t 2...\n');
      const compressedDir = join(work, 'mydumper-c');
      const compressedDump = run('mydumper', ['--socket', server.socket, '--user', 'root', '--threads', '2', '--compress', '--database', 'bench', '--outputdir', compressedDir]);
      const compressedSize = du(compressedDir);
      await dropBench();
      const compressedRestore = run('myloader', ['--socket', server.socket, '--user', 'root', '--threads', '2', '--directory', compressedDir]);
      await verify('myloader (compressed)');
      results.push({ tool: 'mydumper -c', dump: compressedDump, restore: compressedRestore, size: compressedSize });
    } else {
      process.stderr.write('mydumper not installed: skipped (apt-get install mydumper)\n');
    }

    // The next nights, for stackvault only: what a second backup adds to the repository.
    process.stderr.write('stackvault, next nights...\n');
    await server.client(nightlySql(1));
    const nightly = sv(['backup']);
    const nightlyAdded = du(join(svDir, 'repo')) - firstAdded;
    await server.client(scatteredSql());
    const beforeScattered = du(join(svDir, 'repo'));
    sv(['backup']);
    const scatteredAdded = du(join(svDir, 'repo')) - beforeScattered;

    const by = (tool: string) => results.find((r) => r.tool === tool);
    const mine = by('stackvault')!;
    const baselines = ['mydumper', 'mydumper -c'].flatMap((tool) => by(tool) ?? []);
    const lines = [`database: ${totalRows} rows (calls ${calls}, customers ${customers}, queue events ${events}), MariaDB ${(await server.client('SELECT VERSION()')).trim()}`, ''];
    lines.push(['measure'.padEnd(26), ...results.map((r) => r.tool.padStart(14)), ...baselines.map((b) => `stackvault/${b.tool}`.padStart(24))].join(''));
    const row = (name: string, get: (r: DatabaseResult) => number) =>
      lines.push([name.padEnd(26), ...results.map((r) => get(r).toFixed(2).padStart(14)), ...baselines.map((b) => (get(mine) / get(b)).toFixed(2).padStart(24))].join(''));
    row('dump (s)', (r) => r.dump.seconds);
    row('restore (s)', (r) => r.restore.seconds);
    row('size (MiB)', (r) => r.size / 1048576);
    row('peak RSS dump (MiB)', (r) => r.dump.peakRssMb ?? 0);
    row('peak RSS restore (MiB)', (r) => r.restore.peakRssMb ?? 0);
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
