import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { handleShutdownSignals } from '../src/process/signals.js';

function harness(stop: () => Promise<void>, forceAfterMs = 60_000) {
  const signals = new EventEmitter();
  const exits: number[] = [];
  const logs: string[] = [];
  const handle = handleShutdownSignals({
    signals,
    stop,
    forceAfterMs,
    exit: (code) => void exits.push(code),
    log: (m) => void logs.push(m),
  });
  return { signals, exits, logs, handle };
}

void test('the first signal runs the graceful stop once and settles `stopped`', async () => {
  let stops = 0;
  const h = harness(() => {
    stops += 1;
    return Promise.resolve();
  });
  h.signals.emit('SIGTERM');
  await h.handle.stopped;
  assert.equal(stops, 1);
  assert.deepEqual(h.exits, []);
  assert.match(h.logs[0] ?? '', /^stopping: SIGTERM/);
  h.handle.dispose();
  assert.equal(h.signals.listenerCount('SIGTERM'), 0);
  assert.equal(h.signals.listenerCount('SIGINT'), 0);
});

void test('a second signal during the stop exits at once with 130', async () => {
  let finish!: () => void;
  const h = harness(() => new Promise<void>((r) => (finish = r)));
  h.signals.emit('SIGINT');
  h.signals.emit('SIGINT');
  assert.deepEqual(h.exits, [130]);
  finish();
  await h.handle.stopped;
  h.handle.dispose();
});

void test('a stop that never finishes is ended by the force timeout with exit 1', async () => {
  const h = harness(() => new Promise<void>(() => undefined), 20);
  h.signals.emit('SIGTERM');
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (h.exits.length > 0) {
        clearInterval(poll);
        resolve();
      }
    }, 5);
  });
  assert.deepEqual(h.exits, [1]);
  assert.ok(h.logs.some((l) => /exiting now/.test(l)));
  h.handle.dispose();
});

void test('a failing stop rejects `stopped` with its error; stopNow works without a signal', async () => {
  const h = harness(() => Promise.reject(new Error('close failed')));
  void h.handle.stopNow('setup failed');
  await assert.rejects(h.handle.stopped, /close failed/);
  assert.deepEqual(h.exits, []);
  h.handle.dispose();
});
