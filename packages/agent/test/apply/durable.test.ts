/**
 * A staged tree made durable by its commit (apply/durable.ts): `defer` records it and what runs once
 * it is durable; `settle` syncs it then (and syncs by itself when nothing was deferred: an agent
 * restarted between the stage and the commit).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from '@flotilla/testkit';
import { DurableTrees, syncTree } from '../../src/apply/durable.js';

void test('defer waits for the commit: settle syncs, then runs the follow-up once', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'a'));
  writeFileSync(join(dir, 'a', 'f'), 'x');
  const trees = new DurableTrees();
  let after = 0;
  trees.defer(dir, () => after++);
  await sleep(50);
  assert.equal(after, 0, 'nothing runs before the commit');
  await trees.settle(dir);
  assert.equal(after, 1);
  // Nothing deferred (a restart in between): settle syncs by itself.
  await trees.settle(dir);
  assert.equal(after, 1);
});

void test('a tree that is gone fails settle with FLT_IO, and its follow-up does not run', async (t) => {
  const dir = join(tempDir(t), 'gone');
  await assert.rejects(syncTree(dir), (e: { code?: string }) => e.code === 'FLT_IO');
  const trees = new DurableTrees();
  let after = 0;
  trees.defer(dir, () => after++);
  await assert.rejects(trees.settle(dir), (e: { code?: string }) => e.code === 'FLT_IO');
  assert.equal(after, 0);
});

void test('trees deferred and never settled (rolled back) are forgotten when their app stages again', async (t) => {
  const trees = new DurableTrees();
  const releases = join(tempDir(t), 'apps', 'a', 'releases');
  const dirs = [0, 1, 2, 3, 4].map((i) => {
    const dir = join(releases, `r${i}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  });
  for (const dir of dirs) trees.defer(dir); // each rolled back: its commit never comes
  trees.defer(join(tempDir(t), 'apps', 'b', 'releases', 'r0')); // another app's is kept
  assert.equal(trees.size, 2);
  await trees.settle(dirs[0]!); // a late settle of a forgotten tree still syncs
});
