import assert from 'node:assert/strict';
import { test } from 'node:test';
import picomatch from 'picomatch';
import { DEFAULT_EXCLUSION_CLASSES } from '../../src/sources/files/exclusion-classes.js';
import { ExclusionMatcher } from '../../src/sources/files/exclusions.js';

// The matcher tests picomatch's expressions itself (its matcher function allocated a result per
// call); it must decide exactly as picomatch's own matcher does.
const patterns = [...Object.values(DEFAULT_EXCLUSION_CLASSES).flat(), '*.tmp', '/cache/', 'data/**/*.bak', '.git/', 'a?c', '[ab]*.txt', '**/node_modules/'];
const paths = [
  'x.log', 'x.log.1', 'x.log.gz', 'dir/x.log', 'logs', 'a/logs', 'a/b/log', 'recordings', 'a/call-recordings', 'y.recording.wav',
  'x.tmp', '.x.tmp', 'cache', 'a/cache', 'data/x.bak', 'data/a/b/x.bak', 'data.bak', '.git', 'a/.git', 'abc', 'a/abc', 'ac',
  'a.txt', 'b/c.txt', 'c.txt', 'node_modules', 'a/node_modules', 'monitor', 'monitors', 'x.log', 'ok.dat', '',
];

function reference(relPath: string, isDir: boolean): string | undefined {
  const name = relPath.slice(relPath.lastIndexOf('/') + 1);
  const hit = (pattern: string) => {
    let p = pattern.trim();
    const dirOnly = p.endsWith('/');
    if (dirOnly) p = p.replace(/\/+$/, '');
    const anchored = p.includes('/');
    if (p.startsWith('/')) p = p.slice(1);
    return (!dirOnly || isDir) && picomatch(p, { dot: true })(anchored ? relPath : name);
  };
  for (const [cls, list] of Object.entries(DEFAULT_EXCLUSION_CLASSES)) if (list.some(hit)) return cls;
  return patterns.slice(Object.values(DEFAULT_EXCLUSION_CLASSES).flat().length).some(hit) ? 'exclude' : undefined;
}

test('exclusion patterns decide as picomatch does, for files and folders', () => {
  const matcher = new ExclusionMatcher({ classes: DEFAULT_EXCLUSION_CLASSES, exclude: patterns.slice(Object.values(DEFAULT_EXCLUSION_CLASSES).flat().length) });
  let excluded = 0;
  for (const path of paths) {
    for (const isDir of [false, true]) {
      const verdict = matcher.classify(path, isDir);
      const expected = reference(path, isDir);
      assert.equal(verdict.excluded ? verdict.reason : undefined, expected, `${path}${isDir ? '/' : ''}`);
      if (expected) excluded++;
    }
  }
  assert.ok(excluded > 20, `only ${excluded} cases excluded: the test would prove little`);
});
