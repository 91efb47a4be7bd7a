import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { ScheduledJob } from '../../src/runner/daemon.js';
import { JobHistory } from '../../src/runner/history.js';
import { Schedule } from '../../src/runner/schedule.js';
import { statusEndpoints } from '../../src/runner/status.js';
import { tempDir } from '../support/helpers.js';

/** deploy/monitoring/ as shipped: Prometheus rules, their tests, the Grafana dashboard. */
const MONITORING = fileURLToPath(new URL('../../../deploy/monitoring/', import.meta.url));

function promtool(args: string[], input?: string): { code: number | null; out: string } {
  const run = spawnSync('promtool', args, { cwd: MONITORING, input, encoding: 'utf8', timeout: 120_000 });
  if (run.error) throw new Error(`promtool: ${run.error.message} (apt-get install prometheus)`);
  return { code: run.status, out: run.stdout + run.stderr };
}

/** The metrics of a runner whose every job has run: one history, each kind of run recorded. */
async function runnerMetrics(dir: string): Promise<string> {
  const history = new JobHistory(join(dir, 'history.sqlite'));
  try {
    const ran = (job: string, outcome: Parameters<JobHistory['finish']>[1], attempt = 1) => history.finish(history.begin(job, new Date(Date.parse(outcome.finished.toISOString()) - outcome.durationMs), null, attempt), outcome);
    const at = new Date('2026-12-04T02:00:00Z');
    ran('backup', { status: 'failed', finished: at, durationMs: 500, error: 'the share is not mounted' });
    ran('backup', { status: 'success', finished: at, durationMs: 61_000, bytesAdded: 123_456 }, 2);
    ran('retention', { status: 'success', finished: at, durationMs: 900, details: { forgotten: 1, deleted: 0, locksExtended: 12 } });
    ran('check', { status: 'success', finished: at, durationMs: 4_000, details: { packsRead: 3, bytesRead: 50_000_000, errorCount: 0, errors: [] } });
    ran('drill', { status: 'success', finished: at, durationMs: 95_000, details: { rtoMs: 93_500 } });
    const schedule = new Schedule('0 2 * * *', 'UTC');
    const step = (name: string) => ({ name, run: async () => ({}) });
    const jobs: ScheduledJob[] = [
      { name: 'backup', schedule, steps: [step('backup'), step('retention'), step('check')] },
      { name: 'drill', schedule: new Schedule('0 4 * * 0', 'UTC'), steps: [step('drill')] },
    ];
    const next = new Map([['backup', { at: new Date('2026-12-05T02:00:00Z'), scheduledFor: new Date('2026-12-05T02:00:00Z'), catchUp: false, attempt: 1 }]]);
    const endpoints = statusEndpoints({
      stack: 'acme',
      host: 'acme-prod',
      jobs,
      runner: { current: null, next },
      history,
      repository: () => ({ sizeBytes: 5_000_000_000, objects: 1_200, snapshots: 14, immutabilityDays: 30, measured: at.toISOString() }),
      reach: () => ({ reachable: true, at: at.toISOString() }),
      binlog: () => [
        {
          status: { source: 'db', connected: true, coveredUntil: Date.parse('2026-12-04T07:59:00Z'), oldestPendingAt: Date.parse('2026-12-04T07:59:30Z'), segments: 1440, bytes: 250_000_000, lastError: null, position: { file: 'binlog.000012', position: 4711 }, lastContact: Date.parse('2026-12-04T07:59:59Z') },
          maxLagSeconds: 300,
        },
      ],
      now: () => new Date('2026-12-04T08:00:00Z'),
    });
    return endpoints.metrics();
  } finally {
    history.close();
  }
}

/** The metric names an expression uses (ours only: stackvault_...). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bstackvault_[a-z_]+/g)].map((m) => m[0]);
}

test('a binary log archive behind by more than its limit makes /healthz fail and says why', async (t) => {
  const history = new JobHistory(join(await tempDir(t), 'history.sqlite'));
  t.after(() => history.close());
  const now = Date.parse('2026-12-04T08:00:00Z');
  let status = { source: 'db', connected: true, coveredUntil: now - 600_000, oldestPendingAt: now - 400_000 as number | null, segments: 3, bytes: 1, lastError: null as string | null, position: null, lastContact: now - 1000 };
  const endpoints = statusEndpoints({
    stack: 'acme',
    host: 'acme-prod',
    jobs: [],
    runner: { current: null, next: new Map() },
    history,
    repository: () => undefined,
    binlog: () => [{ status, maxLagSeconds: 300 }],
    now: () => new Date(now),
  });
  assert.deepEqual(endpoints.health().problems, ['binary log archive of db is 400 s behind']);
  // Idle and in touch with the server: nothing is at risk.
  status = { ...status, oldestPendingAt: null };
  assert.equal(endpoints.health().healthy, true);
  // Cut off from the server, the archive ages.
  status = { ...status, connected: false, lastError: 'mariadb at 127.0.0.1:3306: the connection was lost', lastContact: now - 600_000 };
  assert.match(endpoints.health().problems[0]!, /600 s behind: mariadb at 127\.0\.0\.1:3306: the connection was lost/);
});

test('the alert rules are valid Prometheus rules and each fires on recorded series (promtool check rules, promtool test rules)', () => {
  const checked = promtool(['check', 'rules', 'alerts.yml']);
  assert.equal(checked.code, 0, checked.out);
  const tested = promtool(['test', 'rules', 'alerts.test.yml']);
  assert.equal(tested.code, 0, tested.out);
  // Every rule has a test in which it fires.
  const rules = (parse(readFileSync(join(MONITORING, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string }> }> }).groups.flatMap((g) => g.rules.map((r) => r.alert));
  const tests = parse(readFileSync(join(MONITORING, 'alerts.test.yml'), 'utf8')) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> };
  const fired = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
  assert.deepEqual(rules.filter((r) => !fired.has(r)), [], 'rules never shown to fire');
});

test("the runner's metrics follow Prometheus' conventions (promtool check metrics), every sample names its stack and host, and the rules and dashboard use only names it exports", async (t) => {
  const metrics = await runnerMetrics(await tempDir(t));
  const linted = promtool(['check', 'metrics'], metrics);
  assert.equal(linted.code, 0, linted.out);
  assert.equal(linted.out.trim(), '', linted.out);
  const samples = metrics.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  assert.ok(samples.length > 20);
  for (const line of samples) assert.match(line, /^stackvault_[a-z_]+\{stack="acme",host="acme-prod"(,(job|source)="[a-z]+")?\} -?[\d.e+-]+$/, line);
  const exported = new Set([...metrics.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
  // Every family has a sample here: a runner whose jobs all ran shows all of them.
  for (const name of exported) assert.ok(samples.some((l) => l.startsWith(`${name}{`)), `${name} has no sample`);

  const rules = (parse(readFileSync(join(MONITORING, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ expr: string }> }> }).groups.flatMap((g) => g.rules.map((r) => r.expr));
  const dashboard = JSON.parse(readFileSync(join(MONITORING, 'dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }>; templating: { list: Array<{ definition?: string }> } };
  const queries = [...rules, ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...dashboard.templating.list.map((v) => v.definition ?? '')];
  const unknown = queries.flatMap(metricNames).filter((name) => !exported.has(name));
  assert.deepEqual([...new Set(unknown)], [], 'names the runner does not export');
  assert.ok(dashboard.panels.length >= 10);
  for (const panel of dashboard.panels) assert.ok(panel.targets.every((t) => t.expr.includes('stack=~"$stack"')), `${panel.title} filters by stack`);
});
