/** `flotilla sim`: its arguments are checked before anything starts (usage errors exit 2). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cli } from './helpers/memory-io.js';

void test('sim --help names every knob and the global --server and --json', async () => {
  const res = await cli(['sim', '--help']);
  assert.equal(res.code, 0);
  for (const flag of [
    '--devices <n>',
    '--registration-key-file <file>',
    '--install-time <range>',
    '--failure-rate <rate>',
    '--crash-after <after:rate>',
    '--latency <duration>',
    '--state-dir <dir>',
    '--source-addresses <n>',
    '--duration <duration>',
  ])
    assert.ok(res.stdout.includes(flag), flag);
  assert.match(res.stdout, /global --server/);
});

void test('sim refuses bad rates, ranges, crash specs and counts, and a missing server, with exit 2', async () => {
  const base = ['sim', '--devices', '10', '--registration-key-file', '/nonexistent/key'];
  for (const [args, pattern] of [
    [['--server', 'http://127.0.0.1:1', ...base, '--failure-rate', '150%'], /between 0% and 100%/],
    [['--server', 'http://127.0.0.1:1', ...base, '--install-time', '20s..2s'], /ends before it starts/],
    [['--server', 'http://127.0.0.1:1', ...base, '--crash-after', '20s'], /AFTER:RATE/],
    [
      ['--server', 'http://127.0.0.1:1', 'sim', '--devices', '0', '--registration-key-file', 'k'],
      /whole number/,
    ],
    [base, /--server URL/],
  ] as const) {
    const res = await cli([...args], { env: {} });
    assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
    assert.match(res.stderr, pattern);
  }
});
