/**
 * Smoke test of the gateway benchmark's code (not a benchmark run): a 4 MB image in 2 layers goes
 * through both pipelines, and the second import pulls only the changed layer, both ways, and
 * Flotilla copies the unchanged layer's squashfs blocks from the first.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';

const program = fileURLToPath(new URL('./import.js', import.meta.url));

void test('the gateway benchmark runs on a small image and reports the layer cache', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [program], {
    env: { ...process.env, FLT_BENCH_GATEWAY_MB: '4', FLT_BENCH_GATEWAY_LAYERS: '2' },
  });
  const row = (name: string): string[] => {
    const line = stdout.split('\n').find((l) => l.startsWith(`| ${name}`));
    assert.ok(line, `a row for ${name} in:\n${stdout}`);
    return line.split('|').map((c) => c.trim());
  };
  // Columns: name, Flotilla s, pull s, convert s, MB pulled, pipeline s, skopeo s, unpack s, MB pulled.
  assert.equal(row('v1')[5], '4.0', 'Flotilla pulls the whole image first');
  assert.equal(row('v1')[9], '4.0', 'the pipeline pulls the whole image first');
  assert.equal(row('v2')[5], '2.0', 'Flotilla pulls only the changed layer');
  assert.equal(row('v2')[9], '2.0', 'skopeo pulls only the changed layer');
  assert.match(
    stdout,
    /v2: Flotilla copied 2\.0 MB of squashfs blocks from v1/,
    'the unchanged layer is not compressed again',
  );
});
