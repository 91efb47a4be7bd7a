import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CALLER_TUNABLES, restoreCallerTunables } from '../../src/cli/launcher-env.js';
import { tempDir } from '../support/helpers.js';

const LAUNCHER = fileURLToPath(new URL('../../../bin/stackvault', import.meta.url));
/** The path the launcher hands to node: its own folder, links resolved, then ../dist/... */
const MAIN_AS_LAUNCHED = `${dirname(realpathSync(LAUNCHER))}/../dist/src/cli/main.js`;
const OURS = 'glibc.malloc.arena_max=1';

/** What bin/stackvault hands to `node`, seen by a stand-in `node` first on PATH. */
async function launch(t: Parameters<typeof tempDir>[0], args: string[], tunables: string | undefined, via = LAUNCHER) {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'node'), '#!/bin/sh\necho "${GLIBC_TUNABLES-unset}"\necho "${STACKVAULT_CALLER_GLIBC_TUNABLES-unset}"\nfor a; do echo "$a"; done\n', { mode: 0o755 });
  const env: NodeJS.ProcessEnv = { PATH: `${dir}:${process.env.PATH}` };
  if (tunables !== undefined) env.GLIBC_TUNABLES = tunables;
  const [own, caller, ...argv] = execFileSync(via, args, { env, encoding: 'utf8' }).split('\n').slice(0, -1);
  const flags = argv.slice(0, argv.findIndex((a) => !a.startsWith('--')));
  const [main, ...rest] = argv.slice(flags.length);
  return { own, caller, flags, main, args: rest };
}

test('bin/stackvault runs main.js with glibc tuned (and V8\'s heaps for a backup, a restore or a check), the arguments as given, and says what the caller had', async (t) => {
  const plain = await launch(t, ['restore', 'latest', '--target', 'a folder with spaces', ''], undefined);
  assert.equal(plain.own, OURS);
  assert.equal(plain.caller, '-');
  assert.deepEqual(plain.flags, ['--max-semi-space-size=1', '--heap-growing-percent=20'], 'a restore holds its heaps small');
  assert.equal(plain.main, MAIN_AS_LAUNCHED);
  assert.deepEqual((await launch(t, ['--repo', 'r', 'check', '--read-data'], undefined)).flags, plain.flags, 'so does a check');
  assert.deepEqual((await launch(t, ['--quiet', 'backup', 'src'], undefined)).flags, ['--max-semi-space-size=8', '--heap-growing-percent=50'], 'a backup holds its heaps smaller');
  assert.deepEqual((await launch(t, ['--quiet', 'snapshots'], undefined)).flags, [], 'other commands keep V8\'s defaults');
  assert.deepEqual(plain.args, ['restore', 'latest', '--target', 'a folder with spaces', '']);

  // The caller's tunables stay, and one of ours the caller set keeps the caller's value.
  const own = await launch(t, [], 'glibc.malloc.hugetlb=1:glibc.malloc.tcache_count=0');
  assert.equal(own.own, 'glibc.malloc.hugetlb=1:glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1');
  assert.equal(own.caller, '+glibc.malloc.hugetlb=1:glibc.malloc.tcache_count=0');
  const arenas = await launch(t, [], 'glibc.malloc.arena_max=8');
  assert.equal(arenas.own, 'glibc.malloc.arena_max=8');
  assert.equal((await launch(t, [], '')).caller, '+');

  // Through a link, as npm installs it (node_modules/.bin/stackvault).
  const linkDir = await tempDir(t);
  await symlink(LAUNCHER, join(linkDir, 'stackvault'));
  assert.equal((await launch(t, ['--version'], undefined, join(linkDir, 'stackvault'))).main, MAIN_AS_LAUNCHED);
  // Through a linked folder (Node would drop "bin/.." before following the link), and by a
  // name without a folder, as `sh stackvault` run in bin/ gives it.
  await symlink(dirname(LAUNCHER), join(linkDir, 'bin'));
  assert.equal((await launch(t, ['--version'], undefined, join(linkDir, 'bin', 'stackvault'))).main, MAIN_AS_LAUNCHED);
  const fakeNode = await tempDir(t);
  await writeFile(join(fakeNode, 'node'), '#!/bin/sh\nfor a; do echo "$a"; done\n', { mode: 0o755 });
  const bare = spawnSync('sh', ['stackvault', '--version'], { cwd: dirname(LAUNCHER), env: { PATH: `${fakeNode}:${process.env.PATH}` }, encoding: 'utf8' });
  assert.equal(bare.stdout.split('\n')[0], './../dist/src/cli/main.js');
});

test('the caller\'s GLIBC_TUNABLES go back to the processes stackvault starts', () => {
  const none: NodeJS.ProcessEnv = { GLIBC_TUNABLES: OURS, [CALLER_TUNABLES]: '-' };
  restoreCallerTunables(none);
  assert.deepEqual(none, {});
  const some: NodeJS.ProcessEnv = { GLIBC_TUNABLES: `x=1:${OURS}`, [CALLER_TUNABLES]: '+x=1' };
  restoreCallerTunables(some);
  assert.deepEqual(some, { GLIBC_TUNABLES: 'x=1' });
  const notLaunched: NodeJS.ProcessEnv = { GLIBC_TUNABLES: 'y=2' };
  restoreCallerTunables(notLaunched);
  assert.deepEqual(notLaunched, { GLIBC_TUNABLES: 'y=2' });
});

test('through bin/stackvault, Node starts tuned and the rclone it starts gets the caller\'s environment', async (t) => {
  const dir = await tempDir(t);
  const seen = join(dir, 'seen');
  // Stands in for rclone: notes the tunables its parent (stackvault's Node) started with,
  // read from what the kernel kept of that environment (glibc cuts the string at each
  // tunable it parses, hence every piece), and its own environment's; then fails, and the
  // command with it.
  const rclone = join(dir, 'rclone');
  await writeFile(
    rclone,
    `#!/bin/sh\ntr '\\0:' '\\n\\n' < /proc/$PPID/environ | sed -n 's/^\\(GLIBC_TUNABLES=\\)\\{0,1\\}\\(glibc\\.\\)/parent: \\2/p' >> ${seen}\necho "rclone: \${GLIBC_TUNABLES-unset}" >> ${seen}\nexit 3\n`,
    { mode: 0o755 },
  );
  const env = { PATH: `${dirname(process.execPath)}:${process.env.PATH}`, HOME: dir, STACKVAULT_CACHE_DIR: dir, STACKVAULT_RCLONE: rclone, STACKVAULT_PASSWORD: 'p' };
  for (const caller of [undefined, 'glibc.malloc.tcache_count=0']) {
    await writeFile(seen, '');
    const run = spawnSync(LAUNCHER, ['snapshots', '--repo', 'rclone:nowhere:repo'], { env: caller === undefined ? env : { ...env, GLIBC_TUNABLES: caller }, encoding: 'utf8', timeout: 60_000 });
    assert.notEqual(run.status, 0, 'rclone failed, so did the command');
    // Each rclone started (the command tries more than once) saw the same.
    const lines = (await readFile(seen, 'utf8')).split('\n').filter(Boolean);
    const each = [...(caller === undefined ? [] : [caller]), ...OURS.split(':')].map((p) => `parent: ${p}`).concat(`rclone: ${caller ?? 'unset'}`);
    assert.ok(lines.length > 0 && lines.length % each.length === 0, `${lines.join('\n')}\n${run.stderr}`);
    for (let i = 0; i < lines.length; i += each.length) assert.deepEqual(lines.slice(i, i + each.length), each);
  }
});
