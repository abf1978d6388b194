/**
 * The delta rebuild workers (fetch/rebuild-pool.ts): a job gives the same outcome on a worker and
 * on the calling thread; a base changed on disk is reported, not used; a delta of other content
 * stores nothing; a worker that goes away mid-job leaves its jobs to the calling thread.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { chunkBuffer, contentId, encodeDelta } from '@flotilla/store';
import type { FileObject } from '@flotilla/store';
import type { RebuildJob } from '../../src/fetch/rebuild-job.js';
import { RebuildPool } from '../../src/fetch/rebuild-pool.js';
import { tempDir } from '@flotilla/testkit';

function fileObject(content: Buffer, mode = 0o644): FileObject {
  const chunks = chunkBuffer(content).map(({ offset, length }) => ({
    id: contentId(content.subarray(offset, offset + length)),
    size: length,
  }));
  return { type: 'file', mode, size: content.length, chunks };
}

/** A 300 KB base on disk and a target with a few edits, as a rebuild job. */
function job(t: TestContext, payloadOf?: (base: Buffer, target: Buffer) => Buffer) {
  const dir = tempDir(t);
  const base = randomBytes(300_000);
  const target = Buffer.from(base);
  randomBytes(500).copy(target, 120_000);
  const basePath = join(dir, 'base.bin');
  writeFileSync(basePath, base);
  const wholeDir = join(dir, 'whole');
  mkdirSync(wholeDir);
  const targetFile = fileObject(target, 0o755);
  const rebuildJob: RebuildJob = {
    basePath,
    base: fileObject(base),
    targetId: contentId(Buffer.from(JSON.stringify(targetFile))),
    target: targetFile,
    payload: (payloadOf ?? ((b, tg) => encodeDelta(b, tg)))(base, target),
    wholeDir,
    maxBase: base.length,
    maxTarget: target.length,
  };
  return { job: rebuildJob, target, stored: join(wholeDir, rebuildJob.targetId) };
}

for (const threads of [1, 0]) {
  void test(`rebuilds, verifies and keeps the file whole (${threads} worker threads)`, async (t) => {
    const pool = new RebuildPool(threads);
    t.after(() => pool.close());
    const { job: rebuildJob, target, stored } = job(t);
    const outcome = await pool.run(rebuildJob);
    assert.equal(outcome.kind, 'stored');
    assert.ok(outcome.kind === 'stored' && outcome.written === target.length);
    assert.ok(outcome.kind === 'stored' && outcome.stamp?.ino === BigInt(statSync(stored).ino));
    assert.deepEqual(readFileSync(stored), target);
    assert.equal(statSync(stored).mode & 0o7777, 0o755);
    pool.release();
    // The same job again finds the file there: nothing is written.
    assert.deepEqual(await pool.run(rebuildJob), { kind: 'stored', written: 0 });
  });

  void test(`a base changed on disk is reported, and a delta of other content stores nothing (${threads} worker threads)`, async (t) => {
    const pool = new RebuildPool(threads);
    t.after(() => pool.close());
    const changed = job(t);
    writeFileSync(changed.job.basePath, randomBytes(300_000));
    const outcome = await pool.run(changed.job);
    assert.equal(outcome.kind, 'base-changed');
    assert.equal(
      outcome.kind === 'base-changed' && outcome.payload.length > 0,
      true,
      'the payload comes back',
    );
    const wrong = job(t, (base, target) => {
      const other = Buffer.from(target);
      other[0] = (other[0] ?? 0) ^ 0xff;
      return encodeDelta(base, other);
    });
    const wrongOutcome = await pool.run(wrong.job);
    assert.equal(wrongOutcome.kind === 'error' && wrongOutcome.code, 'FLT_HASH_MISMATCH');
    assert.equal(existsSync(wrong.stored), false);
    const garbage = job(t, () => Buffer.from('not a zstd frame'));
    assert.equal((await pool.run(garbage.job)).kind, 'error');
  });
}

void test('a worker that goes away fails the jobs it held (their deltas are declined) and stores nothing partial under its name', async (t) => {
  const pool = new RebuildPool(1);
  const jobs = [job(t), job(t), job(t)];
  const first = await pool.run(jobs[0]!.job); // the worker is up
  assert.equal(first.kind, 'stored');
  const running = jobs.slice(1).map((j) => pool.run(j.job));
  await pool.close(); // terminated with the jobs posted to it
  const outcomes = await Promise.all(running);
  outcomes.forEach((outcome, i) => {
    const { stored, target } = jobs[i + 1]!;
    if (outcome.kind === 'stored') assert.deepEqual(readFileSync(stored), target);
    else {
      assert.deepEqual(outcome, {
        kind: 'error',
        code: 'FLT_INTERNAL',
        message: 'the delta rebuild worker stopped',
      });
      // The worker may have been ended after its rename but before its reply: the file is then
      // whole (the rename is atomic), never partial.
      if (existsSync(stored)) assert.deepEqual(readFileSync(stored), target);
    }
  });
  // With no worker left, jobs run on the calling thread.
  const after = job(t);
  assert.equal((await pool.run(after.job)).kind, 'stored');
  assert.deepEqual(readFileSync(after.stored), after.target);
});
