import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDryRun } from '../../src/dry-run.js';
import { planRollback, planUpdate } from '../../src/update/planner.js';
import { releaseId } from '../../src/model/identity.js';
import type { PlanInput } from '../../src/update/planner.js';
import type { JournalEntry, ReleaseSpec, StepKind } from '../../src/model/release.js';

const release = (version: string, digit: string): ReleaseSpec => ({
  app: 'web',
  version,
  runtime: 'process',
  root: digit.repeat(64),
  targetPath: `web/${version}/${digit.repeat(64)}`,
  config: {},
});
const v1 = release('1', 'a');
const v2 = release('2', 'b');
const v3 = release('3', 'c');

const input = (over: Partial<PlanInput> = {}): PlanInput => ({
  app: 'web',
  installed: { current: v1, previous: [], held: null },
  target: v2,
  journal: null,
  stagedRoots: [v1.root],
  keepPrevious: 1,
  maxAttempts: 3,
  ...over,
});
const kinds = (steps: { kind: StepKind }[]) => steps.map((s) => s.kind);
const journal = (step: StepKind, over: Partial<JournalEntry> = {}): JournalEntry => ({
  app: 'web',
  txn: 't1',
  mode: 'update',
  from: v1,
  to: v2,
  step,
  attempts: 0,
  reason: null,
  bytesFetched: 10,
  ...over,
});

void test('a new assignment plans fetch, stage, stop, switch, start, health, commit, cleanup', () => {
  const plan = planUpdate(input());
  assert.equal(plan.action, 'update');
  assert.deepEqual(kinds(plan.steps), [
    'fetch',
    'stage',
    'stop',
    'switch',
    'start',
    'health',
    'commit',
    'cleanup',
  ]);
  assert.deepEqual(plan.steps.at(-1), { kind: 'cleanup', app: 'web', keep: [v2.root, v1.root] });
  assert.deepEqual(plan.steps.at(-2), { kind: 'commit', release: v2, replaced: v1 });
});

void test('a first install has nothing to stop', () => {
  const plan = planUpdate(input({ installed: { current: null, previous: [], held: null }, stagedRoots: [] }));
  assert.deepEqual(kinds(plan.steps), ['fetch', 'stage', 'switch', 'start', 'health', 'commit', 'cleanup']);
});

void test('a release already on disk (a previous one) is neither fetched nor staged', () => {
  const plan = planUpdate(input({ stagedRoots: [v1.root, v2.root] }));
  assert.deepEqual(kinds(plan.steps), ['stop', 'switch', 'start', 'health', 'commit', 'cleanup']);
});

void test('nothing to do: up to date, not assigned, or held after a rollback', () => {
  assert.equal(planUpdate(input({ target: v1 })).note, 'up to date');
  assert.equal(planUpdate(input({ target: null })).action, 'none');
  const held = planUpdate(
    input({
      installed: { current: v1, previous: [], held: { id: releaseId(v2), root: v2.root, reason: 'bad' } },
    }),
  );
  assert.equal(held.action, 'none');
  assert.match(held.note ?? '', /held/);
  // A different release is installed even though an older one is held.
  const next = planUpdate(
    input({
      target: v3,
      installed: { current: v1, previous: [], held: { id: releaseId(v2), root: v2.root, reason: 'x' } },
    }),
  );
  assert.equal(next.action, 'update');
});

void test('keepPrevious bounds what cleanup keeps', () => {
  const installed = { current: v2, previous: [v1], held: null };
  assert.deepEqual(planUpdate(input({ installed, target: v3, keepPrevious: 1 })).steps.at(-1), {
    kind: 'cleanup',
    app: 'web',
    keep: [v3.root, v2.root],
  });
  assert.deepEqual(planUpdate(input({ installed, target: v3, keepPrevious: 2 })).steps.at(-1), {
    kind: 'cleanup',
    app: 'web',
    keep: [v3.root, v2.root, v1.root],
  });
  assert.deepEqual(planUpdate(input({ installed, target: v3, keepPrevious: 0 })).steps.at(-1), {
    kind: 'cleanup',
    app: 'web',
    keep: [v3.root],
  });
});

void test('recovery from fetch or stage resumes the download and staging', () => {
  for (const step of ['fetch', 'stage'] as const) {
    const plan = planUpdate(input({ journal: journal(step) }));
    assert.equal(plan.action, 'resume');
    assert.deepEqual(kinds(plan.steps), [
      'fetch',
      'stage',
      'stop',
      'switch',
      'start',
      'health',
      'commit',
      'cleanup',
    ]);
  }
});

void test('recovery from fetch with a newer assignment abandons the old transaction', () => {
  const plan = planUpdate(input({ journal: journal('fetch'), target: v3 }));
  assert.equal(plan.action, 'update');
  assert.equal(plan.to, v3);
});

void test('recovery from stop, switch, start or health goes through stop again (idempotent) to commit', () => {
  for (const step of ['stop', 'switch', 'start', 'health'] as const) {
    const plan = planUpdate(input({ journal: journal(step), stagedRoots: [v1.root, v2.root] }));
    assert.equal(plan.action, 'resume');
    assert.deepEqual(kinds(plan.steps), ['stop', 'switch', 'start', 'health', 'commit', 'cleanup'], step);
    // Even with a newer assignment: the switched transaction finishes first.
    assert.equal(planUpdate(input({ journal: journal(step), target: v3 })).to, v2);
  }
});

void test('recovery after too many interrupted starts rolls back with a reason', () => {
  const plan = planUpdate(input({ journal: journal('health', { attempts: 3 }) }));
  assert.equal(plan.action, 'rollback');
  assert.deepEqual(kinds(plan.steps), ['stop', 'switch', 'start', 'rollback', 'cleanup']);
  const rollback = plan.steps[3];
  assert.ok(rollback?.kind === 'rollback');
  assert.equal(rollback.release, v1);
  assert.equal(rollback.failed, v2);
  assert.equal(rollback.reason.code, 'FLT_RUNTIME_FAILED');
});

void test('recovery from commit or cleanup only finishes the bookkeeping', () => {
  assert.deepEqual(kinds(planUpdate(input({ journal: journal('commit') })).steps), ['commit', 'cleanup']);
  assert.deepEqual(kinds(planUpdate(input({ journal: journal('cleanup') })).steps), ['cleanup']);
});

void test('recovery of an interrupted rollback runs it again from stop', () => {
  const reason = { code: 'FLT_HEALTH_CHECK_FAILED', message: 'down' };
  for (const step of ['stop', 'switch', 'start', 'rollback'] as const) {
    const plan = planUpdate(
      input({ journal: journal(step, { mode: 'rollback', from: v2, to: v1, reason }) }),
    );
    assert.equal(plan.action, 'resume');
    assert.equal(plan.mode, 'rollback');
    assert.deepEqual(kinds(plan.steps), ['stop', 'switch', 'start', 'rollback', 'cleanup']);
    const step3 = plan.steps[3];
    assert.ok(step3?.kind === 'rollback');
    assert.deepEqual(step3.reason, reason);
  }
  const cleanup = planUpdate(
    input({ journal: journal('cleanup', { mode: 'rollback', from: v2, to: v1, reason }) }),
  );
  assert.deepEqual(kinds(cleanup.steps), ['cleanup']);
});

void test('a failed first install rolls back to nothing: no start, current removed by the rollback step', () => {
  const plan = planUpdate(
    input({
      installed: { current: null, previous: [], held: null },
      journal: journal('start', { from: null, attempts: 5 }),
    }),
  );
  assert.deepEqual(kinds(plan.steps), ['stop', 'switch', 'rollback', 'cleanup']);
  assert.deepEqual(plan.steps[1], { kind: 'switch', release: null });
});

void test('operator rollback goes to the newest previous release on disk and holds the current one', () => {
  const installed = { current: v2, previous: [v1], held: null };
  const plan = planRollback(input({ installed, stagedRoots: [v1.root, v2.root] }), {
    code: 'X',
    message: 'op',
  });
  assert.equal(plan.action, 'rollback');
  assert.equal(plan.to, v1);
  assert.deepEqual(kinds(plan.steps), ['stop', 'switch', 'start', 'rollback', 'cleanup']);
  assert.equal(
    planRollback(input({ installed, stagedRoots: [v2.root] }), { code: 'X', message: 'op' }).action,
    'none',
  );
  assert.equal(
    planRollback(input({ installed: { current: null, previous: [], held: null } }), {
      code: 'X',
      message: 'op',
    }).note,
    'not installed',
  );
});

void test('the planner is pure: the same input gives the same plan and is not mutated', () => {
  const given = input({ journal: journal('switch') });
  const copy = structuredClone(given);
  assert.deepEqual(planUpdate(given), planUpdate(given));
  assert.deepEqual(given, copy);
});

// A release is its tree, its version, its runtime and its signed config (docs/updates.md "What counts
// as a change"): a change of any of them is an update; an unchanged tree is not fetched again.
const sameTree = (over: Partial<ReleaseSpec>): ReleaseSpec => ({ ...v1, ...over });

void test('a config-only change (same tree, same version) runs the transaction without fetching', () => {
  const target = sameTree({ config: { process: { command: ['./run'], env: { MODE: 'b' } } } });
  const plan = planUpdate(input({ target }));
  assert.equal(plan.action, 'update');
  assert.equal(plan.to, target);
  assert.deepEqual(kinds(plan.steps), ['stop', 'switch', 'start', 'health', 'commit', 'cleanup']);
  assert.deepEqual(plan.steps.at(-1), { kind: 'cleanup', app: 'web', keep: [v1.root] });
});

void test('a version bump with the same tree runs the transaction without fetching', () => {
  const target = sameTree({ version: '1.0.1', targetPath: `web/1.0.1/${v1.root}` });
  const plan = planUpdate(input({ target }));
  assert.equal(plan.action, 'update');
  assert.deepEqual(kinds(plan.steps), ['stop', 'switch', 'start', 'health', 'commit', 'cleanup']);
});

void test('a runtime change with the same tree runs the transaction', () => {
  const plan = planUpdate(input({ target: sameTree({ runtime: 'files', config: { files: {} } }) }));
  assert.equal(plan.action, 'update');
});

void test('the same release in another key order is up to date', () => {
  const a = sameTree({ config: { process: { command: ['./run'], env: { A: '1', B: '2' } } } });
  const b = sameTree({ config: { process: { env: { B: '2', A: '1' }, command: ['./run'] } } });
  assert.equal(
    planUpdate(input({ installed: { current: a, previous: [], held: null }, target: b })).note,
    'up to date',
  );
});

void test('a held release is the whole release: another config of the same tree is installed', () => {
  const bad = sameTree({ config: { process: { command: ['./crash'] } } });
  const fixed = sameTree({ config: { process: { command: ['./run'] } } });
  const installed = {
    current: v1,
    previous: [],
    held: { id: releaseId(bad), root: bad.root, reason: 'crashed' },
  };
  assert.equal(planUpdate(input({ installed, target: bad })).action, 'none');
  assert.equal(planUpdate(input({ installed, target: fixed })).action, 'update');
});

void test('a journal at fetch is abandoned for a newer assignment of the same tree', () => {
  const target = sameTree({ version: '9', targetPath: `web/9/${v1.root}` });
  const plan = planUpdate(input({ journal: journal('fetch', { to: sameTree({ version: '8' }) }), target }));
  assert.equal(plan.action, 'update');
  assert.equal(plan.to, target);
});

void test('operator rollback to a previous release of the same tree switches config back', () => {
  const newer = sameTree({ version: '1.1', targetPath: `web/1.1/${v1.root}`, config: { x: 1 } });
  const installed = { current: newer, previous: [v1], held: null };
  const plan = planRollback(input({ installed, stagedRoots: [v1.root] }), { code: 'X', message: 'op' });
  assert.equal(plan.action, 'rollback');
  assert.equal(plan.to, v1);
  assert.deepEqual(kinds(plan.steps), ['stop', 'switch', 'start', 'rollback', 'cleanup']);
  assert.deepEqual(plan.steps.at(-1), { kind: 'cleanup', app: 'web', keep: [v1.root] });
});

void test('the overlap of fetch and stage is in the plan, and the dry run prints it', () => {
  const plan = planUpdate(input());
  assert.deepEqual(plan.steps[0], { kind: 'fetch', release: v2, overlapStage: true });
  assert.deepEqual(plan.steps[1], { kind: 'stage', release: v2 });
  const table = formatDryRun({ plans: [plan], assignmentError: null }, false);
  assert.match(table, /1\. fetch .*staging begins once the tree is known, while the files arrive/);
  assert.match(table, /2\. stage +releases\/bbbbbbbbbbbb/);
});
