/**
 * A runtime registered lazily (docs/agent-lifecycle.md "Footprint"): its module is imported at its
 * first use only, once, and not to close it; a failed import is a clear refusal tried again later.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFlotillaError } from '@flotilla/protocol';
import { LazyRuntime } from '../../src/runtimes/lazy-runtime.js';
import type { Runtime } from '../../src/runtimes/runtime.js';
import type { ReleaseSpec } from '../../src/model/release.js';

const release: ReleaseSpec = {
  app: 'site',
  version: '1.0.0',
  runtime: 'files',
  root: 'a'.repeat(64),
  targetPath: `site/1.0.0/${'a'.repeat(64)}`,
  config: {},
};

function counting(): { runtime: LazyRuntime; loads: () => number } {
  let loads = 0;
  const runtime = new LazyRuntime('files', async (): Promise<Runtime> => {
    loads++;
    const { FilesRuntime } = await import('../../src/runtimes/files-runtime.js');
    return new FilesRuntime();
  });
  return { runtime, loads: () => loads };
}

void test('the runtime module is imported at first use, once, and never just to close it', async () => {
  const { runtime, loads } = counting();
  await runtime.close();
  assert.equal(runtime.status('site'), null);
  assert.equal(loads(), 0, 'close and status load nothing');
  assert.throws(
    () => runtime.validate(release),
    (e: unknown) => isFlotillaError(e) && e.code === 'FLT_INTERNAL',
  );
  const [a, b] = await Promise.all([runtime.ready(), runtime.ready()]);
  assert.equal(a, b);
  assert.equal(loads(), 1);
  assert.ok(runtime.isLoaded());
  runtime.validate(release);
  assert.throws(
    () => runtime.validate({ ...release, config: { files: { nope: 1 } } }),
    (e: unknown) => isFlotillaError(e) && e.code === 'FLT_VALIDATION',
  );
  await assert.rejects(
    runtime.services('site'),
    (e: unknown) => isFlotillaError(e) && e.code === 'FLT_RUNTIME_UNSUPPORTED',
  );
  await runtime.close();
  assert.equal(loads(), 1);
});

void test('a runtime that cannot be imported is refused with FLT_RUNTIME_UNSUPPORTED, and tried again', async () => {
  let attempts = 0;
  const runtime = new LazyRuntime('docker', () => {
    attempts++;
    return Promise.reject(new Error('Cannot find package dockerode'));
  });
  for (let i = 0; i < 2; i++)
    await assert.rejects(runtime.stop('site', '/nowhere'), (e: unknown) => {
      assert.ok(isFlotillaError(e));
      assert.equal(e.code, 'FLT_RUNTIME_UNSUPPORTED');
      assert.match(e.message, /the docker runtime cannot be loaded/);
      return true;
    });
  assert.equal(attempts, 2);
  assert.equal(runtime.isLoaded(), false);
});

void test('every method a loaded runtime has is passed on, settle included (parked containers are removed through it)', async () => {
  const calls: string[] = [];
  const inner: Runtime = {
    kind: 'docker',
    validate: () => undefined,
    start: () => Promise.resolve(void calls.push('start')),
    adopt: () => Promise.resolve(void calls.push('adopt')),
    stop: () => Promise.resolve(void calls.push('stop')),
    health: () => Promise.resolve(void calls.push('health')),
    settle: (app, current) => Promise.resolve(void calls.push(`settle ${app} ${current === null}`)),
    close: () => Promise.resolve(void calls.push('close')),
    control: (app, action, service) => Promise.resolve(void calls.push(`control ${action} ${service}`)),
    logs: () => Promise.resolve(void calls.push('logs')),
    exec: () => Promise.resolve({ exitCode: (calls.push('exec'), 0) }),
    services: () => Promise.resolve((calls.push('services'), [])),
    tunnelAddress: (_app, _service, port) =>
      Promise.resolve({ host: (calls.push('tunnel'), '10.0.0.2'), port }),
  };
  const lazy = new LazyRuntime('docker', () => Promise.resolve(inner));
  // What the interface has that the wrapper lacks would be skipped silently by its callers (`?.`).
  for (const method of Object.keys(inner).filter((k) => typeof inner[k as keyof Runtime] === 'function'))
    assert.equal(typeof lazy[method as keyof LazyRuntime], 'function', `LazyRuntime.${method}`);
  await lazy.settle('shop', null);
  await lazy.control('shop', 'restart', 'web');
  await lazy.services('shop');
  assert.deepEqual(calls, ['settle shop true', 'control restart web', 'services']);
});
