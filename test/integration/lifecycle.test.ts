import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { Compose, type ComposeProject } from '../../src/stack/compose.js';
import { buildExampleImages, startPodman } from '../support/container-engine.js';
import { CLI, runCli, tempDir, waitFor, type CliResult } from '../support/helpers.js';
import { startMariadb } from '../support/mariadb-server.js';
import { freePort } from '../support/storage-servers.js';

const run = promisify(execFile);
const EXAMPLE = fileURLToPath(new URL('../../../examples/contact-center/', import.meta.url));
const VENDOR = join(EXAMPLE, 'vendor');

const git = (cwd: string, ...args: string[]) =>
  run('git', ['-c', 'user.name=operator', '-c', 'user.email=operator@example.com', ...args], { cwd, timeout: 60_000 }).then((r) => r.stdout.trim());

test('the one procedure with real containers: install, backup, update with migrations, a failing update, disaster recovery, rollback', { timeout: 1_800_000 }, async (t) => {
  const engine = await startPodman(t);
  const images = await buildExampleImages(engine);
  const dir = await tempDir(t);
  const releases = join(dir, 'vendor-releases');
  const backups = join(dir, 'backup-repository');
  const origin = join(dir, 'stack.git');
  const hostA = join(dir, 'host-a');
  const hostB = join(dir, 'host-b');
  const env = { ...engine.env, STACKVAULT_PASSWORD: 'customer secret', STACKVAULT_RELEASE_PASSWORD: 'vendor secret' };
  const cli = async (cwd: string, ...args: string[]): Promise<CliResult> => runCli(args, { cwd, env, timeoutMs: 600_000 });
  const cliWith = async (extra: Record<string, string>, cwd: string, ...args: string[]): Promise<CliResult> => runCli(args, { cwd, env: { ...env, ...extra }, timeoutMs: 600_000 });
  const ok = async (cwd: string, ...args: string[]): Promise<CliResult> => {
    const result = await cli(cwd, ...args);
    assert.equal(result.code, 0, `stackvault ${args.join(' ')}: ${result.stderr}`);
    return result;
  };
  const compose = await Compose.detect(engine.env);
  const project = (host: string): ComposeProject => ({ name: 'example-contact-center', files: [join(host, 'docker-compose.yml')], directory: host });
  engine.defer(() => compose.down(project(hostA), { volumes: true }));
  engine.defer(() => compose.down(project(hostB), { volumes: true }));
  const webPort = await freePort();
  let host = hostA;
  // The web service's page, at its address in the stack's network.
  const status = async (): Promise<string> => (await fetch(`http://${await compose.serviceAddress(project(host), 'web')}:8080/cgi-bin/status`)).text();
  const sql = async (host: string, statement: string): Promise<string> => {
    const db = (await compose.containers(project(host))).find((c) => c.Config.Labels['com.docker.compose.service'] === 'db')!;
    const result = await compose.engine.exec(db.Id, ['mariadb', '-uroot', '-pdb-secret', '-N', '-e', statement]);
    assert.equal(result.exitCode, 0, result.output);
    return result.output.trim();
  };

  await t.test('the vendor publishes releases 1 and 2: vanilla data, vanilla database, migrations', async () => {
    assert.equal((await runCli(['init', '--repo', releases], { env: { STACKVAULT_PASSWORD: 'vendor secret' } })).code, 0);
    const server = await startMariadb(t);
    const vendorConfig = join(dir, 'vendor.yaml');
    await writeFile(
      vendorConfig,
      stringify({ stack: 'vendor-ci', repository: { url: releases }, sources: [{ name: 'vanilla', type: 'mariadb', host: server.host, port: server.port, databases: ['contactcenter'] }] }),
    );
    for (const version of ['1', '2']) {
      await server.client('DROP DATABASE IF EXISTS contactcenter');
      await server.client(await readFile(join(VENDOR, 'releases', version, 'schema.sql'), 'utf8'));
      const published = await runCli(['release', 'publish', '--config', vendorConfig, '--application', 'contact-center', '--version', version, '--database', 'vanilla', join(VENDOR, 'releases', version)], {
        env: { STACKVAULT_PASSWORD: 'vendor secret' },
      });
      assert.equal(published.code, 0, published.stderr);
    }
  });

  await t.test('a new install: up on an empty host brings the vanilla release in and starts a healthy stack', async () => {
    await run('git', ['init', '--quiet', '--bare', origin]);
    await run('git', ['clone', '--quiet', origin, hostA]);
    for (const f of ['stackvault.yaml', 'docker-compose.yml', '.gitignore']) await copyFile(join(EXAMPLE, f), join(hostA, f));
    const config = parse(await readFile(join(hostA, 'stackvault.yaml'), 'utf8')) as Record<string, any>;
    config.application.images = { '1': { WEB_IMAGE: images.web1, DB_IMAGE: images.db }, '2': { WEB_IMAGE: images.web2, DB_IMAGE: images.db } };
    config.release_store.url = releases;
    config.repository.url = backups;
    // Segments every 2 s instead of 60: the archive keeps up within the test's patience.
    config.sources.find((s: { name: string }) => s.name === 'db').binlog_segment_seconds = 2;
    await writeFile(join(hostA, 'stackvault.yaml'), stringify(config));
    await writeFile(join(hostA, '.env'), `WEB_PORT=${webPort}\n`);
    await git(hostA, 'add', '.');
    await git(hostA, 'commit', '--quiet', '-m', 'example-contact-center: version 1');
    await git(hostA, 'push', '--quiet', 'origin', 'HEAD');
    await mkdir(join(hostA, 'secrets'));
    await writeFile(join(hostA, 'secrets', 'db_root_password'), 'db-secret\n');
    await ok(hostA, 'init');

    const result = await ok(hostA, 'up');
    assert.match(result.stdout, /restored release \w+ \(version 1\)/);
    assert.match(result.stdout, /stack runs version 1, .*healthy/);
    const page = await status();
    assert.match(page, /^version: 1$/m);
    assert.match(page, /^status: ok$/m);
    assert.match(page, /^queues: sales support billing$/m);
    assert.match(page, /^prompts: queue-hold.txt welcome.txt $/m);
    assert.equal(await readFile(join(hostA, 'data', 'config', 'app.ini'), 'utf8'), await readFile(join(VENDOR, 'releases/1/files/data/config/app.ini'), 'utf8'));
    // The release is now in the stack's own repository: it alone can rebuild the stack.
    const here = JSON.parse((await ok(hostA, 'release', 'list', '--here', '--json')).stdout) as Array<{ version: string }>;
    assert.deepEqual(here.map((r) => r.version), ['1']);
  });

  let v1Incarnation = '';
  let undoTo = '';
  await t.test('a backup of the running stack reaches the database inside its network and records version and incarnation', async () => {
    await sql(hostA, "INSERT INTO contactcenter.calls (queue_id, started_at, seconds) VALUES (1, '2026-11-25 09:00:00', 125), (2, '2026-11-25 09:05:00', 60)");
    await writeFile(join(hostA, 'data', 'shared', 'agents-added.csv'), 'id,name\n7,Ada\n');
    await mkdir(join(hostA, 'data', 'recordings', '2026', '11', '25'), { recursive: true });
    await writeFile(join(hostA, 'data', 'recordings', '2026', '11', '25', 'call-000200.wav'), randomBytes(4096));
    await ok(hostA, 'backup');
    v1Incarnation = await git(hostA, 'rev-parse', 'HEAD');
    const snapshots = JSON.parse((await ok(hostA, 'snapshots', '--json')).stdout) as Array<{ tags: string[]; sources?: unknown }>;
    const nightly = snapshots.filter((s) => s.tags.includes('nightly'));
    assert.equal(nightly.length, 1);
    assert.ok(nightly[0]!.tags.includes('version=1'));
    assert.ok(nightly[0]!.tags.includes(`incarnation=${v1Incarnation}`));
  });

  await t.test('update 1 -> 2: snapshot, database and file-system migrations once each, containers of version 2', async () => {
    const result = await ok(hostA, 'update', '--to', '2');
    assert.match(result.stdout, /snapshot before the step: \w+/);
    assert.match(result.stdout, /migrations applied: 2\/001-queue-priority.sql, 2\/002-prompts-to-media.sh/);
    const page = await status();
    assert.match(page, /^version: 2$/m);
    assert.match(page, /^status: ok$/m);
    assert.match(page, /^queues: sales:5 support:5 billing:9$/m);
    assert.match(page, /^prompts: queue-hold.txt welcome.txt $/m);
    assert.deepEqual(await readdir(join(hostA, 'data')).then((n) => n.sort()), ['config', 'logs', 'media', 'prompts-default', 'recordings', 'shared']);
    assert.equal(await sql(hostA, 'SELECT COUNT(*), SUM(seconds) FROM contactcenter.calls'), '2\t185');
    assert.equal(await sql(hostA, 'SELECT GROUP_CONCAT(id ORDER BY id) FROM stackvault.migrations'), '2/001-queue-priority.sql,2/002-prompts-to-media.sh');
    assert.equal(await readFile(join(hostA, 'data', 'shared', 'agents-added.csv'), 'utf8'), 'id,name\n7,Ada\n');
    assert.equal((await readFile(join(hostA, 'data', 'recordings', '2026', '11', '25', 'call-000200.wav'))).length, 4096);
    assert.match(await git(hostA, 'log', '-1', '--format=%s'), /stackvault: update to version 2/);
    assert.match((parse(await readFile(join(hostA, 'stackvault.yaml'), 'utf8')) as { application: { version: string } }).application.version, /^2$/);
    const here = JSON.parse((await ok(hostA, 'release', 'list', '--here', '--json')).stdout) as Array<{ version: string }>;
    assert.deepEqual(here.map((r) => r.version), ['1', '2']);
    await git(hostA, 'push', '--quiet', 'origin', 'HEAD');
    // up again changes nothing: the migrations ran once.
    const again = await ok(hostA, 'up');
    assert.doesNotMatch(again.stdout, /migrations applied/);
  });

  await t.test('a failing update goes back by itself: pre-step snapshot restored, previous incarnation committed and running', async () => {
    // Release 3's file-system step damages data before its SQL step fails.
    const release3 = join(dir, 'release-3');
    await cp(join(VENDOR, 'releases', '2', 'files'), join(release3, 'files'), { recursive: true });
    await mkdir(join(release3, 'migrations'));
    await writeFile(join(release3, 'migrations', '001-drop-agents.sh'), 'rm "$STACKVAULT_SOURCE_DATA/shared/agents.csv"\n');
    await writeFile(join(release3, 'migrations', '002-rename.sql'), "UPDATE contactcenter.queues SET name = CONCAT(name, '-broken');\nALTER TABLE contactcenter.no_such_table ADD COLUMN x INT;\n");
    const config = parse(await readFile(join(hostA, 'stackvault.yaml'), 'utf8')) as Record<string, any>;
    config.application.images['3'] = config.application.images['2'];
    await writeFile(join(hostA, 'stackvault.yaml'), stringify(config));
    await git(hostA, 'commit', '--quiet', '-am', 'images of version 3');
    // Asked for what cannot be: refused before anything changes.
    const head = await git(hostA, 'rev-parse', 'HEAD');
    const noImages = await cli(hostA, 'update', '--to', '9');
    assert.equal(noImages.code, 2, noImages.stderr);
    assert.match(noImages.stderr, /application\.images has no entry for version 9/);
    const noRelease = await cli(hostA, 'update', '--to', '3');
    assert.equal(noRelease.code, 2, noRelease.stderr);
    assert.match(noRelease.stderr, /no release 3 of contact-center in .* \(it has 1, 2\)/);
    assert.equal(await git(hostA, 'rev-parse', 'HEAD'), head);
    assert.match(await status(), /^version: 2$/m);

    const published = await runCli(['release', 'publish', '--repo', releases, '--application', 'contact-center', '--version', '3', release3], { env: { STACKVAULT_PASSWORD: 'vendor secret' } });
    assert.equal(published.code, 0, published.stderr);
    const agents = await readFile(join(hostA, 'data', 'shared', 'agents.csv'), 'utf8');

    const failed = await cli(hostA, 'update', '--to', '3');
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr, /update to version 3 failed: migration 3\/002-rename.sql failed: .*no_such_table/);
    assert.match(failed.stderr, /went back to version 2 \(incarnation \w+, data of snapshot \w+\); the stack runs/);
    const page = await status();
    assert.match(page, /^version: 2$/m);
    assert.match(page, /^status: ok$/m);
    assert.match(page, /^queues: sales:5 support:5 billing:9$/m);
    assert.equal(await readFile(join(hostA, 'data', 'shared', 'agents.csv'), 'utf8'), agents);
    assert.equal(await sql(hostA, 'SELECT COUNT(*) FROM stackvault.migrations'), '2');
    assert.match(await git(hostA, 'log', '-1', '--format=%s'), /stackvault: back to \w+ after \w+ failed/);
    assert.equal((parse(await readFile(join(hostA, 'stackvault.yaml'), 'utf8')) as { application: { version: string } }).application.version, '2');
    assert.equal(JSON.parse(await readFile(join(hostA, '.stackvault', 'state.json'), 'utf8')).version, '2');
    await git(hostA, 'push', '--quiet', 'origin', 'HEAD');
  });

  await t.test('disaster recovery: a second host with only the stack repository and the backup repository', async () => {
    await sql(hostA, "INSERT INTO contactcenter.calls (queue_id, started_at, seconds) VALUES (3, '2026-11-25 10:00:00', 15)");
    await ok(hostA, 'backup');
    // After the nightly backup the binary log is archived (what "stackvault run" does):
    // a call taken after the backup comes back; the one after the chosen moment does not.
    const archiver = spawn(process.execPath, [CLI, 'binlog', 'archive', '--source', 'db'], { cwd: hostA, env: { ...process.env, ...env }, stdio: 'ignore' });
    engine.defer(async () => void archiver.kill('SIGKILL'));
    // It starts at the backup's position in the log: what is written before it connects is archived too.
    await sql(hostA, "INSERT INTO contactcenter.calls (queue_id, started_at, seconds) VALUES (1, '2026-11-25 10:30:00', 40)");
    const moment = new Date();
    await new Promise((r) => setTimeout(r, 2100 - (Date.now() % 1000)));
    await sql(hostA, "INSERT INTO contactcenter.calls (queue_id, started_at, seconds) VALUES (2, '2026-11-25 10:45:00', 999)");
    const written = Date.now();
    await waitFor('the archive to hold the last call', async () => {
      const chains = JSON.parse((await cli(hostA, 'binlog', 'status', '--json')).stdout).sources[0]?.chains ?? [];
      return chains.length > 0 && Date.parse(chains[chains.length - 1].covered_until) >= written ? true : undefined;
    }, 120_000, 500);
    archiver.kill('SIGKILL');
    // Host A is lost: its containers, volumes and folder.
    await compose.down(project(hostA), { volumes: true });
    await rm(hostA, { recursive: true, force: true });

    await run('git', ['clone', '--quiet', origin, hostB]);
    host = hostB;
    await mkdir(join(hostB, 'secrets'));
    await writeFile(join(hostB, 'secrets', 'db_root_password'), 'db-secret\n');
    // Files without a record of what runs here are never restored over.
    await mkdir(join(hostB, 'data', 'shared'), { recursive: true });
    await writeFile(join(hostB, 'data', 'shared', 'stray.csv'), 'who wrote this?\n');
    const refused = await cli(hostB, 'up');
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /this host runs no stack .*\/data holds 1 file: up restores onto an empty host only/);
    assert.equal(await readFile(join(hostB, 'data', 'shared', 'stray.csv'), 'utf8'), 'who wrote this?\n');
    await rm(join(hostB, 'data'), { recursive: true });

    // The share with the backups is not mounted: the operator makes a repository where it
    // should be. up must not install the vanilla release over the customer's data.
    const unmounted = { STACKVAULT_REPOSITORY: join(dir, 'share-not-mounted') };
    assert.equal((await cliWith(unmounted, hostB, 'init')).code, 0);
    const vanilla = await cliWith(unmounted, hostB, 'up');
    assert.equal(vanilla.code, 2, vanilla.stderr);
    assert.match(vanilla.stderr, /no snapshot of stack example-contact-center in the repository at .*share-not-mounted, yet its stack repository has more than one commit/);
    assert.match(vanilla.stderr, /make the backup repository it used reachable here .* "stackvault up --new-install"/);
    await assert.rejects(readdir(join(hostB, 'data')), { code: 'ENOENT' });
    await assert.rejects(readFile(join(hostB, '.stackvault', 'state.json')), { code: 'ENOENT' });
    assert.deepEqual(await compose.containers(project(hostB)), []);
    // A snapshot there is no vanilla install, even when asked for one.
    const asked = await cli(hostB, 'up', '--new-install');
    assert.equal(asked.code, 2, asked.stderr);
    assert.match(asked.stderr, /--new-install: the repository at .* holds snapshots of stack example-contact-center/);

    const result = await ok(hostB, 'up', '--to-time', moment.toISOString());
    assert.match(result.stdout, /restored snapshot \w+ \(version 2\), its databases rolled forward to/);
    const page = await status();
    assert.match(page, /^version: 2$/m);
    assert.match(page, /^status: ok$/m);
    assert.match(page, /^queues: sales:5 support:5 billing:9$/m);
    assert.equal(await sql(hostB, 'SELECT COUNT(*), SUM(seconds) FROM contactcenter.calls'), '4\t240', 'the call after the backup is back, the one after the moment is not');
    assert.equal(await readFile(join(hostB, 'data', 'shared', 'agents-added.csv'), 'utf8'), 'id,name\n7,Ada\n');
    assert.deepEqual(await readdir(join(hostB, 'data', 'media', 'prompts', 'en')).then((n) => n.sort()), ['queue-hold.txt', 'welcome.txt']);
    // Recordings are excluded from backups by design: a recovered host starts without them.
    await assert.rejects(readFile(join(hostB, 'data', 'recordings', '2026', '11', '25', 'call-000200.wav')), { code: 'ENOENT' });
  });

  await t.test('rollback to the version-1 incarnation brings its config and its data back together', async () => {
    const result = await ok(hostB, 'rollback', '--to', v1Incarnation.slice(0, 10));
    assert.match(result.stdout, /snapshot before the step: \w+/);
    const page = await status();
    assert.match(page, /^version: 1$/m);
    assert.match(page, /^status: ok$/m);
    assert.match(page, /^queues: sales support billing$/m);
    assert.match(page, /^prompts: queue-hold.txt welcome.txt $/m);
    assert.equal(await sql(hostB, 'SELECT COUNT(*), SUM(seconds) FROM contactcenter.calls'), '2\t185');
    assert.equal(await sql(hostB, "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = 'contactcenter' AND column_name = 'priority'"), '0');
    assert.equal((parse(await readFile(join(hostB, 'stackvault.yaml'), 'utf8')) as { application: { version: string } }).application.version, '1');
    assert.match(await git(hostB, 'log', '-1', '--format=%s'), new RegExp(`stackvault: rollback to ${v1Incarnation.slice(0, 8)}`));
    await assert.rejects(readdir(join(hostB, 'data', 'media')), { code: 'ENOENT' });
    undoTo = /snapshot before the step: (\w+)/.exec(result.stdout)![1]!;
  });

  await t.test('a rollback is undone by rolling back to the snapshot taken before it', async () => {
    const result = await ok(hostB, 'rollback', '--to', undoTo);
    assert.match(result.stdout, /stack runs version 2/);
    const page = await status();
    assert.match(page, /^version: 2$/m);
    assert.match(page, /^status: ok$/m);
    assert.match(page, /^queues: sales:5 support:5 billing:9$/m);
    assert.equal(await sql(hostB, 'SELECT COUNT(*), SUM(seconds) FROM contactcenter.calls'), '4\t240', 'the call after the backup is back, the one after the moment is not');
    assert.equal((parse(await readFile(join(hostB, 'stackvault.yaml'), 'utf8')) as { application: { version: string } }).application.version, '2');
  });
});
