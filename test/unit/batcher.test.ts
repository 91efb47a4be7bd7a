import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Batcher } from '../../src/util/batcher.js';

test('a batcher sends what was added in one turn together, at most a batch at a time, and gives each caller its own result', async () => {
  const sent: number[][] = [];
  const batcher = new Batcher<number, string>({ items: 3, bytes: 1000 }, async (items) => {
    sent.push(items);
    return items.map((n) => (n === 4 ? new Error('four failed') : `done ${n}`));
  });
  const results = await Promise.allSettled([5, 1, 4, 2].map((n) => batcher.add(n, 10)));
  assert.deepEqual(sent, [[5, 1, 4], [2]]);
  assert.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    ['done 5', 'done 1', 'four failed', 'done 2'],
  );
});

test('gathering: items added over several turns wait until a turn adds none, then go in order, cut by the batch limits', async () => {
  const sent: number[][] = [];
  const batcher = new Batcher<number, number>({ items: 3, bytes: 25 }, async (items) => (sent.push(items), items.map((n) => n * 10)), {
    items: 100,
    bytes: 1000,
    order: (x, y) => x - y,
  });
  const waiting: Array<Promise<number>> = [];
  for (const turn of [[9, 3], [7, 1, 8], [2]]) {
    waiting.push(...turn.map((n) => batcher.add(n, n === 8 ? 21 : 5)));
    await nextTurn();
    assert.deepEqual(sent, [], 'nothing is sent while every turn adds more');
  }
  assert.deepEqual(await Promise.all(waiting), [90, 30, 70, 10, 80, 20]);
  // In order; a batch ends at 3 items, or before the item that would pass 25 bytes.
  assert.deepEqual(sent, [[1, 2, 3], [7], [8], [9]]);
});

test('gathering: reaching the gathering limit sends at once, without waiting for a quiet turn', async () => {
  const sent: number[][] = [];
  const batcher = new Batcher<number, number>({ items: 2, bytes: 1e9 }, async (items) => (sent.push(items), items), { items: 4, bytes: 1e9, order: (x, y) => y - x });
  const waiting = [1, 2, 3, 4].map((n) => batcher.add(n, 1));
  assert.deepEqual(sent, [[4, 3], [2, 1]]);
  await Promise.all(waiting);
});

test('gathering: after the gathering limit sends mid-turn, what is added next still waits for a quiet turn', async () => {
  const sent: number[][] = [];
  const batcher = new Batcher<number, number>({ items: 2, bytes: 1e9 }, async (items) => (sent.push(items), items), { items: 4, bytes: 1e9, order: (x, y) => x - y });
  const waiting = [4, 3, 2, 1, 9].map((n) => batcher.add(n, 1));
  assert.deepEqual(sent, [[1, 2], [3, 4]], 'the first four go at once');
  for (const n of [8, 7]) {
    await nextTurn();
    waiting.push(batcher.add(n, 1));
    assert.equal(sent.length, 2, 'nothing more is sent while every turn adds an item');
  }
  await Promise.all(waiting);
  assert.deepEqual(sent.slice(2), [[7, 8], [9]]);
});

test('gathering: the first gathering holds a share of the limits, each next one twice as much, up to the limits', () => {
  const sent: number[][] = [];
  const batcher = new Batcher<number, number>({ items: 100, bytes: 1e9 }, async (items) => (sent.push(items), items), { items: 8, bytes: 1e9, order: (x, y) => y - x, first: 1 / 4 });
  // Within one turn: gatherings of 2, 4, 8, 8 items, each in order.
  for (let n = 1; n <= 22; n++) void batcher.add(n, 1);
  assert.deepEqual(sent, [[2, 1], [6, 5, 4, 3], [14, 13, 12, 11, 10, 9, 8, 7], [22, 21, 20, 19, 18, 17, 16, 15]]);
});
