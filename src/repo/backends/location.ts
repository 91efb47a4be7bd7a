/**
 * The folder a repository location names, when it names one (`/mnt/backup/acme`,
 * `local:/mnt/backup/acme`, `C:\backup`, a relative path); undefined for a network
 * location (`s3://`, `azure://`, `rclone:`, or an unknown scheme).
 */
export function folderOfLocation(location: string): string | undefined {
  const scheme = schemeOf(location);
  if (!scheme || /^[a-z]$/.test(scheme)) return location;
  return scheme === 'local' ? location.slice('local:'.length) : undefined;
}

/**
 * A location's scheme in lower case (`s3`, `rclone`, `local`; a Windows drive letter is
 * one letter), or undefined for a plain path. `C:\backup` has none: a colon before a
 * backslash is a drive.
 */
export function schemeOf(location: string): string | undefined {
  return /^([a-z][a-z0-9+]*):(?!\\)/i.exec(location)?.[1]?.toLowerCase();
}
