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
