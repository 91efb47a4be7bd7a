/**
 * The folder a repository location names, when it names one (`/mnt/backup/acme`,
 * `local:/mnt/backup/acme`, `C:\backup`, a relative path); undefined for a network
 * location (`s3://`, `azure://`, `rclone:`, or an unknown scheme).
 */
export function folderOfLocation(location: string): string | undefined {
  const scheme = /^([a-z][a-z0-9+]*):(?!\\)/i.exec(location)?.[1]?.toLowerCase();
  if (!scheme || /^[a-z]$/i.test(scheme)) return location;
  return scheme === 'local' ? location.slice('local:'.length) : undefined;
}
