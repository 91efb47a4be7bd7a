/**
 * Loading is fastest into a table with only its primary key: secondary indexes built
 * afterwards are sorted once instead of updated row by row, and foreign keys added with
 * checks off cost nothing. This splits SHOW CREATE TABLE text (one definition per line,
 * string values escaped onto that line) into the table to create and what to add later.
 */
export interface SplitTable {
  create: string;
  /** ALTER TABLE clauses for secondary indexes */
  indexes: string[];
  /** ALTER TABLE clauses for foreign keys, added after every table has its indexes */
  foreignKeys: string[];
}

/** B-tree and spatial indexes; FULLTEXT stays (InnoDB adds only one per ALTER, and lists them last anyway). */
const DEFERRABLE_INDEX = /^ {2}(UNIQUE |SPATIAL )?KEY `/;
const FOREIGN_KEY = /^ {2}CONSTRAINT `(?:[^`]|``)*` FOREIGN KEY /;

export function splitCreateTable(create: string, engine: string | null): SplitTable {
  const lines = create.split('\n');
  const close = lines.findIndex((l, i) => i > 0 && l.startsWith(')'));
  if (engine?.toLowerCase() !== 'innodb' || !lines[0]!.trimEnd().endsWith('(') || close < 0) return { create, indexes: [], foreignKeys: [] };
  const definitions = lines.slice(1, close).map((l) => l.replace(/,$/, ''));
  // An AUTO_INCREMENT column must lead some index at all times: that index stays in CREATE TABLE.
  const autoColumn = definitions.map((d) => /^ {2}(`(?:[^`]|``)*`) .* AUTO_INCREMENT\b/.exec(d)?.[1]).find((c) => c !== undefined);
  const kept: string[] = [];
  const indexes: string[] = [];
  const foreignKeys: string[] = [];
  for (const d of definitions) {
    if (FOREIGN_KEY.test(d)) foreignKeys.push(`ADD ${d.trim()}`);
    else if (DEFERRABLE_INDEX.test(d) && !(autoColumn && d.includes(`(${autoColumn}`))) indexes.push(`ADD ${d.trim()}`);
    else kept.push(d);
  }
  return { create: [lines[0], kept.join(',\n'), ...lines.slice(close)].join('\n'), indexes, foreignKeys };
}
