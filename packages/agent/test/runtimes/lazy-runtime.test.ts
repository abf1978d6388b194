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

void test('every method of the Runtime interface is forwarded to the loaded runtime', async () => {
  const calls: string[] = [];
  const record =
    (name: string) =>
    (..._args: unknown[]): Promise<never> => {
      calls.push(name);
      return Promise.resolve(undefined as never);
    };
  // Required<Runtime>: a method added to the interface must be added here, and then to LazyRuntime.
  const full: Required<Runtime> = {
    kind: 'docker',
    validate: () => void calls.push('validate'),
    start: record('start'),
    prepare: record('prepare'),
    expect: record('expect'),
    adopt: record('adopt'),
    stop: record('stop'),
    health: record('health'),
    close: record('close'),
    status: () => (calls.push('status'), null),
    settle: record('settle'),
    control: record('control'),
    logs: record('logs'),
    exec: record('exec'),
    services: record('services'),
    tunnelAddress: record('tunnelAddress'),
  };
  const lazy = new LazyRuntime('docker', () => Promise.resolve(full));
  await lazy.ready();
  const methods = Object.keys(full).filter((k) => k !== 'kind');
  for (const name of methods) {
    const method = (lazy as unknown as Record<string, unknown>)[name];
    assert.equal(typeof method, 'function', `LazyRuntime has ${name}`);
    await (method as (...args: unknown[]) => unknown).call(lazy, 'app', {}, {}, {});
  }
  assert.deepEqual(calls, methods, 'each call reached the loaded runtime');
});
