import { quotedEnd } from './sql.js';

/**
 * Loading is fastest into a table with only its primary key: secondary indexes built
 * afterwards are sorted once instead of updated row by row, and foreign keys added with
 * checks off cost nothing. This splits SHOW CREATE TABLE text into the table to create and
 * what to add later.
 */
export interface SplitTable {
  create: string;
  /** ALTER TABLE clauses for secondary indexes */
  indexes: string[];
  /** ALTER TABLE clauses for foreign keys, added after every table has its indexes */
  foreignKeys: string[];
}

/** B-tree and spatial indexes; FULLTEXT stays (InnoDB adds only one per ALTER, and lists them last anyway). */
const DEFERRABLE_INDEX = /^(UNIQUE |SPATIAL )?KEY `/;
const FOREIGN_KEY = /^CONSTRAINT `(?:[^`]|``)*` FOREIGN KEY /;

/**
 * Where the definitions of a CREATE TABLE are: the opening and closing parenthesis of the
 * list and the commas between definitions, found by reading tokens. Quoted names and
 * strings may hold newlines, commas and parentheses (a column named "a<newline>b"): a
 * reading by lines split such a table in the middle of a name.
 */
function definitionList(create: string): { open: number; close: number; commas: number[] } | undefined {
  let depth = 0;
  let open = -1;
  const commas: number[] = [];
  for (let i = 0; i < create.length; i++) {
    const c = create[i]!;
    if (c === '`' || c === "'" || c === '"') i = quotedEnd(create, i);
    else if (c === '(') {
      if (depth++ === 0) open = i;
    } else if (c === ')') {
      if (--depth === 0) return { open, close: i, commas };
    } else if (c === ',' && depth === 1) commas.push(i);
  }
  return undefined;
}

export function splitCreateTable(create: string, engine: string | null): SplitTable {
  const list = engine?.toLowerCase() === 'innodb' ? definitionList(create) : undefined;
  if (!list) return { create, indexes: [], foreignKeys: [] };
  const bounds = [list.open, ...list.commas, list.close];
  const definitions = bounds.slice(1).map((end, i) => create.slice(bounds[i]! + 1, end).trim());
  // An AUTO_INCREMENT column must lead some index at all times: that index stays in CREATE TABLE.
  const autoColumn = definitions.map((d) => /^(`(?:[^`]|``)*`) [\s\S]* AUTO_INCREMENT\b/.exec(d)?.[1]).find((c) => c !== undefined);
  const kept: string[] = [];
  const indexes: string[] = [];
  const foreignKeys: string[] = [];
  for (const d of definitions) {
    if (FOREIGN_KEY.test(d)) foreignKeys.push(`ADD ${d}`);
    else if (DEFERRABLE_INDEX.test(d) && !(autoColumn && d.includes(`(${autoColumn}`))) indexes.push(`ADD ${d}`);
    else kept.push(d);
  }
  return { create: `${create.slice(0, list.open + 1).trimEnd()}\n${kept.map((d) => `  ${d}`).join(',\n')}\n${create.slice(list.close)}`, indexes, foreignKeys };
}
