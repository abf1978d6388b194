import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AgentCommands,
  ServerCommands,
  checkAgentFrame,
  checkServerFrame,
  errorSummary,
  FlotillaError,
  isDateTime,
  parseWsMessage,
} from '@flotilla/protocol';

void test('every server command, rollback and restart included, is checked against its data schema', () => {
  for (const command of [ServerCommands.rollback, ServerCommands.restart]) {
    const ok = checkServerFrame({ id: 'a', command, data: { app: 'web' } });
    assert.ok(ok.ok && ok.frame.command === command && ok.frame.data.app === 'web');
    const bad = checkServerFrame({ id: 'a', command, data: { app: '../etc' } });
    assert.ok(!bad.ok && !bad.unknownCommand);
    assert.match(bad.problem, new RegExp(`invalid ${command}: data\\.app`));
  }
  const stateChanged = checkServerFrame({
    id: 'b',
    command: 'state-changed',
    data: { stateVersion: 'nine' },
  });
  assert.ok(!stateChanged.ok);
  assert.match(stateChanged.problem, /stateVersion/);
  const unknown = checkServerFrame({ id: 'c', command: 'make-coffee', data: {} });
  assert.ok(!unknown.ok && unknown.unknownCommand);
  assert.ok(
    !checkServerFrame({ id: 'd', command: 'hello', data: { agentVersion: '1' } }).ok,
    'hello is the agent’s',
  );
  assert.ok(!checkServerFrame({ id: 'e', command: 'toString', data: {} }).ok, 'no inherited keys');
});

void test('agent frames: each direction knows only its own commands', () => {
  const hello = checkAgentFrame({ id: 'a', command: AgentCommands.hello, data: { agentVersion: '0.1.0' } });
  assert.ok(hello.ok && hello.frame.command === 'hello');
  const logs = checkAgentFrame({
    id: 'b',
    command: AgentCommands.logsResult,
    data: { app: 'web', text: 'x', truncated: false },
  });
  assert.ok(logs.ok);
  assert.ok(!checkAgentFrame({ id: 'c', command: 'rollback', data: { app: 'web' } }).ok);
  assert.ok(!checkAgentFrame({ id: 'd', command: 'inventory', data: { facts: 'none' } }).ok);
});

void test('parseWsMessage: JSON envelopes only, with stable codes for what is refused', () => {
  assert.deepEqual(parseWsMessage('{"id":"1","command":"heartbeat","data":{}}'), {
    ok: true,
    message: { id: '1', command: 'heartbeat', data: {} },
  });
  const notJson = parseWsMessage('{');
  assert.ok(!notJson.ok && notJson.code === 'FLT_BAD_JSON');
  const deep = parseWsMessage('['.repeat(100) + ']'.repeat(100));
  assert.ok(!deep.ok && deep.code === 'FLT_JSON_TOO_DEEP');
  const noId = parseWsMessage('{"command":"x"}');
  assert.ok(!noId.ok && noId.code === 'FLT_VALIDATION');
});

void test('errorSummary keeps a FlotillaError code; anything else is FLT_INTERNAL; messages are cut', () => {
  assert.deepEqual(errorSummary(new FlotillaError('FLT_NOT_FOUND', 'gone')), {
    code: 'FLT_NOT_FOUND',
    message: 'gone',
  });
  assert.deepEqual(errorSummary(new Error('boom')), { code: 'FLT_INTERNAL', message: 'boom' });
  assert.deepEqual(errorSummary('text', 2), { code: 'FLT_INTERNAL', message: 'te' });
});

void test('date-time: RFC 3339 with T, t or a space, and a real instant', () => {
  assert.ok(isDateTime('2026-12-06T04:00:00Z'));
  assert.ok(isDateTime('2026-12-06t04:00:00.123+01:00'));
  assert.ok(isDateTime('2026-12-06 04:00:00Z'));
  assert.ok(!isDateTime('2026-12-06'));
  assert.ok(!isDateTime('2026-13-45T99:00:00Z'));
});
