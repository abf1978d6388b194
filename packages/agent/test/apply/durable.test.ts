/**
 * A staged tree made durable by its commit (apply/durable.ts): `begin` starts the sync and runs
 * its follow-up once it is done; `settle` waits for that sync, or runs one when none was begun (an
 * agent restarted between the stage and the commit).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import { DurableTrees, syncTree } from '../../src/apply/durable.js';

void test('begin syncs, then runs its follow-up; settle waits for it', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'a'));
  writeFileSync(join(dir, 'a', 'f'), 'x');
  const trees = new DurableTrees();
  let after = 0;
  void trees.begin(dir, () => after++);
  await trees.settle(dir);
  assert.equal(after, 1);
  // Nothing begun (a restart in between): settle syncs by itself.
  await trees.settle(dir);
  assert.equal(after, 1);
});

void test('a tree that is gone fails settle with FLT_IO', async (t) => {
  const dir = join(tempDir(t), 'gone');
  await assert.rejects(syncTree(dir), (e: { code?: string }) => e.code === 'FLT_IO');
  const trees = new DurableTrees();
  void trees.begin(dir);
  await assert.rejects(trees.settle(dir), (e: { code?: string }) => e.code === 'FLT_IO');
});

void test('trees begun and never settled (rolled back) are not kept once their sync is done', async (t) => {
  const trees = new DurableTrees();
  const dirs = [0, 1, 2, 3, 4].map((i) => {
    const dir = join(tempDir(t), `r${i}`);
    mkdirSync(dir);
    return dir;
  });
  for (const dir of dirs) {
    await trees.begin(dir); // its sync done; its commit never comes
  }
  // Only the newest may still be waiting for its commit; the four rolled back ones are forgotten.
  assert.ok(trees.size <= 1, `${trees.size} trees kept`);
  await trees.settle(dirs[0]!); // a late settle of a forgotten tree still syncs
});
