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
  trees.begin(dir, () => after++);
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
  trees.begin(dir);
  await assert.rejects(trees.settle(dir), (e: { code?: string }) => e.code === 'FLT_IO');
});
