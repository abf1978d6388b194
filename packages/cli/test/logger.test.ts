import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseLogFormat, createLogger } from '../src/process/logger.js';
import { Capture } from './helpers/memory-io.js';

void test('json logs are one object per line with secrets redacted', async () => {
  const sink = new Capture();
  const log = await createLogger({ level: 'info', format: 'json', destination: sink });
  log.info({ password: 'hunter22', req: { headers: { authorization: 'Bearer flt_at_x' } } }, 'hello');
  log.debug('not at info');
  const lines = sink.text.trim().split('\n');
  assert.equal(lines.length, 1);
  const entry = JSON.parse(lines[0] ?? '') as {
    msg: string;
    password: string;
    req: { headers: { authorization: string } };
  };
  assert.equal(entry.msg, 'hello');
  assert.equal(entry.password, '[redacted]');
  assert.equal(entry.req.headers.authorization, '[redacted]');
});

void test('pretty logs are human lines, uncolored unless asked', async () => {
  const sink = new Capture();
  const log = await createLogger({ level: 'info', format: 'pretty', destination: sink });
  log.warn({ secret: 'flt_rk_abc' }, 'careful');
  assert.match(sink.text, /WARN.*careful/);
  assert.ok(!sink.text.includes('flt_rk_abc'));
  assert.ok(!sink.text.includes('\u001b['));
});

void test('the log format: explicit choice, else pretty on a terminal, else the configured one', () => {
  assert.equal(chooseLogFormat('json', 'pretty', true), 'json');
  assert.equal(chooseLogFormat(undefined, 'json', true), 'pretty');
  assert.equal(chooseLogFormat(undefined, 'json', false), 'json');
  assert.equal(chooseLogFormat(undefined, 'pretty', false), 'pretty');
});

void test('release secrets and resolved environments are redacted wherever a log line carries them', async () => {
  const sink = new Capture();
  const log = await createLogger({ level: 'info', format: 'json', destination: sink });
  log.info({ secrets: { API_KEY: { value: 'sk-live-1', nonce: 'n' } } }, 'upload');
  log.info(
    { body: { secrets: { API_KEY: { value: 'sk-live-2' } } }, process: { env: { API_KEY: 'sk-live-3' } } },
    'nested',
  );
  assert.ok(!sink.text.includes('sk-live-'), sink.text);
  assert.equal((JSON.parse(sink.text.split('\n')[0] ?? '') as { secrets: string }).secrets, '[redacted]');
});
