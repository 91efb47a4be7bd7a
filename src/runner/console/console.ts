import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { restore } from '../../snapshot/restore/restore.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Repository } from '../../repo/repository.js';
import { describeProblems, listSnapshots, shortId, snapshotProblems, type Snapshot, type SnapshotRef } from '../../snapshot/snapshot.js';
import { TreeLoader, type TreeNode } from '../../snapshot/tree.js';
import { findSnapshotNode, normalizeSnapshotPath } from '../../snapshot/walk.js';
import { errorMessage } from '../../util/errors.js';
import { formatBytes, formatDuration } from '../../util/format.js';
import type { JobHistory, RunRecord } from '../history.js';
import { CONSOLE_CSS, actionForm, barChart, esc, page, pager, type PageOptions } from './html.js';
import { ConsoleSessions, readForm } from './session.js';
import { contentIds } from '../../snapshot/content-list.js';

/** What the console shows and does, from the runner. */
export interface ConsoleContext {
  /** the stack whose snapshots are shown; null: every snapshot of the repository */
  stack: string | null;
  openRepository(): Promise<Repository>;
  /** the runner's JSON status (health, current job, next runs) */
  status(): { health: { healthy: boolean; problems: string[] }; current: unknown; next: Record<string, { at: string }>; binlog?: Array<{ source: string; lagSeconds: number }> };
  /** the runner's job history; none for "stackvault console" on a repository alone */
  history?: JobHistory;
  /** the stack's stackvault.yaml, whose git repository holds its incarnations; none for a repository alone */
  configFile?: string;
  /** jobs an operator may start now */
  jobs: string[];
  /** start a job now; resolves when it is done */
  runNow(job: string): Promise<string>;
}

const PAGE_SNAPSHOTS = 50;
/** The console's own pages (beside /snapshots/<id>/... and /actions/...). */
const PAGES = new Set(['/', '/history', '/drills', '/snapshots', '/incarnations']);

/** What a drill job records (stack/drill-stack.ts), as far as the console shows it. */
interface DrillDetails {
  snapshot?: string;
  snapshotTime?: string;
  rtoMs?: number;
  filesVerified?: number;
  bytesVerified?: number;
  databases?: Array<{ source: string; skipped?: string; tables?: number; rows?: number; commits?: number }>;
  pointInTime?: Array<{ source: string; skipped?: string; transactions?: number; verified?: number; rpoSeconds?: number }>;
}
const PAGE_ENTRIES = 200;
/** Trees kept between requests (see Console.trees). */
const TREES_KEPT = 8;
/** The snapshot list is read again at most this often (a repository may hold thousands). */
const LISTING_TTL_MS = 30_000;

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on our own forms.
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

/**
 * The operator's web console, served by the runner beside /healthz and /metrics: the
 * stack's state, its jobs, its snapshots (browsed, files and folders downloaded), and
 * backup or drill started now. Nothing can be deleted from here.
 */
export class Console {
  private repo: Promise<Repository> | undefined;
  private listing: { at: number; refs: Promise<SnapshotRef[]> } | undefined;
  /** manifests read so far: a refresh reads only new ones */
  private readonly manifests = new Map<string, Snapshot>();
  private readonly pico: Buffer;
  private treeLoader: { repo: Repository; loader: TreeLoader } | undefined;

  constructor(
    private readonly ctx: ConsoleContext,
    private readonly sessions: ConsoleSessions,
  ) {
    this.pico = readFileSync(createRequire(import.meta.url).resolve('@picocss/pico/css/pico.min.css'));
  }

  /** Handle a console request; false when the path is not the console's. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    if (path === '/assets/pico.min.css') return this.asset(res, this.pico);
    if (path === '/assets/console.css') return this.asset(res, Buffer.from(CONSOLE_CSS));
    if (path === '/login') return this.login(req, res);
    if (path === '/logout' && req.method === 'POST') {
      this.sessions.logout(req, res);
      return this.redirect(res, '/login');
    }
    if (!(PAGES.has(path) || path.startsWith('/snapshots/') || path.startsWith('/actions/'))) return false;
    const session = this.sessions.ensure(req, res);
    if (!session) return this.redirect(res, '/login');
    const view: PageOptions = { title: '', stack: this.ctx.stack ?? 'all stacks', csrf: session.csrf, active: 'status', notice: url.searchParams.get('notice') ?? undefined };
    if (path.startsWith('/actions/')) return this.action(req, res, path.slice('/actions/'.length));
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.send(res, 405, 'text/plain', 'use GET\n');
    try {
      if (path === '/') return this.html(res, page({ ...view, title: 'Status' }, this.statusPage(view.csrf)));
      if (path === '/history') return this.html(res, page({ ...view, title: 'Jobs', active: 'history' }, this.historyPage(Number(url.searchParams.get('page') ?? 0))));
      if (path === '/snapshots') return this.html(res, page({ ...view, title: 'Snapshots', active: 'snapshots' }, await this.snapshotsPage(Number(url.searchParams.get('page') ?? 0))));
      if (path === '/drills') return this.html(res, page({ ...view, title: 'Restore drills', active: 'drills' }, this.drillsPage(Number(url.searchParams.get('page') ?? 0))));
      if (path === '/incarnations') return this.html(res, page({ ...view, title: 'Incarnations', active: 'incarnations' }, await this.incarnationsPage(Number(url.searchParams.get('page') ?? 0))));
      const [id, rest] = path.slice('/snapshots/'.length).split('/', 2) as [string, string | undefined];
      const ref = (await this.snapshots()).find((r) => r.id === id);
      if (!ref) return this.send(res, 404, 'text/plain', `no snapshot ${id}\n`);
      const at = normalizeSnapshotPath(url.searchParams.get('path') ?? '/');
      if (rest === 'download') return await this.download(res, ref, at);
      if (rest === 'restore') return this.html(res, page({ ...view, title: `Restore from ${shortId(ref.id)}`, active: 'snapshots' }, restoreForm(ref, at, view.csrf)));
      if (rest === 'diff') return this.html(res, page({ ...view, title: `Changes in ${shortId(ref.id)}`, active: 'snapshots' }, await this.diffPage(ref, url.searchParams.get('with'), Number(url.searchParams.get('page') ?? 0))));
      return this.html(res, page({ ...view, title: `Snapshot ${shortId(ref.id)}`, active: 'snapshots' }, await this.browsePage(ref, at, Number(url.searchParams.get('page') ?? 0))));
    } catch (err) {
      return this.send(res, 500, 'text/plain', `${errorMessage(err)}\n`);
    }
  }

  private statusPage(csrf: string): string {
    const s = this.ctx.status();
    const h = this.ctx.history;
    const lastOf = (job: string) => h?.last(job);
    const backup = lastOf('backup');
    const check = lastOf('check');
    const drill = lastOf('drill');
    const checkDetails = check?.details as { bytesRead?: number; packsRead?: number } | null | undefined;
    const drillDetails = drill?.details as { rtoMs?: number } | null | undefined;
    const row = (label: string, r: RunRecord | undefined, extra = '') =>
      `<tr><th scope="row">${label}</th><td>${r ? `<span class="${r.status === 'success' ? 'ok' : r.status === 'running' ? '' : 'bad'}">${esc(r.status)}</span> ${esc(r.finished ?? r.started)}` : '<em>never</em>'}</td><td>${extra}</td></tr>`;
    const problems = s.health.problems.length
      ? `<article><h2 class="bad">Needs attention</h2><ul>${s.health.problems.map((p) => `<li>${esc(p)}</li>`).join('')}</ul></article>`
      : '<p class="ok">Healthy: every job\'s last run succeeded and none is overdue.</p>';
    const next = Object.entries(s.next)
      .map(([job, n]) => `<li>${esc(job)}: ${esc(n.at)}</li>`)
      .join('');
    const binlog = (s.binlog ?? []).map((b) => `<li>binary log of ${esc(b.source)}: ${Number.isFinite(b.lagSeconds) ? `${esc(Math.round(b.lagSeconds))} s behind` : 'not archived yet'}</li>`).join('');
    return `${problems}
<table>
<thead><tr><th>job</th><th>last run</th><th></th></tr></thead>
<tbody>
${row('backup', backup, backup?.bytesAdded != null ? `${esc(formatBytes(backup.bytesAdded))} added` : '')}
${row('check', check, checkDetails?.bytesRead != null ? `${esc(formatBytes(checkDetails.bytesRead))} verified in ${esc(checkDetails.packsRead ?? 0)} packs` : '')}
${row('drill', drill, drillDetails?.rtoMs != null ? `recovery time ${esc(formatDuration(drillDetails.rtoMs / 1000))}` : '')}
</tbody>
</table>
<h2>Next runs</h2><ul>${next || '<li><em>none scheduled</em></li>'}${binlog}</ul>
<h2>Run now</h2>
<p>${this.ctx.jobs.map((job) => actionForm(`/actions/run`, `${job[0]!.toUpperCase()}${job.slice(1)} now`, csrf, { job })).join('') || '<em>Jobs run from the task runner ("stackvault run"), which does not serve this console.</em>'}</p>`;
  }

  private historyPage(pageIndex: number): string {
    if (!this.ctx.history) return '<p>No task runner serves this console ("stackvault console"): there is no job history. "stackvault run" serves the console with it.</p>';
    const runs = this.ctx.history.recent(1000);
    const nights = runs
      .filter((r) => r.job === 'backup' && r.status === 'success')
      .slice(0, 30)
      .reverse();
    const { at, pages, shown } = onePage(runs, pageIndex, PAGE_SNAPSHOTS);
    const rows = shown
      .map(
        (r) =>
          `<tr><td>${esc(r.job)}</td><td>${esc(r.started)}</td><td class="${r.status === 'success' ? 'ok' : r.status === 'running' ? '' : 'bad'}">${esc(r.status)}${r.attempt > 1 ? ` (attempt ${esc(r.attempt)})` : ''}</td>` +
          `<td class="num">${r.durationMs != null ? esc(formatDuration(r.durationMs / 1000)) : ''}</td><td class="num">${r.bytesAdded != null ? esc(formatBytes(r.bytesAdded)) : ''}</td><td>${esc(r.error ?? '')}</td></tr>`,
      )
      .join('');
    return `<h2>Bytes added by the last ${nights.length} backups</h2>
${barChart(nights.map((r) => ({ value: r.bytesAdded ?? 0, label: r.started })), formatBytes)}
<h2>Their durations</h2>
${barChart(nights.map((r) => ({ value: (r.durationMs ?? 0) / 1000, label: r.started })), formatDuration)}
<p>The drills' recovery times are on <a href="/drills">Drills</a>.</p>
<table><thead><tr><th>job</th><th>started</th><th>result</th><th class="num">took</th><th class="num">added</th><th>error</th></tr></thead><tbody>${rows}</tbody></table>
${pager('/history', at, pages)}`;
  }

  /** Every drill the runner made: what it restored and verified, how long it took, and the trend. */
  private drillsPage(pageIndex: number): string {
    if (!this.ctx.history) return '<p>No task runner serves this console ("stackvault console"): there are no drills to show. "stackvault run" drills the stack on its schedule.</p>';
    const drills = this.ctx.history.recent(1000).filter((r) => r.job === 'drill');
    const rto = (r: RunRecord) => (r.details as DrillDetails | null)?.rtoMs;
    const trend = drills
      .filter((r) => r.status === 'success' && rto(r) !== undefined)
      .slice(0, 30)
      .reverse();
    const { at, pages, shown } = onePage(drills, pageIndex, PAGE_SNAPSHOTS);
    const rows = shown
      .map((r) => {
        const d = (r.details ?? {}) as DrillDetails;
        // Each source's drill says what it verified: a database its tables and rows, a git repository its commits.
        const databases = (d.databases ?? []).map((db) =>
          db.skipped ? `${db.source}: skipped (${db.skipped})` : typeof db.tables === 'number' ? `${db.source}: ${db.tables} tables, ${db.rows ?? 0} rows equal` : `${db.source}: ${db.commits ?? 0} commits verified`,
        );
        const pitr = (d.pointInTime ?? []).map((p) =>
          p.skipped ? `${p.source}: roll-forward skipped (${p.skipped})` : `${p.source}: ${p.transactions ?? 0} transactions rolled forward, ${p.verified ?? 0} tables equal; RPO ${formatDuration(p.rpoSeconds ?? 0)}`,
        );
        const snapshot = d.snapshot ? `<a href="/snapshots/${esc(d.snapshot)}"><code>${esc(shortId(d.snapshot))}</code></a> ${esc(d.snapshotTime ?? '')}` : '';
        const verified = d.filesVerified !== undefined ? `${esc(d.filesVerified)} files (${esc(formatBytes(d.bytesVerified ?? 0))}) equal` : '';
        return (
          `<tr><td>${esc(r.started)}</td><td class="${r.status === 'success' ? 'ok' : r.status === 'running' ? '' : 'bad'}">${esc(r.status)}</td><td>${snapshot}</td>` +
          `<td class="num">${rto(r) !== undefined ? esc(recoveryTime(rto(r)! / 1000)) : ''}</td><td>${[verified, ...databases.map(esc), ...pitr.map(esc)].filter(Boolean).join('<br>')}${r.error ? `<br><span class="bad">${esc(r.error)}</span>` : ''}</td></tr>`
        );
      })
      .join('');
    return `<p>A drill restores the newest snapshot into a scratch folder (and its databases into a scratch server), verifies every file and table against the snapshot, and measures how long the restore took: the stack's recovery time (RTO).</p>
<h2>Recovery time of the last ${trend.length} drills</h2>
${barChart(trend.map((r) => ({ value: rto(r)! / 1000, label: r.started })), recoveryTime)}
<table><thead><tr><th>started</th><th>result</th><th>snapshot</th><th class="num">recovery time</th><th>verified</th></tr></thead><tbody>${rows || '<tr><td colspan="5"><em>no drill yet</em></td></tr>'}</tbody></table>
${pager('/drills', at, pages)}`;
  }

  /** The stack repository's commits (its incarnations), newest first, each with the snapshots taken under it. */
  private async incarnationsPage(pageIndex: number): Promise<string> {
    if (!this.ctx.configFile) return '<p>This console serves a repository without its stack\'s stackvault.yaml: the incarnations live in the stack repository (run it from the stack\'s folder, or use "stackvault run").</p>';
    const [{ stackHistory }, { snapshotIncarnation }] = await Promise.all([import('../../stack/stack-repository.js'), import('../../stack/incarnations.js')]);
    const incarnations = await stackHistory(this.ctx.configFile, { limit: 1000 });
    if (incarnations.length === 0) return '<p>No commits yet: commit stackvault.yaml in its git repository to make the first incarnation.</p>';
    const byIncarnation = new Map<string, SnapshotRef[]>();
    for (const ref of await this.snapshots()) {
      const commit = snapshotIncarnation(ref);
      if (commit) byIncarnation.set(commit, [...(byIncarnation.get(commit) ?? []), ref]);
    }
    const { at, pages, shown } = onePage(incarnations, pageIndex, PAGE_SNAPSHOTS);
    const rows = shown
      .map((i) => {
        const version = i.versionChangedFrom !== undefined ? `<mark>${esc(i.versionChangedFrom ?? '-')} → ${esc(i.version ?? '-')}</mark>` : esc(i.version ?? '-');
        const refs = (byIncarnation.get(i.commit) ?? []).slice().reverse();
        const newest = refs
          .slice(0, 5)
          .map((r) => `<a href="/snapshots/${esc(r.id)}"><code>${esc(shortId(r.id))}</code></a> ${esc(r.snapshot.time)}`)
          .join('<br>');
        return (
          `<tr><td><code>${esc(i.commit.slice(0, 8))}</code></td><td>${esc(i.date.slice(0, 16).replace('T', ' '))}</td><td>${esc(i.author)}</td><td>${esc(i.subject)}<br><small>${esc(i.files.map((f) => `${f.status} ${f.path}`).join(', '))}</small></td>` +
          `<td>${version}</td><td>${newest}${refs.length > 5 ? `<br><small>and ${refs.length - 5} older</small>` : ''}${refs.length === 0 ? '<em>none</em>' : ''}</td></tr>`
        );
      })
      .join('');
    return `<p>Each commit of the stack repository is an incarnation: the stack's configuration and version as they were; "stackvault rollback --to" a commit brings its config and data back together. Newest first.</p>
<table><thead><tr><th>commit</th><th>date</th><th>author</th><th>change</th><th>version</th><th>snapshots taken under it</th></tr></thead><tbody>${rows}</tbody></table>
${pager('/incarnations', at, pages)}`;
  }

  private async snapshotsPage(pageIndex: number): Promise<string> {
    const refs = (await this.snapshots()).slice().reverse();
    const { at, pages, shown } = onePage(refs, pageIndex, PAGE_SNAPSHOTS);
    const rows = shown
      .map((r) => {
        const bytes = r.snapshot.sources.reduce((n, s) => n + (s.stats?.bytes ?? 0), 0);
        const excluded = [...new Set(r.snapshot.sources.flatMap((s) => (s.excluded ?? []).map((e) => e.class)))];
        return (
          `<tr><td><a href="/snapshots/${esc(r.id)}"><code>${esc(shortId(r.id))}</code></a></td><td>${esc(r.snapshot.time)}</td><td>${esc(r.snapshot.host)}</td>` +
          `<td>${r.snapshot.tags.map((t) => `<mark>${esc(t)}</mark>`).join(' ')}</td><td class="num">${esc(formatBytes(bytes))}</td><td>${esc(excluded.join(', '))}</td>` +
          `<td class="bad">${esc(describeProblems(snapshotProblems(r.snapshot)))}</td>` +
          `<td><a href="/snapshots/${esc(r.id)}/diff">changes</a></td></tr>`
        );
      })
      .join('');
    return `<p>${refs.length} snapshots, newest first.</p>
<table><thead><tr><th>id</th><th>time</th><th>host</th><th>tags (version, incarnation)</th><th class="num">size</th><th>excluded classes</th><th>problems</th><th></th></tr></thead><tbody>${rows}</tbody></table>
${pager('/snapshots', at, pages)}`;
  }

  private async browsePage(ref: SnapshotRef, path: string, pageIndex: number): Promise<string> {
    const loader = await this.trees();
    const folder = (await findSnapshotNode(loader, ref, path))?.subtree;
    if (!folder) return `<p class="bad">${esc(path)} is not a folder of this snapshot.</p>`;
    const nodes = (await loader.load(folder)).nodes;
    const { at, pages, shown } = onePage(nodes, pageIndex, PAGE_ENTRIES);
    const child = (node: TreeNode) => `${path === '/' ? '' : path}/${node.name}`;
    const link = (p: string, extra = '') => `/snapshots/${ref.id}${extra}?${new URLSearchParams({ path: p })}`;
    const up = path === '/' ? '' : `<p><a href="${esc(link(path.slice(0, path.lastIndexOf('/')) || '/'))}">↑ up</a></p>`;
    const rows = shown
      .map((node) => {
        const p = child(node);
        const name = node.type === 'dir' ? `<a href="${esc(link(p))}">${esc(node.name)}/</a>` : esc(node.name);
        const download =
          node.type === 'file' || node.type === 'dir' ? `<a href="${esc(link(p, '/download'))}" download>${node.type === 'dir' ? 'tar' : 'download'}</a> · <a href="${esc(link(p, '/restore'))}">restore…</a>` : '';
        return `<tr><td>${name}</td><td>${esc(node.type)}</td><td class="num">${node.type === 'file' ? esc(formatBytes(node.size ?? 0)) : ''}</td><td>${download}</td></tr>`;
      })
      .join('');
    return `<p>${esc(ref.snapshot.time)} · ${esc(ref.snapshot.host)} · <code class="path">${esc(path)}</code> · ${nodes.length} entries · <a href="${esc(link(path, '/download'))}" download>download this folder as tar</a></p>
${path === '/' ? problemsNote(ref.snapshot) : ''}${up}
<table><thead><tr><th>name</th><th>kind</th><th class="num">size</th><th></th></tr></thead><tbody>${rows}</tbody></table>
${pager(`/snapshots/${ref.id}`, at, pages, { path })}`;
  }

  /** What changed from another snapshot (the one before, by default) to this one, a page at a time. */
  private async diffPage(ref: SnapshotRef, other: string | null, pageIndex: number): Promise<string> {
    const refs = await this.snapshots();
    const index = refs.findIndex((r) => r.id === ref.id);
    const base = other ? refs.find((r) => r.id === other) : refs[index - 1];
    if (!base) return '<p>This is the stack\'s first snapshot: nothing to compare it with.</p>';
    const { diffSnapshots } = await import('../../snapshot/diff.js');
    const at = Number.isInteger(pageIndex) && pageIndex > 0 ? pageIndex : 0;
    const rows: string[] = [];
    let seen = 0;
    // Read only as far as this page needs: a diff of two large trees is long.
    for await (const change of diffSnapshots(await this.repository(), base, ref)) {
      if (seen >= at * PAGE_ENTRIES && seen < (at + 1) * PAGE_ENTRIES) rows.push(`<tr><td><code>${esc(change.kind)}</code></td><td><code class="path">${esc(change.path)}</code></td><td>${esc(change.type)}</td></tr>`);
      seen++;
      if (seen > (at + 1) * PAGE_ENTRIES) break;
    }
    const more = seen > (at + 1) * PAGE_ENTRIES;
    const link = (i: number, label: string) => `<a href="/snapshots/${esc(ref.id)}/diff?${esc(new URLSearchParams({ with: base.id, page: String(i) }).toString())}">${label}</a>`;
    return `<p>From <a href="/snapshots/${esc(base.id)}"><code>${esc(shortId(base.id))}</code></a> (${esc(base.snapshot.time)}) to <code>${esc(shortId(ref.id))}</code> (${esc(ref.snapshot.time)}): + added, - removed, M content changed, T type changed, U metadata only.</p>
<table><thead><tr><th></th><th>path</th><th>kind</th></tr></thead><tbody>${rows.join('') || '<tr><td colspan="3"><em>no changes</em></td></tr>'}</tbody></table>
<nav class="pager">${at > 0 ? link(at - 1, '← previous') : ''} ${more ? link(at + 1, 'next →') : ''}</nav>`;
  }

  private async download(res: ServerResponse, ref: SnapshotRef, path: string): Promise<boolean> {
    const repo = await this.repository();
    const loader = await this.trees();
    const node = await findSnapshotNode(loader, ref, path);
    if (!node || (node.type !== 'file' && node.type !== 'dir')) return this.send(res, 404, 'text/plain', `${path} is not a file or folder of snapshot ${shortId(ref.id)}\n`);
    const base = path === '/' ? `snapshot-${shortId(ref.id)}` : path.slice(path.lastIndexOf('/') + 1);
    const filename = node.type === 'dir' ? `${base}.tar` : base;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': node.type === 'dir' ? 'application/x-tar' : 'application/octet-stream',
      'content-disposition': `attachment; filename="${filename.replace(/[^\w.-]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(filename)}`,
      ...(node.type === 'file' ? { 'content-length': String(node.size ?? 0) } : {}),
    });
    if (node.type === 'dir') {
      const { dumpTar } = await import('../../snapshot/restore/tar-dump.js');
      await dumpTar(repo, loader, node, base, res);
      res.end();
      return true;
    }
    for await (const id of contentIds(repo, node.content)) {
      // Streamed blob by blob, waiting for the browser: memory stays bounded for any size.
      if (!res.write(await repo.loadBlob(id, 'data'))) await new Promise((r) => res.once('drain', r));
    }
    res.end();
    return true;
  }

  private async action(req: IncomingMessage, res: ServerResponse, name: string): Promise<boolean> {
    if (req.method !== 'POST') return this.send(res, 405, 'text/plain', 'actions are posted from the console\n');
    const form = await readForm(req);
    const session = this.sessions.verifyPost(req, form);
    if (!session) return this.send(res, 403, 'text/plain', 'refused: the form did not come from this console (missing or wrong CSRF token)\n');
    if (name === 'restore') return this.restoreAction(res, form, session.csrf);
    if (name !== 'run') return this.send(res, 404, 'text/plain', `no action ${name}\n`);
    const job = form.get('job') ?? '';
    if (!this.ctx.jobs.includes(job)) return this.send(res, 400, 'text/plain', `no job ${job}\n`);
    // Started, not awaited: the page comes back at once and the status shows it running.
    this.ctx.runNow(job).then(
      () => (this.listing = undefined),
      () => (this.listing = undefined),
    );
    return this.redirect(res, `/?${new URLSearchParams({ notice: `${job} started` })}`);
  }

  /**
   * Restore a file or folder of a snapshot into a folder on the host (the snapshot's path
   * below it, as "stackvault restore --include" does). A folder that holds anything is
   * written into only after the operator confirmed it on a second page.
   */
  private async restoreAction(res: ServerResponse, form: URLSearchParams, csrf: string): Promise<boolean> {
    const ref = (await this.snapshots()).find((r) => r.id === form.get('snapshot'));
    const target = form.get('target') ?? '';
    if (!ref) return this.send(res, 404, 'text/plain', 'no such snapshot\n');
    const path = normalizeSnapshotPath(form.get('path') ?? '/');
    const view: PageOptions = { title: `Restore from ${shortId(ref.id)}`, stack: this.ctx.stack ?? 'all stacks', csrf, active: 'snapshots' };
    if (!isAbsolute(target)) return this.html(res, page(view, `<p class="bad">Give the target as an absolute folder on the host.</p>${restoreForm(ref, path, csrf)}`), 400);
    const entries = await readdir(target).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
    const confirmed = form.get('confirm') === 'yes';
    if (entries.length > 0 && !confirmed) {
      return this.html(
        res,
        page(
          view,
          `<article><p><strong>${esc(target)}</strong> already holds ${entries.length} entries. Restoring <code class="path">${esc(path)}</code> there replaces files with the same names.</p>` +
            `${actionForm('/actions/restore', 'Restore over it', csrf, { snapshot: ref.id, path, target, confirm: 'yes' })} <a href="/snapshots/${esc(ref.id)}?${esc(new URLSearchParams({ path }).toString())}">Cancel</a></article>`,
        ),
        409,
      );
    }
    const result = await restore(await this.repository(), ref, { target, include: path === '/' ? [] : [path], force: confirmed });
    const problems = [...result.errors, ...result.notRecreated].map((e) => `<li>${esc(e.path)}: ${esc(e.message)}</li>`).join('');
    return this.html(
      res,
      page(
        { ...view, notice: `restored ${result.files} files, ${result.dirs} folders (${formatBytes(result.bytes)}) into ${target}` },
        `<p>${esc(path)} of snapshot <a href="/snapshots/${esc(ref.id)}"><code>${esc(shortId(ref.id))}</code></a> is in <code class="path">${esc(target)}${esc(path)}</code>.</p>${problems ? `<ul class="bad">${problems}</ul>` : ''}`,
      ),
      result.errors.length > 0 ? 500 : 200,
    );
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (req.method === 'POST') {
      const form = await readForm(req);
      if (await this.sessions.login(form.get('token') ?? '', res)) return this.redirect(res, '/');
      return this.html(res, loginPage(this.ctx.stack ?? 'all stacks', 'That is neither the runner\'s token nor the console password.'), 401);
    }
    if (this.sessions.current(req) || this.sessions.loopback) return this.redirect(res, '/');
    return this.html(res, loginPage(this.ctx.stack ?? 'all stacks'));
  }

  /**
   * Trees viewed recently, kept across requests: paging through a folder of 100,000
   * entries decoded and parsed its tree (10 MB of JSON) for every page, 0.3 s each.
   * A tree never changes; a few are kept, whatever their size.
   */
  private async trees(): Promise<TreeLoader> {
    const repo = await this.repository();
    if (this.treeLoader?.repo !== repo) this.treeLoader = { repo, loader: new TreeLoader(repo, TREES_KEPT) };
    return this.treeLoader.loader;
  }

  private repository(): Promise<Repository> {
    this.repo ??= this.ctx.openRepository().catch((err: unknown) => {
      this.repo = undefined;
      throw err;
    });
    return this.repo;
  }

  /** The snapshots, read again at most every LISTING_TTL_MS (and after a job started here). */
  private async snapshots(): Promise<SnapshotRef[]> {
    if (!this.listing || Date.now() - this.listing.at > LISTING_TTL_MS) {
      const refs = this.repository().then(async (repo) => {
        await repo.refreshIndex();
        return (await listSnapshots(repo, { known: this.manifests })).filter((r) => this.ctx.stack === null || r.snapshot.stack === this.ctx.stack);
      });
      this.listing = { at: Date.now(), refs };
      refs.catch(() => (this.listing = undefined));
    }
    return this.listing.refs;
  }

  private asset(res: ServerResponse, body: Buffer): boolean {
    res.writeHead(200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'max-age=3600', 'x-content-type-options': 'nosniff' }).end(body);
    return true;
  }

  private html(res: ServerResponse, body: string, status = 200): boolean {
    return this.send(res, status, 'text/html; charset=utf-8', body);
  }

  private send(res: ServerResponse, status: number, type: string, body: string): boolean {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type }).end(body);
    return true;
  }

  private redirect(res: ServerResponse, to: string): boolean {
    res.writeHead(303, { ...SECURITY_HEADERS, location: to }).end();
    return true;
  }
}

/** A recovery time: tenths of a second below a minute (a small stack's drill takes less than one), else mm:ss. */
function recoveryTime(seconds: number): string {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : formatDuration(seconds);
}

/** The page `index` of a list shown `size` items at a time (the last one when past it), and how many pages there are. */
function onePage<T>(items: readonly T[], index: number, size: number): { at: number; pages: number; shown: readonly T[] } {
  const pages = Math.max(1, Math.ceil(items.length / size));
  const at = Number.isInteger(index) && index > 0 ? Math.min(index, pages - 1) : 0;
  return { at, pages, shown: items.slice(at * size, (at + 1) * size) };
}

function restoreForm(ref: SnapshotRef, path: string, csrf: string): string {
  return `<form method="post" action="/actions/restore">
<input type="hidden" name="csrf" value="${esc(csrf)}"><input type="hidden" name="snapshot" value="${esc(ref.id)}"><input type="hidden" name="path" value="${esc(path)}">
<p>Restore <code class="path">${esc(path)}</code> of snapshot <code>${esc(shortId(ref.id))}</code> (${esc(ref.snapshot.time)}) into a folder on the host; it lands there under its snapshot path.</p>
<label>Folder on the host <input type="text" name="target" placeholder="/var/tmp/restore" required></label>
<button type="submit">Restore</button>
</form>`;
}

function loginPage(stack: string, error?: string): string {
  return page(
    { title: 'Log in', stack, csrf: '', active: 'status' },
    `${error ? `<p class="bad">${esc(error)}</p>` : ''}<form method="post" action="/login"><label>Runner token or console password <input type="password" name="token" autocomplete="current-password" required autofocus></label><button type="submit">Log in</button></form>
<p><small>The token is the runner's (runner.token_file, STACKVAULT_RUNNER_TOKEN_FILE or STACKVAULT_RUNNER_TOKEN); the password is the one whose hash is runner.console_password_hash.</small></p>`,
  );
}

/** Entries named in a snapshot's problems note; its source records hold the rest. */
const NAMED_PROBLEMS = 10;

/** Above a snapshot's root folder: what it did not save whole, the first entries named. */
function problemsNote(snapshot: Snapshot): string {
  const summary = describeProblems(snapshotProblems(snapshot));
  if (!summary) return '';
  const named = (paths: string[]) => paths.slice(0, NAMED_PROBLEMS).map((p) => `<code class="path">${esc(p)}</code>`).join(', ') + (paths.length > NAMED_PROBLEMS ? ', …' : '');
  const unreadable = snapshot.sources.flatMap((s) => (s.errors ?? []).map((e) => e.path));
  const changed = snapshot.sources.flatMap((s) => s.changedWhileRead ?? []);
  return (
    `<p class="bad">Not saved whole: ${esc(summary)}.` +
    (unreadable.length > 0 ? ` Not saved: ${named(unreadable)}.` : '') +
    (changed.length > 0 ? ` Saved as read while they changed: ${named(changed)}.` : '') +
    '</p>\n'
  );
}
