import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveAgentConfig } from '../../src/config.js';
import { dryRunUpdates, formatDryRun } from '../../src/dry-run.js';
import { UpdateRecords } from '../../src/state/update-records.js';
import type { ReleaseSpec } from '../../src/model/release.js';
import { tempDir } from '@flotilla/testkit';
import { stateDb } from './fixtures.js';

const release = (version: string, digit: string): ReleaseSpec => ({
  app: 'web',
  version,
  runtime: 'files',
  root: digit.repeat(64),
  targetPath: `web/${version}/${digit.repeat(64)}`,
  config: { files: { path: '/opt/web' } },
});

void test('--dry-run prints the recovery plan of an interrupted update, as a table or JSON, and executes nothing', async (t) => {
  const dataDir = join(tempDir(t), 'agent');
  const db = stateDb(t, dataDir);
  const records = new UpdateRecords(db);
  const v1 = release('1', 'a');
  const v2 = release('2', 'b');
  records.commit('web', v1, null, 1);
  const journal = {
    app: 'web',
    txn: 't',
    mode: 'update' as const,
    from: v1,
    to: v2,
    step: 'switch' as const,
    attempts: 0,
    reason: null,
    bytesFetched: 0,
  };
  records.writeJournal(journal);
  db.close();

  const config = resolveAgentConfig({ flags: { dataDir, offline: true }, env: {} });
  const result = await dryRunUpdates(config);
  assert.equal(result.assignmentError?.code, 'FLT_UNAVAILABLE');
  assert.equal(result.plans.length, 1);
  assert.equal(result.plans[0]?.action, 'resume');
  const table = formatDryRun(result, false);
  assert.match(table, /web: resume/);
  assert.match(table, /switch +current -> releases\/bbbbbbbbbbbb/);
  assert.match(table, /commit +2, keep 1 as previous/);
  const json = JSON.parse(formatDryRun(result, true)) as { plans: { steps: { kind: string }[] }[] };
  assert.deepEqual(
    json.plans[0]?.steps.map((s) => s.kind),
    ['stop', 'switch', 'start', 'health', 'commit', 'cleanup'],
  );

  // Nothing ran: the journal is where it was.
  const again = stateDb(t, dataDir);
  t.after(() => again.close());
  assert.deepEqual(new UpdateRecords(again).journal('web'), journal);
});
