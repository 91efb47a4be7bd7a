import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * DESIGN.md's layers, lowest first (docs/architecture.md draws them); a module may import
 * only its own layer or lower ones. repo/format is the on-storage format, below everything
 * else of the repository.
 */
const LAYERS = ['util', 'repo/backends', 'repo/format', 'repo', 'sources', 'config', 'snapshot', 'release', 'stack', 'runner', 'cli'];
/** Folders whose subfolders are pipelines side by side: none imports another (they share what is above them). */
const SIDE_BY_SIDE = ['repo', 'snapshot'];
const SRC = resolve(fileURLToPath(new URL('../../../src', import.meta.url)));

function layerOf(file: string): number {
  const rel = relative(SRC, file).split(sep).join('/');
  let best = -1;
  LAYERS.forEach((layer, i) => {
    if (rel.startsWith(layer + '/') && (best < 0 || layer.length > LAYERS[best]!.length)) best = i;
  });
  return best;
}

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(full);
    else if (entry.name.endsWith('.ts')) yield full;
  }
}

test('a lower layer never imports a higher one', () => {
  const violations: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const own = layerOf(file);
    assert.ok(own >= 0, `${relative(SRC, file)} is in no layer`);
    for (const match of readFileSync(file, 'utf8').matchAll(/(?:from |import\()'(\.[^']+)'/g)) {
      const target = resolve(dirname(file), match[1]!.replace(/\.js$/, '.ts'));
      const theirs = layerOf(target);
      // repo/backends is below repo: repo may use backends, backends may not use repo.
      if (theirs > own) violations.push(`${relative(SRC, file)} (${LAYERS[own]}) imports ${relative(SRC, target)} (${LAYERS[theirs]})`);
    }
  }
  assert.deepEqual(violations, []);
});

test('pipelines side by side never import each other: repo/encode, decode and maintenance, snapshot/backup, restore and maintenance', () => {
  const violations: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const rel = relative(SRC, file).split(sep).join('/');
    for (const parent of SIDE_BY_SIDE) {
      const own = new RegExp(`^${parent}/([^/]+)/`).exec(rel)?.[1];
      if (!own) continue;
      for (const match of readFileSync(file, 'utf8').matchAll(/(?:from |import\()'(\.[^']+)'/g)) {
        const target = relative(SRC, resolve(dirname(file), match[1]!)).split(sep).join('/');
        const theirs = new RegExp(`^${parent}/([^/]+)/`).exec(target)?.[1];
        if (theirs && theirs !== own && !sharedBelow(parent, own, theirs)) violations.push(`${rel} imports ${target}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

/**
 * What the side-by-side folders of repo/ share: its backends and its format, and check's
 * reading of packs (repo/maintenance verifies packs with repo/decode's worker threads).
 */
function sharedBelow(parent: string, own: string, theirs: string): boolean {
  if (parent !== 'repo') return false;
  return theirs === 'backends' || theirs === 'format' || (own === 'maintenance' && theirs === 'decode');
}

/** The modules a module loads when it is imported: its static imports and theirs (type-only imports load nothing). */
function staticClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    if (!file.endsWith('.ts')) return;
    for (const match of readFileSync(file, 'utf8').matchAll(/^import (?!type )[^;]*? from '([^']+)';/gm)) {
      const spec = match[1]!;
      visit(spec.startsWith('.') ? resolve(dirname(file), spec.replace(/\.js$/, '.ts')) : spec);
    }
  };
  visit(entry);
  return seen;
}

test('every command imports the source registry: it loads no database client and no schema library', () => {
  const loaded = [...staticClosure(join(SRC, 'sources', 'registry.ts'))].map((f) => (f.startsWith(SRC) ? relative(SRC, f).split(sep).join('/') : f));
  // A driver loads what it runs when it runs it: importing the MariaDB client with the registry made every command 0.15 s slower.
  assert.deepEqual(loaded.filter((f) => f === 'zod' || /^sources\/mariadb\/(dump|restore|verify|connection|wire)\.ts$/.test(f)), []);
});

test('unit tests start no servers, containers or terminals: those are integration tests', () => {
  const TEST = resolve(fileURLToPath(new URL('../../../test', import.meta.url)));
  const starters = /from '\.\.\/support\/(storage-servers|mariadb-server|container-engine|terminal)\.js'|node:child_process/;
  const offenders = readdirSync(join(TEST, 'unit')).filter((f) => f.endsWith('.ts') && f !== 'layers.test.ts' && starters.test(readFileSync(join(TEST, 'unit', f), 'utf8')));
  assert.deepEqual(offenders, []);
});

test('the repository never writes user files: outside its backends (which store objects), repo/ calls no file-writing function', () => {
  const writers = /\b(writeAtSync|writePartsDirect|writeSync|writeFileSync|writeFile|writev|writevSync|appendFile|appendFileSync|createWriteStream)\b/;
  const violations: string[] = [];
  for (const file of sourceFiles(join(SRC, 'repo'))) {
    const rel = relative(SRC, file).split(sep).join('/');
    if (rel.startsWith('repo/backends/')) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (writers.test(line) && !/^\s*(\/\/|\*)/.test(line)) violations.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(violations, []);
});
