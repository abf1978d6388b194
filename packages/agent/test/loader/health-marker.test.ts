import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { markReachedServer } from '../../src/loader/health-marker.js';

void test('the health marker is written whole under its name, with no temporary file left', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flt-marker-'));
  try {
    const file = join(dir, 'healthy');
    markReachedServer({ FLOTILLA_LOADER_HEALTH_FILE: file });
    const marker = JSON.parse(await readFile(file, 'utf8')) as { pid: number; at: string };
    assert.equal(marker.pid, process.pid);
    assert.deepEqual(await readdir(dir), ['healthy']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
