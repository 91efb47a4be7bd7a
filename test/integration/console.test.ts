import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { CLI, pseudoRandom, runCli, tempDir, waitFor } from '../support/helpers.js';
import { freePort } from '../support/storage-servers.js';

/** Debian's Chromium (scripts/install-test-deps.sh installs it), driven by puppeteer-core. */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
/** Set to a folder (docs/console) to keep a screenshot of every page. */
const SCREENSHOTS = process.env.STACKVAULT_SCREENSHOTS;

test('the web console in a real browser: refused without the token, log in, status, snapshots, browse, download a file, restore one onto the host, start a backup and see what it changed', { skip: CHROMIUM ? false : 'chromium is not installed (apt-get install chromium)', timeout: 300_000 }, async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  await mkdir(join(data, 'prompts', 'en'), { recursive: true });
  await writeFile(join(data, 'prompts', 'en', 'welcome.txt'), 'Welcome to ACME support.\n');
  const recording = pseudoRandom(7, 300_000);
  await writeFile(join(data, 'prompts', 'en', 'queue-hold.wav'), recording);
  await writeFile(join(data, 'app.ini'), '[app]\nname = acme <script>alert(1)</script>\n');
  const port = await freePort();
  const token = 'console test token';
  await writeFile(
    join(dir, 'stackvault.yaml'),
    ['stack: acme', 'repository:', '  url: ./repo', '  password_env: REPO_PW', 'sources:', '  - name: data', '    type: files', '    path: ./data', 'schedule:', '  backup: "0 3 1 1 *"', '  drill: "0 4 1 1 *"', 'runner:', `  listen: 127.0.0.1:${port}`, '  console_login: true', ''].join('\n'),
  );
  // The stack folder is a stack repository: its commit is the incarnation the snapshots are taken under.
  await writeFile(join(dir, '.gitignore'), 'repo/\n.stackvault/\ndata/\ndownloads/\nrestored/\n');
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, '-c', 'user.name=Operator', '-c', 'user.email=ops@example.com', ...args], { encoding: 'utf8' });
  git('init', '-q');
  git('add', 'stackvault.yaml', '.gitignore');
  git('commit', '-q', '-m', 'acme: the contact center goes live');
  const env = { REPO_PW: 'repo pw', STACKVAULT_RUNNER_TOKEN: token };
  assert.equal((await runCli(['init'], { cwd: dir, env })).code, 0);
  assert.equal((await runCli(['backup'], { cwd: dir, env })).code, 0);
  const runner = spawn(process.execPath, [CLI, 'run'], { cwd: dir, env: { ...process.env, ...env }, stdio: 'ignore' });
  t.after(() => {
    runner.kill('SIGKILL');
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor('the runner to listen', async () => ((await fetch(`${base}/healthz`)).status > 0 ? true : undefined), 60_000, 200);

  // Without the token: every page sends to the login, and an action is refused.
  for (const path of ['/', '/snapshots', '/history']) {
    const res = await fetch(`${base}${path}`, { redirect: 'manual' });
    assert.equal(res.status, 303, path);
    assert.equal(res.headers.get('location'), '/login');
  }
  const posted = await fetch(`${base}/actions/run`, { method: 'POST', body: 'job=backup', headers: { 'content-type': 'application/x-www-form-urlencoded' }, redirect: 'manual' });
  assert.equal(posted.status, 303);

  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 900 });
  const shot = async (name: string) => {
    if (SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  };
  const response = await page.goto(`${base}/`);
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.match(response!.headers()['content-security-policy'] ?? '', /default-src 'none'/);
  await page.type('input[name=token]', 'not the token');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.match(await page.content(), /neither the runner's token nor the console password/);
  await shot('login');
  await page.type('input[name=token]', token);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, '/');
  const status = await page.$eval('main', (m) => m.textContent ?? '');
  assert.match(status, /Status/);
  assert.match(status, /backup/);
  assert.doesNotMatch(await page.content(), new RegExp(token), 'no secret is ever shown');
  await shot('status');

  // A snapshot, browsed down to a file, which downloads with its bytes.
  await page.goto(`${base}/snapshots`);
  const links = await page.$$eval('main table a:not([href$="/diff"])', (as) => as.map((a) => a.getAttribute('href') ?? ''));
  assert.equal(links.length, 1);
  await page.goto(`${base}${links[0]!}`);
  await Promise.all([page.waitForNavigation(), page.click('a[href*="path=%2Fdata"]')]);
  assert.match(await page.content(), /app\.ini/);
  assert.match(await page.content(), /&lt;script&gt;|app\.ini/);
  await Promise.all([page.waitForNavigation(), page.click('a[href$="path=%2Fdata%2Fprompts"]')]);
  await Promise.all([page.waitForNavigation(), page.click('a[href$="path=%2Fdata%2Fprompts%2Fen"]')]);
  await shot('browse');
  const downloads = join(dir, 'downloads');
  await mkdir(downloads);
  const cdp = await page.createCDPSession();
  await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
  await page.click('a[href*="download"][href$="queue-hold.wav"]');
  const file = join(downloads, 'queue-hold.wav');
  await waitFor('the download', async () => ((await stat(file).catch(() => undefined))?.size === recording.length && !(await readdir(downloads)).some((n) => n.endsWith('.crdownload')) ? true : undefined), 60_000, 200);
  assert.deepEqual(await readFile(file), recording);

  // Restored onto the host: into an empty folder at once, over files only once confirmed.
  const restored = join(dir, 'restored');
  for (const round of [1, 2]) {
    await Promise.all([page.waitForNavigation(), page.click('a[href*="/restore"][href$="welcome.txt"]')]);
    await page.type('input[name=target]', restored);
    await Promise.all([page.waitForNavigation(), page.click('form[action="/actions/restore"] button')]);
    if (round === 2) {
      assert.match(await page.content(), /already holds 1 entries/);
      await shot('restore-confirm');
      await Promise.all([page.waitForNavigation(), page.click('form[action="/actions/restore"] button')]);
    }
    assert.match(await page.content(), /restored 1 files/);
    assert.equal(await readFile(join(restored, 'data', 'prompts', 'en', 'welcome.txt'), 'utf8'), 'Welcome to ACME support.\n');
    await page.goBack();
    if (round === 2) await page.goBack();
    await page.goBack();
  }

  // A backup started from the console: it appears among the snapshots, and in the history.
  await writeFile(join(data, 'prompts', 'en', 'goodbye.txt'), 'Goodbye.\n');
  await page.goto(`${base}/`);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/actions/run"] button')]);
  assert.match(await page.content(), /backup started/);
  await waitFor('the second snapshot', async () => {
    await page.goto(`${base}/snapshots`);
    return (await page.$$('main table tbody tr')).length === 2 ? true : undefined;
  }, 120_000, 1000);
  await shot('snapshots');
  // What the second backup changed: the file added before it.
  await Promise.all([page.waitForNavigation(), page.click('main table tbody tr:first-child a[href$="/diff"]')]);
  assert.match(await page.$eval('main', (m) => m.textContent ?? ''), /\+\s*\/data\/prompts\/en\/goodbye\.txt/);
  await shot('diff');
  await page.goto(`${base}/history`);
  assert.match(await page.content(), /<svg class="chart"/);
  assert.match(await page.$eval('main table tbody', (b) => b.textContent ?? ''), /backup.*success/s);
  await shot('history');

  // A drill started from the console: its result, recovery time and trend on the drills page.
  await page.goto(`${base}/`);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/actions/run"] input[value="drill"] ~ button')]);
  assert.match(await page.content(), /drill started/);
  await waitFor('the drill', async () => {
    await page.goto(`${base}/drills`);
    return /success/.test(await page.$eval('main table tbody', (b) => b.textContent ?? '')) ? true : undefined;
  }, 120_000, 1000);
  const drills = await page.$eval('main', (m) => m.textContent ?? '');
  assert.match(drills, /\d+ files \(.+\) equal/);
  assert.match(await page.content(), /<svg class="chart"/);
  await shot('drills');

  // The incarnations: the stack repository's commit, with the snapshots taken under it.
  await page.goto(`${base}/incarnations`);
  const incarnations = await page.$eval('main', (m) => m.textContent ?? '');
  assert.match(incarnations, /the contact center goes live/);
  assert.match(incarnations, new RegExp(git('rev-parse', 'HEAD').trim().slice(0, 8)));
  assert.equal((await page.$$('main table tbody tr td:last-child a[href^="/snapshots/"]')).length, 2, 'both snapshots were taken under it');
  await shot('incarnations');

  // A form posted from elsewhere (no CSRF token of the session) is refused, logged in or not.
  const cookies = await browser.cookies();
  const session = cookies.find((c) => c.name === 'sv_session')!;
  const forged = await fetch(`${base}/actions/run`, { method: 'POST', body: 'job=backup&csrf=guessed', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `sv_session=${session.value}` }, redirect: 'manual' });
  assert.equal(forged.status, 403);
});

test('stackvault console serves a repository without a runner: its snapshots, no jobs to start', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'data'));
  await writeFile(join(dir, 'data', 'a.txt'), 'a\n');
  const env = { STACKVAULT_PASSWORD: 'pw' };
  const repo = join(dir, 'repo');
  assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
  const saved = await runCli(['backup', '--repo', repo, '--json', join(dir, 'data')], { env });
  assert.equal(saved.code, 0, saved.stderr);
  const id = JSON.parse(saved.stdout.trim().split('\n').pop()!).snapshot_id as string;
  const port = await freePort();
  const served = spawn(process.execPath, [CLI, 'console', '--repo', repo, '--listen', `127.0.0.1:${port}`], { cwd: dir, env: { ...process.env, ...env }, stdio: 'ignore' });
  t.after(() => {
    served.kill('SIGKILL');
  });
  const base = `http://127.0.0.1:${port}`;
  const snapshots = await waitFor('the console', async () => {
    const res = await fetch(`${base}/snapshots`).catch(() => undefined);
    return res?.status === 200 ? res : undefined;
  }, 60_000, 200);
  assert.match(snapshots.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  assert.match(await snapshots.text(), new RegExp(id.slice(0, 8)));
  assert.match(await (await fetch(`${base}/history`)).text(), /No task runner serves this console/);
  const status = await (await fetch(`${base}/`)).text();
  assert.doesNotMatch(status, /<form method="post" action="\/actions\/run"/);
  const file = await fetch(`${base}/snapshots/${id}/download?path=${encodeURIComponent(`/${join(dir, 'data').split('/').pop()}/a.txt`)}`);
  assert.equal(file.status, 200);
  assert.equal(await file.text(), 'a\n');
});

test('runner.console_login without a token is refused at start, naming where the token goes', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'data'));
  await writeFile(
    join(dir, 'stackvault.yaml'),
    ['stack: acme', 'repository:', '  url: ./repo', '  password_env: REPO_PW', 'sources:', '  - name: data', '    type: files', '    path: ./data', 'runner:', `  listen: 127.0.0.1:${await freePort()}`, '  console_login: true', ''].join('\n'),
  );
  const env = { REPO_PW: 'pw' };
  assert.equal((await runCli(['init'], { cwd: dir, env })).code, 0);
  const started = await runCli(['run'], { cwd: dir, env, timeoutMs: 60_000 });
  assert.equal(started.code, 2, started.stderr);
  assert.match(started.stderr, /runner\.console_login: .* none is set \(runner\.token_file, STACKVAULT_RUNNER_TOKEN_FILE or STACKVAULT_RUNNER_TOKEN\)/);
});

test('"stackvault console" beyond loopback with neither the runner token nor a console password is refused before it opens anything', async (t) => {
  const dir = await tempDir(t);
  // Before the fix it said "serving the console" and served none.
  const started = await runCli(['console', '--repo', join(dir, 'no-repo'), '--listen', `0.0.0.0:${await freePort()}`], { env: { STACKVAULT_PASSWORD: 'pw' }, timeoutMs: 30_000 });
  assert.equal(started.code, 2, started.stderr);
  assert.match(started.stderr, /the console on 0\.0\.0\.0, beyond loopback, asks for the runner token, but none is set .* nor a console password \(runner\.console_password_hash\)/);
  assert.doesNotMatch(started.stderr, /serving/);
});

test('the console logs in with a password kept only as its hash, made by "stackvault console --hash-password"', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'data'));
  await writeFile(join(dir, 'data', 'a.txt'), 'a\n');
  const password = 'a console password';
  const hashed = await runCli(['console', '--hash-password'], { input: `${password}\n` });
  assert.equal(hashed.code, 0, hashed.stderr);
  const hash = hashed.stdout.trim();
  assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$/);
  assert.doesNotMatch(hash, new RegExp(password));
  const port = await freePort();
  await writeFile(
    join(dir, 'stackvault.yaml'),
    ['stack: acme', 'repository:', '  url: ./repo', '  password_env: REPO_PW', 'sources:', '  - name: data', '    type: files', '    path: ./data', 'runner:', '  console_login: true', `  console_password_hash: "${hash}"`, ''].join('\n'),
  );
  const env = { REPO_PW: 'repo pw' };
  assert.equal((await runCli(['init'], { cwd: dir, env })).code, 0);
  const served = spawn(process.execPath, [CLI, 'console', '--listen', `127.0.0.1:${port}`], { cwd: dir, env: { ...process.env, ...env }, stdio: 'ignore' });
  t.after(() => {
    served.kill('SIGKILL');
  });
  const base = `http://127.0.0.1:${port}`;
  const first = await waitFor('the console', async () => (await fetch(`${base}/`, { redirect: 'manual' }).catch(() => undefined)) ?? undefined, 60_000, 200);
  assert.equal(first.status, 303);
  assert.equal(first.headers.get('location'), '/login', 'on loopback too, with console_login');
  const login = (given: string) => fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: given }).toString() });
  const wrong = await login('not the password');
  assert.equal(wrong.status, 401);
  assert.match(await wrong.text(), /neither the runner(&#39;|')s token nor the console password/);
  const right = await login(password);
  assert.equal(right.status, 303);
  const cookie = right.headers.get('set-cookie')!.split(';')[0]!;
  const status = await fetch(`${base}/`, { headers: { cookie } });
  assert.equal(status.status, 200);
  const page = await status.text();
  assert.match(page, /Status/);
  assert.ok(!page.includes(hash) && !page.includes(password), 'neither the password nor its hash is shown');

  // A hash that is not one is refused at start, naming where it is.
  await writeFile(join(dir, 'stackvault.yaml'), (await readFile(join(dir, 'stackvault.yaml'), 'utf8')).replace(hash, 'plain-text-password'));
  const refused = await runCli(['console', '--listen', `127.0.0.1:${await freePort()}`], { cwd: dir, env, timeoutMs: 60_000 });
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /runner\.console_password_hash is not a console password hash: make one with "stackvault console --hash-password"/);
});
