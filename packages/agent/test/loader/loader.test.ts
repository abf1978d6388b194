/**
 * The loader with real child processes (sh scripts standing in for agent releases): a handover
 * switches to the new release once it writes the health marker; a release that exits at start is
 * switched back with the reason recorded; a journal left at `switching` by a killed loader is
 * completed on the next start.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Loader } from '../../src/loader/loader.js';
import type { LoaderState } from '../../src/loader/layout.js';

const GOOD = `#!/bin/sh
printf '{"pid":%s}\\n' $$ > "$FLOTILLA_LOADER_HEALTH_FILE"
exec sleep 600
`;
const BROKEN = `#!/bin/sh
echo "broken on purpose" >&2
exit 3
`;
const ROOT_A = 'a'.repeat(64);
const ROOT_B = 'b'.repeat(64);
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function release(dir: string, version: string, script: string): Promise<string> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await writeFile(join(dir, 'bin', 'flotilla-agent'), script);
  await chmod(join(dir, 'bin', 'flotilla-agent'), 0o755);
  await writeFile(join(dir, 'flotilla-agent.json'), JSON.stringify({ version }));
  return dir;
}

async function setup() {
  const base = await mkdtemp(join(tmpdir(), 'flt-loader-'));
  dirs.push(base);
  const install = join(base, 'install');
  const data = join(base, 'data');
  await release(join(install, 'versions', '1.0.0'), '1.0.0', GOOD);
  await symlink('versions/1.0.0', join(install, 'current'));
  const handover = join(data, 'apps', 'flotilla-agent', 'data', 'handover.json');
  const loader = new Loader({
    installDir: install,
    agentDataDir: data,
    agentArgs: ['agent'],
    healthWindowMs: 5000,
    checkIntervalMs: 50,
    logger: pino({ level: 'silent' }),
    stderr: { write: () => true } as unknown as NodeJS.WritableStream,
  });
  const state = async () =>
    JSON.parse(await readFile(join(install, 'loader-state.json'), 'utf8')) as LoaderState;
  return { base, install, data, handover, loader, state };
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out: ${what}`);
}

void test('a handed-over release becomes current once it reports healthy', async () => {
  const { base, install, handover, loader, state } = await setup();
  const controller = new AbortController();
  const running = loader.run(controller.signal);
  const dir = await release(join(base, 'engine', ROOT_A), '2.0.0', GOOD);
  await writeFile(handover, JSON.stringify({ releaseDir: dir, root: ROOT_A, version: '2.0.0' }));
  await until('committed', async () => (await state()).committed[ROOT_A] === '2.0.0');
  assert.equal(await readlink(join(install, 'current')), 'versions/2.0.0');
  assert.equal(await readlink(join(install, 'previous')), 'versions/1.0.0');
  assert.equal((await state()).phase, 'idle');
  controller.abort();
  assert.equal(await running, 'stopped');
});

// The marker is read while the agent may still be writing it (CI saw "healthy is not valid JSON"
// end the loader's run once): a marker caught half written is "not yet", not an error.
const SLOW_MARKER = `#!/bin/sh
printf '{"pid":' > "$FLOTILLA_LOADER_HEALTH_FILE"
sleep 1
printf '{"pid":%s}\\n' $$ > "$FLOTILLA_LOADER_HEALTH_FILE"
exec sleep 600
`;

void test('a health marker caught half written is read again, not an error', async () => {
  const { base, install, handover, loader, state } = await setup();
  const controller = new AbortController();
  const running = loader.run(controller.signal);
  const dir = await release(join(base, 'engine', ROOT_A), '2.0.0', SLOW_MARKER);
  await writeFile(handover, JSON.stringify({ releaseDir: dir, root: ROOT_A, version: '2.0.0' }));
  const outcome = await Promise.race([
    running.then((r) => `the loader's run ended: ${JSON.stringify(r)}`),
    until('committed', async () => (await state()).committed[ROOT_A] === '2.0.0').then(() => 'committed'),
  ]);
  assert.equal(outcome, 'committed');
  assert.equal(await readlink(join(install, 'current')), 'versions/2.0.0');
  controller.abort();
  assert.equal(await running, 'stopped');
});

void test('a release that exits at start is switched back, with the reason', async () => {
  const { base, install, handover, loader, state } = await setup();
  const controller = new AbortController();
  const running = loader.run(controller.signal);
  const dir = await release(join(base, 'engine', ROOT_B), '3.0.0', BROKEN);
  await writeFile(handover, JSON.stringify({ releaseDir: dir, root: ROOT_B, version: '3.0.0' }));
  await until('failed', async () => (await state()).failed[ROOT_B] !== undefined);
  const s = await state();
  assert.match(s.failed[ROOT_B] ?? '', /exited \(code 3\) before it reached the server: broken on purpose/);
  assert.equal(s.current, '1.0.0');
  assert.equal(await readlink(join(install, 'current')), 'versions/1.0.0');
  controller.abort();
  await running;
});

void test('a switch a killed loader left half done is completed at the next start', async () => {
  const { install, loader, state } = await setup();
  await release(join(install, 'versions', '2.0.0'), '2.0.0', GOOD);
  // Killed after journaling `switching`, before any link moved.
  await writeFile(
    join(install, 'loader-state.json'),
    JSON.stringify({
      phase: 'switching',
      current: '1.0.0',
      previous: null,
      trial: { from: '1.0.0', to: '2.0.0', root: ROOT_A },
      committed: {},
      failed: {},
    }),
  );
  const controller = new AbortController();
  const running = loader.run(controller.signal);
  await until('committed', async () => (await state()).committed[ROOT_A] === '2.0.0');
  assert.equal(await readlink(join(install, 'current')), 'versions/2.0.0');
  assert.equal((await state()).phase, 'idle');
  controller.abort();
  await running;
});
