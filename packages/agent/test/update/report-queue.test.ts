import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { isAppStatusReport } from '@flotilla/protocol';
import type { AppStatusReport, DeviceReport, UpdateReport } from '@flotilla/protocol';
import { ReportQueue } from '../../src/update/report-queue.js';
import { quietLogger } from './fixtures.js';

const report = (phase: UpdateReport['phase'], n = 0): UpdateReport => ({
  app: 'a',
  targetPath: 'a/1/x',
  phase,
  bytesDone: n,
});

void test('reports are queued while the server is unreachable and sent in order once it answers', async () => {
  let up = false;
  const sent: UpdateReport[] = [];
  const queue = new ReportQueue({
    logger: quietLogger(),
    retryMs: 5,
    maxRetryMs: 10,
    send: (r) => {
      if (!up) return Promise.reject(new Error('offline'));
      if (!isAppStatusReport(r)) sent.push(r);
      return Promise.resolve();
    },
  });
  queue.push(report('downloading', 1));
  queue.push(report('installing'));
  queue.push(report('committed'));
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(sent.length, 0);
  up = true;
  await queue.flushed();
  assert.deepEqual(
    sent.map((r) => r.phase),
    ['downloading', 'installing', 'committed'],
  );
  queue.close();
});

void test('when full, progress reports are dropped before phase changes', async () => {
  const sent: UpdateReport[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const queue = new ReportQueue({
    logger: quietLogger(),
    maxQueued: 3,
    send: async (r) => {
      await gate;
      if (!isAppStatusReport(r)) sent.push(r);
    },
  });
  queue.push(report('installing'));
  queue.push(report('downloading', 1));
  queue.push(report('downloading', 2));
  queue.push(report('committed'));
  release();
  await queue.flushed();
  assert.deepEqual(
    sent.map((r) => `${r.phase}${r.bytesDone ?? ''}`),
    ['installing0', 'downloading2', 'committed0'],
  );
  queue.close();
});

void test('a report the server refuses (4xx) is dropped, not retried forever', async () => {
  const sent: string[] = [];
  const queue = new ReportQueue({
    logger: quietLogger(),
    retryMs: 5,
    send: (r) => {
      if (isAppStatusReport(r)) return Promise.resolve();
      if (r.phase === 'failed') return Promise.reject(new FlotillaError('FLT_CONFLICT', 'stale'));
      sent.push(r.phase);
      return Promise.resolve();
    },
  });
  queue.push(report('failed'));
  queue.push(report('committed'));
  await queue.flushed();
  assert.deepEqual(sent, ['committed']);
  queue.close();
});

const status = (app: string, restarts: number): AppStatusReport => ({
  app,
  targetPath: `${app}/1/x`,
  process: { state: 'restarting', since: new Date(0).toISOString(), restarts, lastExit: null },
});

void test("an app's process status replaces the one of that app still waiting, in place of nothing else", async () => {
  const sent: DeviceReport[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const queue = new ReportQueue({
    logger: quietLogger(),
    send: async (r) => {
      await gate;
      sent.push(r);
    },
  });
  queue.push(status('a', 1)); // in flight: kept
  queue.push(report('committed'));
  queue.push(status('a', 2));
  queue.push(status('b', 1));
  queue.push(status('a', 3));
  release();
  await queue.flushed();
  assert.deepEqual(
    sent.map((r) => (isAppStatusReport(r) ? `${r.app}:${r.process.restarts}` : r.phase)),
    ['a:1', 'committed', 'b:1', 'a:3'],
  );
  queue.close();
});

void test('a server older than the running field refuses it (FLT_VALIDATION): the report is sent without it', async () => {
  const sent: DeviceReport[] = [];
  const queue = new ReportQueue({
    logger: quietLogger(),
    send: (r) => {
      if (isAppStatusReport(r) || 'running' in r)
        return Promise.reject(new FlotillaError('FLT_VALIDATION', 'must NOT have additional properties'));
      sent.push(r);
      return Promise.resolve();
    },
  });
  queue.push({ ...report('committed'), running: 'a/1/x' });
  queue.push(status('a', 1));
  queue.push(report('failed'));
  await queue.flushed();
  assert.deepEqual(sent, [report('committed'), report('failed')]);
  queue.close();
});

/** A queue whose first send waits for `release`: what is pushed meanwhile queues up behind it. */
function gatedQueue(opts: {
  batch: (reports: DeviceReport[]) => Promise<void>;
  single?: (report: DeviceReport) => Promise<void>;
}) {
  const calls: string[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const name = (r: DeviceReport) => (isAppStatusReport(r) ? `status:${r.app}` : r.phase);
  const queue = new ReportQueue({
    logger: quietLogger(),
    retryMs: 5,
    maxRetryMs: 10,
    send: async (r) => {
      await gate;
      calls.push(`one ${name(r)}`);
      await opts.single?.(r);
    },
    sendBatch: async (reports) => {
      calls.push(`batch ${reports.map(name).join(',')}`);
      await opts.batch(reports);
    },
  });
  return { queue, calls, release };
}

void test('reports queued while one is sent go together in one batch, in order', async () => {
  const { queue, calls, release } = gatedQueue({ batch: () => Promise.resolve() });
  queue.push(report('downloading', 1));
  queue.push(report('installing'));
  queue.push(report('committed'));
  queue.push(status('a', 1));
  release();
  await queue.flushed();
  assert.deepEqual(calls, ['one downloading', 'batch installing,committed,status:a']);
  queue.close();
});

void test('a batch refused for one entry (details.index) drops that entry and sends the rest again', async () => {
  let refused = false;
  const { queue, calls, release } = gatedQueue({
    batch: (reports) => {
      if (!refused) {
        refused = true;
        return Promise.reject(
          new FlotillaError('FLT_REPORT_STALE', 'report 1: not assigned', { details: { index: 1 } }),
        );
      }
      assert.equal(reports.length, 2);
      return Promise.resolve();
    },
  });
  queue.push(report('downloading', 1));
  queue.push(report('installing'));
  queue.push({ ...report('health'), targetPath: 'a/0/old' });
  queue.push(report('committed'));
  release();
  await queue.flushed();
  assert.deepEqual(calls, [
    'one downloading',
    'batch installing,health,committed',
    'batch installing,committed',
  ]);
  queue.close();
});

void test('a batch refused as a whole (too large) sends its head alone, then batches again', async () => {
  let tooLarge = true;
  const { queue, calls, release } = gatedQueue({
    batch: () => {
      if (tooLarge) {
        tooLarge = false;
        return Promise.reject(new FlotillaError('FLT_BODY_TOO_LARGE', 'too large'));
      }
      return Promise.resolve();
    },
  });
  queue.push(report('downloading', 1));
  queue.push(report('installing'));
  queue.push(report('committed'));
  queue.push(status('a', 1));
  release();
  await queue.flushed();
  assert.deepEqual(calls, [
    'one downloading',
    'batch installing,committed,status:a',
    'one installing',
    'batch committed,status:a',
  ]);
  queue.close();
});

void test('a server without the batch route (FLT_ROUTE_NOT_FOUND) gets one report per request from then on', async () => {
  const { queue, calls, release } = gatedQueue({
    batch: () => Promise.reject(new FlotillaError('FLT_ROUTE_NOT_FOUND', 'no route')),
  });
  queue.push(report('downloading', 1));
  queue.push(report('installing'));
  queue.push(report('committed'));
  release();
  await queue.flushed();
  queue.push(report('health'));
  queue.push(report('committed'));
  await queue.flushed();
  assert.deepEqual(calls, [
    'one downloading',
    'batch installing,committed',
    'one installing',
    'one committed',
    'one health',
    'one committed',
  ]);
  queue.close();
});

void test('a batch that fails to reach the server is retried whole, in order', async () => {
  let failures = 2;
  const { queue, calls, release } = gatedQueue({
    batch: () => (failures-- > 0 ? Promise.reject(new Error('ECONNRESET')) : Promise.resolve()),
  });
  queue.push(report('downloading', 1));
  queue.push(report('installing'));
  queue.push(report('committed'));
  release();
  await queue.flushed();
  assert.deepEqual(calls, [
    'one downloading',
    'batch installing,committed',
    'batch installing,committed',
    'batch installing,committed',
  ]);
  queue.close();
});

void test('a status report in a batch under way is not replaced by a newer one; the newer is sent after', async () => {
  const sent: string[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  let batches = 0;
  const name = (r: DeviceReport) => (isAppStatusReport(r) ? `a:${r.process.restarts}` : r.phase);
  const queue = new ReportQueue({
    logger: quietLogger(),
    send: (r) => {
      sent.push(name(r));
      return Promise.resolve();
    },
    sendBatch: async (reports) => {
      if (batches++ === 0) await gate;
      sent.push(reports.map(name).join(','));
    },
  });
  queue.push(report('installing')); // sent alone at once
  queue.push(report('committed'));
  queue.push(status('a', 1));
  await new Promise((r) => setImmediate(r)); // the batch of these two is under way
  queue.push(status('a', 2)); // must not replace a:1 in flight
  queue.push(report('health'));
  release();
  await queue.flushed();
  assert.deepEqual(sent, ['installing', 'committed,a:1', 'a:2,health']);
  queue.close();
});
