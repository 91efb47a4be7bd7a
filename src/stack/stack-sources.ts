import { existsSync } from 'node:fs';
import type { LoadedConfig } from '../config/load.js';
import { resolveSources } from '../config/sources.js';
import { clearSourceContents } from '../sources/files/clear.js';
import { isFilesSource, type FilesSource } from '../sources/files/driver.js';
import { driverOf, type SourceSpec } from '../sources/registry.js';
import { Compose, type ComposeProject } from './compose.js';
import { composeProject } from './context.js';

/** The compose services the stack's sources run as (its databases). */
export function sourceServices(sources: SourceSpec[]): string[] {
  return sources.flatMap((s) => driverOf(s.kind).services?.(s) ?? []);
}

/**
 * Sources ready to connect: a database that runs as a compose service is reached at its
 * container's address in the stack's network, so its port need not be published.
 */
export async function reachDatabases(sources: SourceSpec[], compose: Compose, project: ComposeProject): Promise<SourceSpec[]> {
  return atServiceAddresses(sources, (service) => compose.serviceAddress(project, service));
}

/** Sources that run as compose services, each at the address `address` gives its service. */
function atServiceAddresses(sources: SourceSpec[], address: (service: string) => Promise<string>): Promise<SourceSpec[]> {
  return Promise.all(
    sources.map(async (s) => {
      const driver = driverOf(s.kind);
      const [service] = driver.services?.(s) ?? [];
      return service && driver.atServiceAddress ? driver.atServiceAddress(s, await address(service)) : s;
    }),
  );
}

/** The sources of stackvault.yaml ready to connect: databases that run as compose services reached inside the stack's network. */
export async function reachStackSources(loaded: LoadedConfig, compose?: Compose): Promise<SourceSpec[]> {
  const sources = resolveSources(loaded);
  if (sourceServices(sources).length === 0) return sources;
  // The task runner's container is on the stack's network, with no engine to ask: there a
  // service is reached by its name, so one stackvault.yaml serves the host and the runner.
  if (!compose && insideContainer() && !process.env.DOCKER_HOST) return atServiceAddresses(sources, async (service) => service);
  // Only the containers' addresses are needed: no image variables.
  return reachDatabases(sources, compose ?? (await Compose.detect()), composeProject(loaded));
}

/** Podman and Docker mark their containers with these files. */
function insideContainer(): boolean {
  return existsSync('/run/.containerenv') || existsSync('/.dockerenv');
}

export const filesRules = (s: FilesSource) => ({ include: s.include, exclude: s.exclude, classes: s.exclusionClasses });

/** How many files the stack's files sources hold that a backup would take (what a restore would replace). */
export async function dataOnHost(loaded: LoadedConfig): Promise<Array<{ source: string; path: string; files: number }>> {
  const found = [];
  for (const s of resolveSources(loaded)) {
    if (!isFilesSource(s)) continue;
    const { removed } = await clearSourceContents(s.path, filesRules(s), { dryRun: true });
    if (removed > 0) found.push({ source: s.name, path: s.path, files: removed });
  }
  return found;
}

/** Clear what backups hold from every files source (what the rules leave out stays). */
export async function clearStackData(loaded: LoadedConfig): Promise<void> {
  for (const s of resolveSources(loaded)) if (isFilesSource(s)) await clearSourceContents(s.path, filesRules(s));
}
