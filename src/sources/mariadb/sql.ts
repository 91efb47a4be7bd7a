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

/**
 * Where the quoted token that starts at `start` (a `name`, a 'string' or a "string") ends:
 * the index of its closing quote. A doubled quote stands for itself; in strings a
 * backslash escapes the next character. Statements are read by such tokens, never by
 * lines: names and strings may hold newlines, commas and parentheses.
 */
export function quotedEnd(text: string, start: number): number {
  const quote = text[start];
  let i = start + 1;
  for (; i < text.length; i++) {
    if (quote !== '`' && text[i] === '\\') i++;
    else if (text[i] === quote) {
      if (text[i + 1] === quote) i++;
      else break;
    }
  }
  return i;
}
