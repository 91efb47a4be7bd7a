import type { Command } from 'commander';
import { resolve } from 'node:path';
import { resolveSources } from '../../config/sources.js';
import { listReleases, publishRelease, pullRelease } from '../../release/release.js';
import { openBackend } from '../../repo/backends/open.js';
import { Repository } from '../../repo/repository.js';
import { shortId } from '../../snapshot/snapshot.js';
import { UsageError } from '../../util/errors.js';
import { secretFromEnv, secretFromFile } from '../../util/secrets.js';
import { formatBytes } from '../../util/format.js';
import type { CliContext } from '../context.js';
import { emit, interruptSignal } from '../output.js';

/** The release store: --from-repo, or release_store in stackvault.yaml; its password from the flag, the config or STACKVAULT_RELEASE_PASSWORD. */
export async function openReleaseStore(ctx: CliContext, flags: { fromRepo?: string; fromPasswordFile?: string }): Promise<Repository> {
  const loaded = ctx.config();
  const store = loaded?.config.release_store;
  const location = flags.fromRepo ?? store?.url;
  if (!location) throw new UsageError('no release store: give --from-repo or release_store.url in stackvault.yaml');
  let password = process.env.STACKVAULT_RELEASE_PASSWORD;
  if (flags.fromPasswordFile) password = secretFromFile(flags.fromPasswordFile, '--from-password-file');
  else if (store?.password_file) password = secretFromFile(resolve(loaded!.baseDir, store.password_file), `${loaded!.file}: release_store.password_file`);
  else if (store?.password_env) password = secretFromEnv(store.password_env, `${loaded!.file}: release_store.password_env`);
  const variable = store?.password_env && !flags.fromRepo ? `${store.password_env} (release_store.password_env)` : 'STACKVAULT_RELEASE_PASSWORD';
  const hint = `give the release store's password in ${variable} or --from-password-file`;
  return Repository.open(openBackend(location, { baseDir: flags.fromRepo ? process.cwd() : loaded?.baseDir }), password, hint);
}

function applicationName(ctx: CliContext, given?: string): string {
  const app = given ?? ctx.config()?.config.application?.name ?? ctx.config()?.config.stack;
  if (!app) throw new UsageError('which application? give --application, or application.name (or stack) in stackvault.yaml');
  return app;
}

export function registerReleaseCommands(program: Command, context: () => CliContext): void {
  const release = program.command('release').description("a vendor's releases: the vanilla state of each version and its migrations");

  release
    .command('publish')
    .description('write a release of this version to the release repository (--repo); a version is published once')
    .argument('<folder>', 'the release folder: files/ (vanilla data) and migrations/ (NNN-name.sql, NNN-name.sh)')
    .requiredOption('--version <version>', 'the version this release is')
    .option('--application <name>', 'the application (default: application.name or stack in stackvault.yaml)')
    .option('--database <source>', 'also dump this mariadb source of stackvault.yaml: the vanilla database')
    .addHelpText('after', `\nExamples:\n  stackvault release publish --repo s3://vendor-releases/cc --application contact-center --version 2 ./release`)
    .action(async (folder: string, flags: { version: string; application?: string; database?: string }) => {
      const ctx = context();
      const application = applicationName(ctx, flags.application);
      let database;
      if (flags.database) {
        const source = resolveSources(ctx.requireConfig('--database')).find((s) => s.name === flags.database);
        if (!source || source.kind !== 'mariadb') throw new UsageError(`--database ${flags.database}: no mariadb source of that name in stackvault.yaml`);
        database = source;
      }
      const { id } = await publishRelease(await ctx.openRepository(), { application, version: flags.version, folder: resolve(folder), database, signal: interruptSignal() });
      emit(ctx, () => `release ${flags.version} of ${application} published as snapshot ${shortId(id)}`, () => ({ message_type: 'release_published', application, version: flags.version, snapshot: id }));
    });

  release
    .command('pull')
    .description("copy a release into the stack's own repository, so it alone can rebuild the stack")
    .option('--version <version>', 'the release (default: application.version in stackvault.yaml)')
    .option('--application <name>', 'the application (default: application.name or stack)')
    .option('--from-repo <location>', 'the release store (default: release_store.url)')
    .option('--from-password-file <file>', 'its password (or release_store.password_*, or STACKVAULT_RELEASE_PASSWORD)')
    .action(async (flags: { version?: string; application?: string; fromRepo?: string; fromPasswordFile?: string }) => {
      const ctx = context();
      const application = applicationName(ctx, flags.application);
      const version = flags.version ?? ctx.config()?.config.application?.version;
      if (!version) throw new UsageError('which version? give --version or application.version in stackvault.yaml');
      const copied = await pullRelease(await openReleaseStore(ctx, flags), await ctx.openRepository(), application, version, interruptSignal());
      emit(
        ctx,
        () => (copied.existing ? `release ${version} is in the repository already (snapshot ${shortId(copied.id)})` : `release ${version} copied as snapshot ${shortId(copied.id)}: ${copied.files} files, added ${formatBytes(copied.bytesAdded)}`),
        () => ({ message_type: 'release_pulled', application, version, ...copied }),
      );
    });

  release
    .command('list')
    .description('the releases in a release store (--from-repo or release_store), or in this repository with --here')
    .option('--application <name>', 'only this application')
    .option('--from-repo <location>', 'the release store')
    .option('--from-password-file <file>', 'its password')
    .option('--here', "list the releases already in the stack's own repository")
    .action(async (flags: { application?: string; fromRepo?: string; fromPasswordFile?: string; here?: boolean }) => {
      const ctx = context();
      const repo = flags.here ? await ctx.openRepository() : await openReleaseStore(ctx, flags);
      const releases = await listReleases(repo, flags.application);
      emit(
        ctx,
        () => releases.map((r) => `${r.version.padEnd(12)} ${shortId(r.snapshot)}  ${r.time.slice(0, 16).replace('T', ' ')}  ${r.migrations} migration files`).join('\n') || 'no releases',
        () => releases,
      );
    });
}
