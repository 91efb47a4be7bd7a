import type { SourceDriver } from './driver.js';
import { filesDriver, type FilesSource } from './files/driver.js';
import { gitDriver, type GitSource } from './git/driver.js';
import { mariadbDriver } from './mariadb/driver.js';
import type { MariadbSource } from './mariadb/dump.js';

/**
 * Every kind of source stackvault knows. A new kind is a folder of sources/, a line here
 * and one in config-schema.ts (its stackvault.yaml schema, loaded only with a config).
 */
export const SOURCE_DRIVERS: readonly SourceDriver<SourceSpec>[] = [filesDriver, mariadbDriver, gitDriver] as never[];
/** A source of any kind, ready to back up or restore. */
export type SourceSpec = FilesSource | MariadbSource | GitSource;

/** The driver of a kind of source (a snapshot's record or a spec names it). */
export function driverOf(kind: string | undefined): SourceDriver<SourceSpec> {
  const driver = SOURCE_DRIVERS.find((d) => d.kind === (kind ?? 'files'));
  if (!driver) throw new Error(`no driver for sources of kind "${kind}"`);
  return driver;
}

/** The driver that takes an entry of stackvault.yaml with this `type`. */
export function driverOfType(type: string): SourceDriver<SourceSpec> {
  const driver = SOURCE_DRIVERS.find((d) => d.configTypes.includes(type));
  if (!driver) throw new Error(`no driver takes sources of type "${type}"`);
  return driver;
}
