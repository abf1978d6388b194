import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { readAppLogs } from '../../src/runtimes/app-logs.js';
import { RotatingLog, readLogTailBytes } from '../../src/runtimes/rotating-log.js';
import { tempDir } from '@flotilla/testkit';

function writeLog(path: string, text: string, maxBytes = 1000, keep = 3): void {
  const log = new RotatingLog(path, maxBytes, keep);
  log.write(Buffer.from(text));
  log.close();
}

void test('the tail spans rotated files, oldest first, and says when older output was left out', (t) => {
  const dir = tempDir(t);
  const lines = Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join('');
  writeLog(join(dir, 'stdout.log'), lines, 100, 3);
  const all = readAppLogs(dir, 'web', 'stdout', 1_000_000);
  // 100-byte files, 3 kept + the live one: only the newest 400 bytes survive rotation.
  assert.equal(all.truncated, false);
  assert.ok(all.text.endsWith('line 99\n'));
  assert.equal(all.text, lines.slice(lines.length - all.text.length));

  const tail = readAppLogs(dir, 'web', 'stdout', 16);
  assert.equal(tail.truncated, true);
  assert.equal(tail.text, lines.slice(-16));
});

void test('a cut never splits a UTF-8 character', (t) => {
  const dir = tempDir(t);
  writeLog(join(dir, 'stderr.log'), 'ééé');
  const tail = readLogTailBytes(join(dir, 'stderr.log'), 5);
  assert.equal(tail.bytes.toString('utf8'), 'éé');
  assert.equal(tail.truncated, true);
  assert.equal(readAppLogs(dir, 'web', 'stderr', 3).text, 'é');
});

void test('both: stdout then stderr under headings; a quiet stream leaves its budget to the other', (t) => {
  const dir = tempDir(t);
  writeLog(join(dir, 'stdout.log'), 'o'.repeat(100));
  writeLog(join(dir, 'stderr.log'), 'e'.repeat(10));
  const logs = readAppLogs(dir, 'web', 'both', 50);
  assert.equal(logs.text, `==> stdout <==\n${'o'.repeat(40)}\n==> stderr <==\n${'e'.repeat(10)}\n`);
  assert.equal(logs.truncated, true);

  writeLog(join(dir, 'stderr.log'), 'e'.repeat(90));
  const even = readAppLogs(dir, 'web', 'both', 50);
  assert.equal(even.text, `==> stdout <==\n${'o'.repeat(25)}\n==> stderr <==\n${'e'.repeat(25)}\n`);
});

void test('an app that never wrote has empty logs, not an error', (t) => {
  const dir = tempDir(t);
  assert.deepEqual(readAppLogs(join(dir, 'missing'), 'web', 'stdout', 100), {
    app: 'web',
    text: '',
    truncated: false,
  });
  assert.equal(readAppLogs(dir, 'web', 'both', 100).text, '==> stdout <==\n==> stderr <==\n');
});
