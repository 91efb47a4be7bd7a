/** Object keys in a repository. Every name is the SHA-256 of the object's stored bytes. */
export type ObjectKind = 'keys' | 'data' | 'index' | 'snapshots' | 'forget' | 'deletions' | 'binlog';

export const CONFIG_KEY = 'config';

export function objectKey(kind: ObjectKind, id: string): string {
  return kind === 'data' ? `data/${id.slice(0, 2)}/${id}` : `${kind}/${id}`;
}

export function idFromKey(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

export function isObjectId(text: string): boolean {
  return /^[0-9a-f]{64}$/.test(text);
}
