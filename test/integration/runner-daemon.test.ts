import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parse, stringify } from 'yaml';
import { JobHistory, type RunRecord } from '../../src/runner/history.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { CLI, makeRichTree, pseudoRandom, runCli, tempDir, waitFor } from '../support/helpers.js';
import { createFixture } from '../support/mariadb-fixture.js';
import { startMariadb } from '../support/mariadb-server.js';

interface Daemon {
  child: ChildProcess;
  url: Promise<string>;
  output: () => string;
  exited: Promise<number | null>;
}

/** `stackvault run` as a real process; its status URL comes from its first log lines. */
function startDaemon(t: TestContext, dir: string, env: Record<string, string>): Daemon {
  const child = spawn(process.execPath, [CLI, 'run'], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(output);
      if (m) resolve(m[1]!);
    });
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    void exited.then((code) => reject(new Error(`the daemon exited (${code}) before serving:\n${output}`)));
  });
  url.catch(() => undefined);
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, url, output: () => output, exited };
}

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as T };
}

interface Status {
  current: { step: string } | null;
  recent: RunRecord[];
}

async function stack(t: TestContext, extra: Record<string, unknown>, data: (dir: string) => Promise<void>): Promise<{ dir: string; env: Record<string, string> }> {
  const dir = await tempDir(t);
  await data(join(dir, 'data'));
  const config = {
    stack: 'acme',
    repository: { url: './repo', password_env: 'SV_TEST_PASSWORD' },
    sources: [{ name: 'data', type: 'files', path: './data' }],
    runner: { listen: '127.0.0.1:0' },
    ...extra,
  };
  await writeFile(join(dir, 'stackvault.yaml'), stringify(config));
  const env = { SV_TEST_PASSWORD: 'runner test password' };
  return { dir, env };
}

const successes = (s: Status, job: string) => s.recent.filter((r) => r.job === job && r.status === 'success').length;

test('a real daemon on a one-second schedule backs up, forgets, checks, drills, and reports health and metrics', async (t) => {
  const { dir, env } = await stack(t, { schedule: { backup: '* * * * * *', drill: '*/2 * * * * *', check_subset: '100%' }, retention: { keep_last: 2 } }, async (data) => {
    await mkdir(join(data, 'config'), { recursive: true });
    await writeFile(join(data, 'config', 'app.ini'), 'queue=support\n');
    await writeFile(join(data, 'prompts.bin'), pseudoRandom(3, 2_000_000));
  });
  assert.equal((await runCli(['init'], { cwd: dir, env })).code, 0);
  const daemon = startDaemon(t, dir, env);
  const url = await daemon.url;
  // The start-up line says when every job runs next.
  const startLine = await waitFor('the start-up line', async () => daemon.output().split('\n').find((l) => l.includes('task runner started')));
  const started = JSON.parse(startLine) as { next: Record<string, string> };
  assert.deepEqual(Object.keys(started.next).sort(), ['backup', 'drill']);
  for (const at of Object.values(started.next)) assert.ok(Date.parse(at) > 0, at);
  const status = await waitFor('three backups and a drill', async () => {
    const s = (await getJson<Status>(`${url}/api/status`)).body;
    return successes(s, 'backup') >= 3 && successes(s, 'drill') >= 1 && successes(s, 'check') >= 3 ? s : undefined;
  });
  assert.ok(!status.recent.some((r) => r.status === 'failed'), JSON.stringify(status.recent.filter((r) => r.status === 'failed')));
  // check_subset reads that share of packs back: the nightly check verifies data, not only structure.
  const checked = status.recent.find((r) => r.job === 'check' && r.status === 'success')!;
  const verified = checked.details as { packs: number; packsRead: number; bytesRead: number };
  assert.ok(verified.packsRead > 0 && verified.packsRead === verified.packs && verified.bytesRead > 0, `the scheduled check read: ${JSON.stringify(verified)}`);
  const drill = status.recent.find((r) => r.job === 'drill' && r.status === 'success')!;
  const report = drill.details as { rtoMs: number; filesVerified: number; bytesVerified: number };
  assert.equal(report.filesVerified, 2);
  assert.equal(report.bytesVerified, 2_000_014);
  assert.ok(report.rtoMs >= 0);

  const health = await getJson<{ status: string }>(`${url}/healthz`);
  assert.deepEqual([health.status, health.body.status], [200, 'ok']);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  assert.match(metrics, /^stackvault_job_last_success_timestamp_seconds\{stack="acme",host="[^"]+",job="backup"\} \d+(\.\d+)?$/m);
  assert.match(metrics, /^stackvault_job_last_duration_seconds\{stack="acme",host="[^"]+",job="check"\} [\d.e-]+$/m);
  assert.match(metrics, /^stackvault_backup_added_bytes\{stack="acme",host="[^"]+"\} \d+$/m);
  assert.match(metrics, /^stackvault_repository_size_bytes\{stack="acme",host="[^"]+"\} [1-9]\d+$/m);
  assert.match(metrics, /^stackvault_snapshots\{stack="acme",host="[^"]+"\} [1-3]$/m, 'retention keeps the last two (and the one just made)');
  assert.match(metrics, /^stackvault_drill_rto_seconds\{stack="acme",host="[^"]+"\} [\d.e-]+$/m);
  assert.match(metrics, /^stackvault_check_verified_packs\{stack="acme",host="[^"]+"\} [1-9]\d*$/m);
  assert.match(metrics, /^stackvault_check_verified_bytes\{stack="acme",host="[^"]+"\} [1-9]\d+$/m);
  assert.match(metrics, /^stackvault_healthy\{stack="acme",host="[^"]+"\} 1$/m);

  daemon.child.kill('SIGTERM');
  assert.equal(await daemon.exited, 0, daemon.output());
  const history = new JobHistory(join(dir, '.stackvault', 'history.sqlite'));
  t.after(() => history.close());
  assert.ok(!history.recent(1000).some((r) => r.status === 'running'), 'SIGTERM leaves no run open');
  assert.equal((await runCli(['check', '--read-data'], { cwd: dir, env })).code, 0);
  // The stack's name, not the machine's (or a runner container's id): one lineage for retention.
  const hosts = (JSON.parse((await runCli(['snapshots', '--json'], { cwd: dir, env })).stdout) as Array<{ host: string }>).map((s) => s.host);
  assert.deepEqual([...new Set(hosts)], ['acme']);
});

test('SIGKILL during a backup breaks nothing: the restarted daemon marks it interrupted and retries it at once', async (t) => {
  const { dir, env } = await stack(t, { schedule: { backup: '*/2 * * * * *', drill: false, check_subset: false } }, async (data) => {
    await makeRichTree(data);
    for (let i = 0; i < 6; i++) await writeFile(join(data, `blob-${i}.bin`), pseudoRandom(100 + i, 12_000_000));
  });
  assert.equal((await runCli(['init'], { cwd: dir, env })).code, 0);
  const first = startDaemon(t, dir, env);
  const url = await first.url;
  await waitFor('a backup in progress', async () => ((await getJson<Status>(`${url}/api/status`)).body.current?.step === 'backup' ? true : undefined));
  await new Promise((r) => setTimeout(r, 300));
  first.child.kill('SIGKILL');
  await first.exited;
  assert.equal((await runCli(['check'], { cwd: dir, env })).code, 0, 'the repository is valid after the kill');

  // Nightly from now on: only a retry can make the next backup before tomorrow.
  const config = parse(await readFile(join(dir, 'stackvault.yaml'), 'utf8')) as { schedule: Record<string, unknown> };
  config.schedule = { ...config.schedule, backup: '0 2 * * *', time_zone: 'UTC' };
  await writeFile(join(dir, 'stackvault.yaml'), stringify(config));
  const second = startDaemon(t, dir, env);
  const url2 = await second.url;
  const status = await waitFor('a backup after the restart', async () => {
    const s = (await getJson<Status>(`${url2}/api/status`)).body;
    return successes(s, 'backup') >= 1 ? s : undefined;
  });
  assert.ok(status.recent.some((r) => r.job === 'backup' && r.status === 'interrupted'), 'the killed run is on record as interrupted');
  assert.equal(status.recent.find((r) => r.job === 'backup' && r.status === 'success')!.attempt, 2, 'the success is the retry');
  const health = await getJson<{ status: string }>(`${url2}/healthz`);
  assert.deepEqual([health.status, health.body.status], [200, 'ok']);
  assert.match(await (await fetch(`${url2}/metrics`)).text(), /^stackvault_job_retries_total\{stack="acme",host="[^"]+",job="backup"\} 1$/m);
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0);
  assert.equal((await runCli(['check', '--read-data'], { cwd: dir, env })).code, 0);
  assert.equal((await runCli(['restore', 'latest', '--target', join(dir, 'restored')], { cwd: dir, env })).code, 0);
  assert.deepEqual((await compareTrees(join(dir, 'data'), join(dir, 'restored', 'data'), { owners: process.getuid?.() === 0 })).differences, []);
});

test('a failing backend sends a webhook and a fail ping, and turns /healthz red', async (t) => {
  const received: Array<{ path: string; body: string }> = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => receiver.close(() => r())));
  const hooks = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
  // The repository was never created: every backup fails.
  const { dir, env } = await stack(
    t,
    { schedule: { backup: '* * * * * *', drill: false }, notify: { webhook: `${hooks}/hook`, ping_url: `${hooks}/ping/abc` } },
    async (data) => {
      await mkdir(data, { recursive: true });
      await writeFile(join(data, 'file.txt'), 'x');
    },
  );
  const daemon = startDaemon(t, dir, env);
  const url = await daemon.url;
  const hook = await waitFor('a webhook', async () => received.find((r) => r.path === '/hook'));
  const event = JSON.parse(hook.body) as { stack: string; job: string; status: string; error: string };
  assert.equal(event.stack, 'acme');
  assert.equal(event.job, 'backup');
  assert.equal(event.status, 'failed');
  assert.match(event.error, /no repository at/);
  await waitFor('the fail ping', async () => received.find((r) => r.path === '/ping/abc/fail'));
  assert.ok(received.some((r) => r.path === '/ping/abc/start'));
  const health = await getJson<{ status: string; problems: string[] }>(`${url}/healthz`);
  assert.equal(health.status, 503);
  assert.equal(health.body.status, 'failing');
  assert.match(health.body.problems.join('\n'), /backup failed/);
  assert.match(await (await fetch(`${url}/metrics`)).text(), /^stackvault_job_last_success\{stack="acme",host="[^"]+",job="backup"\} 0$/m);
  daemon.child.kill('SIGTERM');
  assert.equal(await daemon.exited, 0);
});

test('a restore drill restores files and databases into scratch places, verifies them and measures the time', async (t) => {
  const server = await startMariadb(t);
  await createFixture(server);
  const { dir, env } = await stack(
    t,
    {
      sources: [
        { name: 'data', type: 'files', path: './data' },
        { name: 'db', type: 'mariadb', socket: server.socket, user: 'root', databases: ['shop'] },
      ],
      drill: { target: './drill', database: { socket: server.socket, user: 'root' } },
    },
    (data) => makeRichTree(data, 9),
  );
  assert.equal((await runCli(['init'], { cwd: dir, env })).code, 0);
  const backedUp = await runCli(['run', '--once', 'backup'], { cwd: dir, env });
  assert.equal(backedUp.code, 0, backedUp.stdout + backedUp.stderr);
  const drilled = await runCli(['run', '--once', 'drill'], { cwd: dir, env });
  assert.equal(drilled.code, 0, drilled.stdout + drilled.stderr);

  const history = new JobHistory(join(dir, '.stackvault', 'history.sqlite'));
  t.after(() => history.close());
  const drill = history.last('drill')!;
  assert.equal(drill.status, 'success', drill.error ?? '');
  const report = drill.details as { rtoMs: number; filesVerified: number; databases: Array<{ rows: number; tables: number; verified: number; databases: Array<{ to: string }> }> };
  assert.ok(report.filesVerified >= 10);
  assert.ok(report.rtoMs > 0);
  const db = report.databases[0]!;
  assert.deepEqual(db.databases.map((d) => d.to), ['drill_shop']);
  assert.equal(db.rows, Number((await server.client('SELECT (SELECT COUNT(*) FROM shop.all_types) + (SELECT COUNT(*) FROM shop.calls) + (SELECT COUNT(*) FROM shop.call_notes) + (SELECT COUNT(*) FROM shop.customers) + (SELECT COUNT(*) FROM shop.orders) + (SELECT COUNT(*) FROM shop.no_key) + (SELECT COUNT(*) FROM shop.archive) + (SELECT COUNT(*) FROM shop.big_blob)')).trim()));
  assert.equal(db.verified, db.tables);
  assert.ok(db.tables >= 8);
  assert.doesNotMatch(await server.client('SHOW DATABASES'), /drill_/, 'the scratch databases are dropped');
  assert.deepEqual((await import('node:fs/promises').then((fs) => fs.readdir(join(dir, 'drill')))).sort(), ['.stackvault-drill'], 'the scratch folder is emptied');
});

test('a drill without a configured target leaves no temporary folder behind', async (t) => {
  const { dir, env } = await stack(t, { schedule: { backup: '0 2 * * *', drill: '0 4 * * 0', check_subset: false } }, async (data) => {
    await mkdir(data, { recursive: true });
    await writeFile(join(data, 'app.ini'), 'queue=support\n');
  });
  const scratch = join(dir, 'tmp');
  await mkdir(scratch);
  const withTmp = { ...env, TMPDIR: scratch };
  assert.equal((await runCli(['init'], { cwd: dir, env: withTmp })).code, 0);
  assert.equal((await runCli(['run', '--once', 'backup'], { cwd: dir, env: withTmp })).code, 0);
  const drilled = await runCli(['run', '--once', 'drill'], { cwd: dir, env: withTmp });
  assert.equal(drilled.code, 0, drilled.stdout + drilled.stderr);
  assert.match(drilled.stdout, /"job":"drill".*"msg":"job success"/);
  assert.deepEqual(await readdir(scratch), []);
});

test('beyond loopback, /metrics and /api/status need the bearer token; /healthz stays open', async (t) => {
  const { dir, env } = await stack(t, { schedule: { backup: '0 2 * * *', drill: false, check_subset: false }, runner: { listen: '0.0.0.0:0' } }, async (data) => {
    await mkdir(data, { recursive: true });
    await writeFile(join(data, 'app.ini'), 'queue=support\n');
  });
  assert.equal((await runCli(['init'], { cwd: dir, env })).code, 0);
  const open = startDaemon(t, dir, env);
  const openUrl = await open.url;
  assert.equal((await fetch(`${openUrl}/healthz`)).status, 200);
  const refused = await fetch(`${openUrl}/metrics`);
  assert.equal(refused.status, 403);
  assert.match(await refused.text(), /needs a bearer token \(runner\.token_file, STACKVAULT_RUNNER_TOKEN_FILE or STACKVAULT_RUNNER_TOKEN\)/);
  open.child.kill('SIGTERM');
  assert.equal(await open.exited, 0);

  const withToken = startDaemon(t, dir, { ...env, STACKVAULT_RUNNER_TOKEN: 'metrics-secret' });
  const url = await withToken.url;
  assert.equal((await fetch(`${url}/api/status`)).status, 401);
  assert.equal((await fetch(`${url}/api/status`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
  const metrics = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer metrics-secret' } });
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /stackvault_healthy/);
  assert.equal((await fetch(`${url}/healthz`)).status, 200);
  withToken.child.kill('SIGTERM');
  assert.equal(await withToken.exited, 0);
});
