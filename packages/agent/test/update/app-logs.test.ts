import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { isFlotillaError } from '@flotilla/protocol';
import type { AppLogs } from '@flotilla/protocol';
import { tempDir } from '@flotilla/testkit';
import { harness } from './engine-harness.js';
import { buildRelease, serverStore, writeTree } from './fixtures.js';

const CHATTY_APP = `
console.log('started on stdout');
console.error('warning on stderr');
setInterval(() => undefined, 1000);
`;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isFlotillaError(e) ? e.code : String(e);
  }
  return undefined;
}

void test("the engine reads a running process app's stdout and stderr; other apps get a clear error", async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const chatty = await buildRelease(store, writeTree(join(base, 'chatty'), { 'app.cjs': CHATTY_APP }), {
    app: 'chatty',
    version: '1',
    runtime: 'process',
    config: { process: { command: [process.execPath, './app.cjs'], stopTimeoutMs: 2000 } },
  });
  const site = await buildRelease(store, writeTree(join(base, 'site'), { 'index.html': 'hi' }), {
    app: 'site',
    version: '1',
    config: { files: {} },
  });
  const h = await harness(t, store);
  h.assign([chatty, site]);
  assert.equal(await h.converge(), true, JSON.stringify(h.reports.filter((r) => r.error)));

  // The app writes once it has started; wait for both lines to land (no timing asserted).
  let logs: AppLogs = h.engine.appLogs('chatty', 'both', 10_000);
  for (let i = 0; i < 500 && !logs.text.includes('warning on stderr'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    logs = h.engine.appLogs('chatty', 'both', 10_000);
  }
  assert.equal(logs.text, '==> stdout <==\nstarted on stdout\n==> stderr <==\nwarning on stderr\n');
  assert.deepEqual(h.engine.appLogs('chatty', 'stdout', 10_000), {
    app: 'chatty',
    text: 'started on stdout\n',
    truncated: false,
  });
  assert.deepEqual(h.engine.appLogs('chatty', 'stderr', 7), {
    app: 'chatty',
    text: 'stderr\n',
    truncated: true,
  });

  assert.equal(
    codeOf(() => h.engine.appLogs('site', 'both', 100)),
    'FLT_RUNTIME_UNSUPPORTED',
  );
  assert.equal(
    codeOf(() => h.engine.appLogs('absent', 'both', 100)),
    'FLT_APP_NOT_INSTALLED',
  );
});
