/** Quoting for statements we build; our sessions never run with ANSI_QUOTES or NO_BACKSLASH_ESCAPES. */

export function ident(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

export function qualified(database: string, name: string): string {
  return `${ident(database)}.${ident(name)}`;
}

export function literal(value: string): string {
  return "'" + value.replace(/[\\'\0\n\r\x1a]/g, (c) => ({ '\\': '\\\\', "'": "\\'", '\0': '\\0', '\n': '\\n', '\r': '\\r', '\x1a': '\\Z' })[c]!) + "'";
}

/** A database or table name as a file name in the snapshot: any character the server allows, none that a file system minds. */
export function fileName(name: string): string {
  return encodeURIComponent(name).replace(/^\./, '%2E');
}

/** Schemas that belong to the server, not to the application. */
export const SYSTEM_SCHEMAS = ['mysql', 'information_schema', 'performance_schema', 'sys'];
