import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, isNode, parseDocument, type Node } from 'yaml';
import type { z } from 'zod';
import { resolveExclusionClasses } from '../sources/files/exclusion-classes.js';
import { UsageError } from '../util/errors.js';
import { configSchema, type StackConfig } from './schema.js';

export interface LoadedConfig {
  file: string;
  /** folder of the file; relative paths in it are relative to this */
  baseDir: string;
  config: StackConfig;
}

/** Load and validate stackvault.yaml; every error names file:line:column, the field, and what is expected. */
export function loadConfig(file: string): LoadedConfig {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read config ${path}: ${code === 'ENOENT' ? 'no such file' : code ?? String(err)}`);
  }
  return parseConfig(text, path);
}

export function parseConfig(text: string, path: string): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = lineCounter.linePos(e.pos[0]);
    throw new UsageError(`${path}:${pos.line}:${pos.col}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const parsed = configSchema.safeParse(doc.toJS() ?? {}, { reportInput: true });
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 10).map((issue) => describeIssue(issue, doc, lineCounter, path));
    throw new UsageError(`invalid config:\n  ${lines.join('\n  ')}`);
  }
  const config = parsed.data;
  const known = Object.keys(resolveExclusionClasses(config.exclusion_classes));
  config.sources.forEach((source, i) => {
    if (source.type === 'mariadb' || source.type === 'mysql') {
      const ways = [source.socket, source.host, source.service].filter((w) => w !== undefined).length;
      if (ways !== 1) {
        throw new UsageError(
          `${locate(doc, lineCounter, ['sources', i], path)}: sources[${i}]: a ${source.type} source needs ${ways === 0 ? '' : 'only one of '}host (and port), socket, or service (its compose service)`,
        );
      }
    }
    if (source.type !== 'files') return;
    for (const cls of source.exclusions ?? []) {
      if (!known.includes(cls)) {
        const where = locate(doc, lineCounter, ['sources', i, 'exclusions'], path);
        throw new UsageError(`${where}: sources[${i}].exclusions: unknown exclusion class "${cls}" (known: ${known.join(', ')})`);
      }
    }
  });
  const drillServer = config.drill?.database;
  if (drillServer && drillServer.socket === undefined && drillServer.host === undefined) {
    throw new UsageError(`${locate(doc, lineCounter, ['drill', 'database'], path)}: drill.database needs host (and port) or socket`);
  }
  return { file: path, baseDir: dirname(path), config };
}

function locate(doc: ReturnType<typeof parseDocument>, lineCounter: LineCounter, fieldPath: PropertyKey[], file: string): string {
  // Walk down as far as the document goes: a missing field is reported at its parent.
  for (let depth = fieldPath.length; depth >= 0; depth--) {
    const node = depth === 0 ? doc.contents : doc.getIn(fieldPath.slice(0, depth) as Array<string | number>, true);
    if (isNode(node) && (node as Node).range) {
      const pos = lineCounter.linePos((node as Node).range![0]);
      return `${file}:${pos.line}:${pos.col}`;
    }
  }
  return `${file}:1:1`;
}

function formatPath(path: PropertyKey[]): string {
  return path.reduce<string>((out, p) => (typeof p === 'number' ? `${out}[${p}]` : out ? `${out}.${String(p)}` : String(p)), '');
}

function describeIssue(issue: z.core.$ZodIssue, doc: ReturnType<typeof parseDocument>, lineCounter: LineCounter, file: string): string {
  const where = locate(doc, lineCounter, issue.path, file);
  const field = formatPath(issue.path) || '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys;
    const at = locateKey(doc, lineCounter, issue.path, keys[0]!, file) ?? where;
    return `${at}: ${field === '(top level)' ? '' : field + ': '}unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`;
  }
  if (issue.code === 'invalid_type') {
    if (issue.input === undefined) return `${where}: ${field}: missing (expected ${issue.expected})`;
    const found = issue.input === null ? 'nothing' : Array.isArray(issue.input) ? 'a list' : `${typeof issue.input} ${JSON.stringify(issue.input)}`;
    return `${where}: ${field}: expected ${issue.expected}, found ${found}`;
  }
  if (issue.code === 'invalid_value') {
    return `${where}: ${field}: expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}, found ${JSON.stringify(issue.input)}`;
  }
  return `${where}: ${field}: ${issue.message}`;
}

function locateKey(doc: ReturnType<typeof parseDocument>, lineCounter: LineCounter, parent: PropertyKey[], key: string, file: string): string | undefined {
  const map = parent.length ? doc.getIn(parent as Array<string | number>, true) : doc.contents;
  const items = (map as { items?: Array<{ key: unknown }> } | null)?.items;
  const pair = items?.find((p) => isNode(p.key) && (p.key as unknown as { value: unknown }).value === key);
  const range = pair && isNode(pair.key) ? (pair.key as Node).range : undefined;
  if (!range) return undefined;
  const pos = lineCounter.linePos(range[0]);
  return `${file}:${pos.line}:${pos.col}`;
}
