import { readFile, writeFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { resolveSources } from '../config/sources.js';
import { isFilesSource } from '../sources/files/driver.js';
import type { MariadbSource } from '../sources/mariadb/dump.js';
import { compareVersions, findRelease, listReleases, pullRelease, releaseMigrations, snapshotVersion, type Migration } from '../release/release.js';
import type { SnapshotRef } from '../snapshot/snapshot.js';
import { StackvaultError, UsageError, errorMessage } from '../util/errors.js';
import { readHostState, writeHostState, type HostState } from './host-state.js';
import { applyMigrations, databaseHistory, type MigrationHistory } from './migrations.js';
import { backupStack } from './backup-stack.js';
import { changedWhileReadWarning } from '../snapshot/backup/backup.js';
import { applicationName, composeProject, healthTimeoutMs, stackDir, wantedVersion, type StackContext } from './context.js';
import { snapshotIncarnation, stackSnapshots } from './incarnations.js';
import { planStackRollForward, restoreStack } from './restore-stack.js';
import { clearStackData, dataOnHost, reachDatabases, sourceServices } from './stack-sources.js';
import { commitStack, headCommit, resolveCommit, returnToIncarnation, stackHistory, uncommittedChanges } from './stack-repository.js';

/** What a step of the one procedure did, for the report and --json. */
export interface LifecycleReport {
  action: 'up' | 'update' | 'rollback';
  /** how the data came onto an empty host, if it did */
  restoredFrom?: { kind: 'snapshot' | 'release'; id: string; version: string; toTime?: string };
  /** the snapshot taken before anything changed; a failure goes back to it */
  preStepSnapshot?: string;
  migrations: string[];
  version: string;
  incarnation: string;
  /** set when the step failed and the stack went back to what ran before */
  failed?: { error: string; backTo: { version: string; incarnation: string } };
}

const short = (id: string) => id.slice(0, 8);

/**
 * The one procedure: bring this host to the incarnation the stack repository is at.
 * An empty host first gets the newest snapshot of the stack (or, for a new stack, the
 * vanilla release); data of an older version is snapshotted and migrated; then the
 * containers of the wanted version start and must pass their health checks. If any of
 * it fails, the host goes back to the pre-step snapshot and the previous incarnation.
 */
export interface UpOptions {
  /** install the vanilla release on purpose, though the stack repository has a history */
  newInstall?: boolean;
  /** disaster recovery to a moment: the newest snapshot before it, its databases rolled forward through the archived binary log */
  toTime?: Date;
}

export async function up(ctx: StackContext, action: LifecycleReport['action'] = 'up', options: UpOptions = {}): Promise<LifecycleReport> {
  const dir = stackDir(ctx);
  const target = wantedVersion(ctx.loaded);
  const incarnation = await headCommit(dir);
  const changed = await uncommittedChanges(dir);
  if (changed.length > 0) throw new UsageError(`the stack repository has uncommitted changes (${changed.join(', ')}): commit them, so what runs is an incarnation`);
  const state = await readHostState(dir);
  const report: LifecycleReport = { action, migrations: [], version: target, incarnation };
  composeProject(ctx.loaded, target); // a version without images fails here, before anything changes
  // Checks and the pre-step snapshot come before the try: when they fail nothing has
  // changed, so there is nothing to go back from (or to clear).
  let pre: SnapshotRef | undefined;
  if (state) {
    if (compareVersions(state.version, target) > 0) throw newerDataError(state.version, target);
    if (state.incarnation !== incarnation || state.version !== target) pre = await preStepSnapshot(ctx, state, action);
    report.preStepSnapshot = pre?.id;
  } else {
    await refuseIfHostHasData(ctx);
  }
  if (options.toTime && state) throw new UsageError('--to-time brings a stack back on an empty host (disaster recovery); this host runs it: restore its database with "stackvault restore latest --source NAME --to-time ..."');
  const newest = state ? undefined : (await stackSnapshots(ctx)).filter((r) => !options.toTime || Date.parse(r.snapshot.time) <= options.toTime.getTime()).at(-1);
  if (options.toTime && !newest) throw new UsageError(`no snapshot of stack ${ctx.loaded.config.stack} was taken before ${options.toTime.toISOString()}`);
  if (!state) await refuseUnexpectedInstall(ctx, newest, options);
  // Refused here, before anything changes, when the archive does not reach the moment.
  const rollForward = options.toTime && newest ? await planStackRollForward(ctx, newest, options.toTime) : undefined;
  let installing = false;
  try {
    let dataVersion: string;
    if (!state) {
      installing = true;
      if (newest) {
        dataVersion = snapshotVersion(newest) ?? target;
        ctx.log(`empty host: restoring snapshot ${short(newest.id)} of ${newest.snapshot.time} (version ${dataVersion})`);
        if (compareVersions(dataVersion, target) > 0) throw newerDataError(dataVersion, target);
        await restoreStack(ctx, newest, 'snapshot', target, rollForward);
        report.restoredFrom = { kind: 'snapshot', id: newest.id, version: dataVersion, ...(options.toTime ? { toTime: options.toTime.toISOString() } : {}) };
      } else {
        const release = await bringRelease(ctx, target);
        ctx.log(`empty host, no snapshot of stack ${ctx.loaded.config.stack}: installing the vanilla release ${target}`);
        await restoreStack(ctx, release, 'release', target);
        report.restoredFrom = { kind: 'release', id: release.id, version: target };
        dataVersion = target;
      }
    } else {
      dataVersion = state.version;
    }
    if (dataVersion !== target) report.migrations = await migrate(ctx, dataVersion, target, state);
    const project = composeProject(ctx.loaded, target);
    ctx.log(`starting the containers of version ${target}`);
    await ctx.compose.up(project);
    await ctx.compose.waitHealthy(project, { timeoutMs: healthTimeoutMs(ctx.loaded) });
    await writeHostState(dir, { version: target, incarnation, time: new Date().toISOString(), migrations: mergedMigrations(state, report.migrations) });
    return report;
  } catch (err) {
    if (!state) {
      if (!installing) throw err;
      await abandonInstall(ctx, target).catch(() => undefined);
      throw new StackvaultError(`${action} failed: ${errorMessage(err)}\nthe host is empty again; fix the cause and run "stackvault up"`);
    }
    // Nothing was being deployed (the same incarnation, started again): there is nothing to go back to.
    if (!pre) throw err;
    await goBack(ctx, state, pre, incarnation, err);
    report.failed = { error: errorMessage(err), backTo: { version: state.version, incarnation: await headCommit(dir) } };
    return report;
  }
}

/**
 * The snapshot a failed step goes back to. The databases must run to be dumped: after a
 * reboot they may not, so they are started first with the images of the version the data
 * is at (the running containers, if they run, are left as they are).
 */
async function preStepSnapshot(ctx: StackContext, state: HostState, action: LifecycleReport['action']): Promise<SnapshotRef> {
  const services = sourceServices(resolveSources(ctx.loaded));
  if (services.length > 0) {
    const hasImages = ctx.loaded.config.application?.images?.[state.version] !== undefined || !ctx.loaded.config.application?.images;
    const project = composeProject(ctx.loaded, hasImages ? state.version : wantedVersion(ctx.loaded));
    await ctx.compose.up(project, services);
    await ctx.compose.waitHealthy(project, { services, timeoutMs: healthTimeoutMs(ctx.loaded) });
  }
  ctx.log(`snapshot before the step (version ${state.version}, incarnation ${short(state.incarnation)})`);
  const saved = await backupStack(ctx.loaded, { repository: ctx.repo, compose: ctx.compose, at: state, tags: ['pre-' + action], signal: ctx.signal });
  if (saved.errorCount > 0) throw new StackvaultError(`the snapshot before this step could not read ${saved.errorCount} entries; nothing was changed`);
  // Files the running application wrote meanwhile are in it as read: the step goes on (the
  // databases are dumped consistently), and the operator hears which.
  if (saved.changedCount > 0) ctx.log(`warning: in the snapshot before the step, ${changedWhileReadWarning(saved.changedCount, saved.snapshot)}`);
  return { id: saved.id, snapshot: saved.snapshot };
}

/**
 * An empty host with no snapshot of its stack gets the vanilla release only when that is
 * what is meant: the stack repository was just made (one commit), or the operator says
 * so. A stack repository with a history has run somewhere: finding no snapshot of it
 * means the backup repository is not the one it used (not mounted, a new empty one made
 * by "init", a wrong url), and a vanilla install would hide the customer's data behind a
 * healthy, empty stack.
 */
async function refuseUnexpectedInstall(ctx: StackContext, newest: SnapshotRef | undefined, options: UpOptions): Promise<void> {
  const stack = ctx.loaded.config.stack;
  const where = ctx.repo.backend.location;
  if (newest) {
    if (options.newInstall) {
      throw new UsageError(`--new-install: the repository at ${where} holds snapshots of stack ${stack} (the newest ${short(newest.id)} of ${newest.snapshot.time}); up restores it. To start afresh on purpose, use another stack name or repository`);
    }
    return;
  }
  if (options.newInstall) return;
  const incarnations = await stackHistory(ctx.loaded.file, { limit: 2 });
  if (incarnations.length <= 1) return;
  throw new UsageError(
    `no snapshot of stack ${stack} in the repository at ${where}, yet its stack repository has more than one commit: ` +
      'this stack ran before, and a vanilla install would replace its data with an empty one. ' +
      `For a disaster recovery, make the backup repository it used reachable here (mounted? the url in ${ctx.loaded.file}, or STACKVAULT_REPOSITORY?) and run "stackvault up" again; ` +
      `to install the vanilla release ${wantedVersion(ctx.loaded)} on purpose, run "stackvault up --new-install"`,
  );
}

async function refuseIfHostHasData(ctx: StackContext): Promise<void> {
  const found = await dataOnHost(ctx.loaded);
  if (found.length > 0) {
    throw new UsageError(
      `this host runs no stack (no .stackvault/state.json), yet ${found.map((f) => `${f.path} holds ${f.files} file${f.files === 1 ? '' : 's'}`).join(' and ')}: ` +
        'up restores onto an empty host only; move those files away, or run the stack where they came from',
    );
  }
}

const newerDataError = (data: string, target: string) =>
  new UsageError(`the data is at version ${data}, newer than the ${target} stackvault.yaml asks for: go back with "stackvault rollback --to <incarnation or snapshot>", which brings config and data back together`);

function mergedMigrations(state: HostState | undefined, ran: string[]): string[] | undefined {
  const all = [...(state?.migrations ?? []), ...ran];
  return all.length ? all : undefined;
}

/** The release of a version in the stack's repository, copied there from the release store first if need be. */
async function bringRelease(ctx: StackContext, version: string): Promise<SnapshotRef> {
  const application = applicationName(ctx.loaded);
  try {
    return await findRelease(ctx.repo, application, version);
  } catch (err) {
    if (!ctx.openReleaseStore) throw err;
  }
  ctx.log(`copying release ${version} of ${application} from the release store`);
  await pullRelease(await ctx.openReleaseStore(), ctx.repo, application, version, ctx.signal);
  return findRelease(ctx.repo, application, version);
}

/**
 * Every migration from one version to another: those of each release after `from` up to
 * and including `to`, in version order. The release store, when there is one, says which
 * releases exist; each is brought into the stack's repository.
 */
async function migrationsBetween(ctx: StackContext, from: string, to: string): Promise<Migration[]> {
  const application = applicationName(ctx.loaded);
  const versions = new Set((await listReleases(ctx.repo, application)).map((r) => r.version));
  if (ctx.openReleaseStore) for (const r of await listReleases(await ctx.openReleaseStore(), application)) versions.add(r.version);
  versions.add(to);
  const steps = [...versions].filter((v) => compareVersions(v, from) > 0 && compareVersions(v, to) <= 0).sort(compareVersions);
  const migrations: Migration[] = [];
  for (const version of steps) migrations.push(...(await releaseMigrations(ctx.repo, await bringRelease(ctx, version))));
  return migrations;
}

async function migrate(ctx: StackContext, from: string, to: string, state: HostState | undefined): Promise<string[]> {
  const migrations = await migrationsBetween(ctx, from, to);
  ctx.log(`version ${from} -> ${to}: ${migrations.length} migration steps`);
  const project = composeProject(ctx.loaded, to);
  const sources = resolveSources(ctx.loaded);
  // Only the databases run while the data changes shape: nothing else writes meanwhile.
  await ctx.compose.down(project);
  const services = sourceServices(sources);
  if (services.length > 0) {
    await ctx.compose.up(project, services);
    await ctx.compose.waitHealthy(project, { services, timeoutMs: healthTimeoutMs(ctx.loaded) });
  }
  const database = (await reachDatabases(sources, ctx.compose, project)).find((s): s is MariadbSource => s.kind === 'mariadb');
  if (database?.databases && !database.databases.includes('stackvault')) {
    throw new UsageError(`sources "${database.name}": add "stackvault" to its databases, so the migration history is backed up and restored with the data`);
  }
  const history = database ? await databaseHistory(database.connection) : stateHistory(state);
  try {
    const env: Record<string, string> = { STACKVAULT_FROM_VERSION: from, STACKVAULT_TO_VERSION: to, STACKVAULT_STACK_DIR: stackDir(ctx) };
    for (const s of sources) if (isFilesSource(s)) env[`STACKVAULT_SOURCE_${s.name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] = s.path;
    return await applyMigrations(migrations, { history, cwd: stackDir(ctx), env, log: ctx.log, signal: ctx.signal });
  } finally {
    await history.close();
  }
}

/** Without a database, the host state file keeps the migration history (written when the step succeeds). */
function stateHistory(state: HostState | undefined): MigrationHistory {
  const applied = new Set(state?.migrations ?? []);
  return { applied: async () => applied, record: async (m) => void applied.add(m.id), close: async () => undefined };
}

/**
 * A step failed: the stack goes down, the stack repository returns to the incarnation
 * that ran before (as a new commit that says why), the pre-step snapshot is restored, and
 * the previous containers start again.
 */
async function goBack(ctx: StackContext, state: HostState, pre: SnapshotRef, failedIncarnation: string, cause: unknown): Promise<void> {
  const dir = stackDir(ctx);
  ctx.log(`failed: ${errorMessage(cause)}`);
  ctx.log(`going back to incarnation ${short(state.incarnation)} (version ${state.version}) and snapshot ${short(pre.id)}`);
  try {
    await ctx.compose.down(composeProject(ctx.loaded, wantedVersion(ctx.loaded))).catch(() => undefined);
    const back = await returnToIncarnation(dir, state.incarnation, `stackvault: back to ${short(state.incarnation)} after ${short(failedIncarnation)} failed\n\n${errorMessage(cause)}`);
    ctx.loaded = ctx.reload();
    await restoreStack(ctx, pre, 'snapshot', state.version);
    const project = composeProject(ctx.loaded, state.version);
    await ctx.compose.up(project);
    await ctx.compose.waitHealthy(project, { timeoutMs: healthTimeoutMs(ctx.loaded) });
    await writeHostState(dir, { ...state, incarnation: back, time: new Date().toISOString() });
  } catch (err) {
    throw new StackvaultError(
      `the step failed (${errorMessage(cause)}) and going back failed too: ${errorMessage(err)}. ` +
        `Nothing was deleted: the data before the step is snapshot ${short(pre.id)}; run "stackvault rollback --to ${short(pre.id)}" once the cause is fixed`,
    );
  }
}

/** A first install failed: take down what started and clear what the restore wrote (all of it is in the repository). */
async function abandonInstall(ctx: StackContext, version: string): Promise<void> {
  await ctx.compose.down(composeProject(ctx.loaded, version));
  await clearStackData(ctx.loaded);
}

/** Change the application version in the stack repository, commit, and bring the host there. */
export async function update(ctx: StackContext, version: string): Promise<LifecycleReport> {
  const dir = stackDir(ctx);
  const changed = await uncommittedChanges(dir);
  if (changed.length > 0) throw new UsageError(`the stack repository has uncommitted changes (${changed.join(', ')}): commit or drop them first, so the update is one incarnation`);
  const current = wantedVersion(ctx.loaded);
  if (current === version) throw new UsageError(`stackvault.yaml already asks for version ${version}: run "stackvault up"`);
  if (compareVersions(version, current) < 0) throw new UsageError(`${version} is older than ${current}: going back is "stackvault rollback --to <incarnation or snapshot>", which restores the data of then`);
  composeProject({ ...ctx.loaded, config: { ...ctx.loaded.config, application: { ...ctx.loaded.config.application!, version } } }, version);
  // Before anything changes: the release (its migrations) must be there.
  await findRelease(ctx.repo, applicationName(ctx.loaded), version).catch(async (err: unknown) => {
    if (!ctx.openReleaseStore) throw err;
    await findRelease(await ctx.openReleaseStore(), applicationName(ctx.loaded), version);
  });
  const text = await readFile(ctx.loaded.file, 'utf8');
  const doc = parseDocument(text);
  doc.setIn(['application', 'version'], version);
  await writeFile(ctx.loaded.file, doc.toString());
  await commitStack(dir, `stackvault: update to version ${version}`);
  ctx.loaded = ctx.reload();
  return up(ctx, 'update');
}

/**
 * Go back to an incarnation (a commit of the stack repository) or a snapshot: config and
 * data together. A snapshot brings the incarnation it was taken under; an incarnation
 * brings the newest snapshot taken under it (or of its version).
 */
export async function rollback(ctx: StackContext, to: string): Promise<LifecycleReport> {
  const dir = stackDir(ctx);
  const changed = await uncommittedChanges(dir);
  if (changed.length > 0) throw new UsageError(`the stack repository has uncommitted changes (${changed.join(', ')}): commit or drop them first`);
  const { snapshot, incarnation } = await rollbackTarget(ctx, to);
  const version = snapshotVersion(snapshot) ?? wantedVersion(ctx.loaded);
  const state = await readHostState(dir);
  const report: LifecycleReport = { action: 'rollback', migrations: [], version, incarnation };
  const pre = state ? await preStepSnapshot(ctx, state, 'rollback') : undefined;
  report.preStepSnapshot = pre?.id;
  const before = await headCommit(dir);
  try {
    await ctx.compose.down(composeProject(ctx.loaded, wantedVersion(ctx.loaded)));
    report.incarnation = await returnToIncarnation(dir, incarnation, `stackvault: rollback to ${short(incarnation)} with snapshot ${short(snapshot.id)}`);
    ctx.loaded = ctx.reload();
    ctx.log(`restoring snapshot ${short(snapshot.id)} of ${snapshot.snapshot.time} (version ${version})`);
    await restoreStack(ctx, snapshot, 'snapshot', version);
    const project = composeProject(ctx.loaded, version);
    await ctx.compose.up(project);
    await ctx.compose.waitHealthy(project, { timeoutMs: healthTimeoutMs(ctx.loaded) });
    await writeHostState(dir, { version, incarnation: report.incarnation, time: new Date().toISOString(), migrations: state?.migrations });
    report.restoredFrom = { kind: 'snapshot', id: snapshot.id, version };
    return report;
  } catch (err) {
    if (!state || !pre) throw err;
    await goBack(ctx, state, pre, before, err);
    report.failed = { error: errorMessage(err), backTo: { version: state.version, incarnation: await headCommit(dir) } };
    return report;
  }
}

async function rollbackTarget(ctx: StackContext, to: string): Promise<{ snapshot: SnapshotRef; incarnation: string }> {
  const snapshots = await stackSnapshots(ctx);
  const bySnapshot = to.length >= 4 ? snapshots.filter((r) => r.id.startsWith(to)) : [];
  if (bySnapshot.length > 1) throw new UsageError(`"${to}" names ${bySnapshot.length} snapshots: give more of the id`);
  if (bySnapshot.length === 1) {
    const snapshot = bySnapshot[0]!;
    const incarnation = snapshotIncarnation(snapshot);
    if (!incarnation) throw new UsageError(`snapshot ${short(snapshot.id)} does not say which incarnation took it (no incarnation= tag): roll back to an incarnation instead`);
    if (!(await resolveCommit(stackDir(ctx), incarnation))) throw new UsageError(`snapshot ${short(snapshot.id)} was taken under incarnation ${short(incarnation)}, which this stack repository does not have: fetch it`);
    return { snapshot, incarnation };
  }
  const commit = await resolveCommit(stackDir(ctx), to);
  if (!commit) throw new UsageError(`"${to}" is neither a snapshot of stack ${ctx.loaded.config.stack} nor a commit of its stack repository (see "stackvault snapshots" and "stackvault history")`);
  const under = snapshots.filter((r) => snapshotIncarnation(r) === commit);
  let snapshot = under.at(-1);
  if (!snapshot) {
    const version = (await stackHistory(ctx.loaded.file, { limit: 1000 })).find((i) => i.commit === commit)?.version;
    snapshot = snapshots.filter((r) => version !== null && version !== undefined && snapshotVersion(r) === version).at(-1);
    if (!snapshot) throw new UsageError(`no snapshot was taken under incarnation ${short(commit)}${version ? ` or of its version ${version}` : ''}: nothing to bring its data back from`);
  }
  return { snapshot, incarnation: commit };
}
