import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const MODULE = new URL('../../src/cli/unsettled-exit.js', import.meta.url).href;

/** A Node process that registers the report, then runs `body` as its top-level code. */
function runWithReport(body: string) {
  const script = `import { reportUnsettledExit } from ${JSON.stringify(MODULE)};\nreportUnsettledExit();\n${body}`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
}

test('a command left waiting on work nothing can finish says so, instead of a silent exit code 13', () => {
  const stuck = runWithReport('await new Promise(() => {});');
  assert.equal(stuck.status, 13);
  assert.match(stuck.stderr, /^stackvault: internal error: the command stopped before it finished.*exit code 13.*This is a bug in stackvault/);

  const done = runWithReport('await new Promise((resolve) => setTimeout(resolve, 10));');
  assert.equal(done.status, 0);
  assert.equal(done.stderr, '');

  const failed = runWithReport('process.exitCode = 1;');
  assert.equal(failed.status, 1);
  assert.equal(failed.stderr, '');
});
