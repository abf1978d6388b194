import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SupervisedProcess, agentEnv } from '../src/up/agent-process.js';
import { Capture } from './helpers/memory-io.js';

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), `never: ${what}`);
}

function supervise(script: string) {
  const stdout = new Capture();
  const stderr = new Capture();
  const logs: string[] = [];
  const proc = new SupervisedProcess({
    command: process.execPath,
    args: ['-e', script],
    env: process.env,
    prefix: '[child] ',
    stdout,
    stderr,
    log: (m) => void logs.push(m),
    initialBackoffMs: 10,
    maxBackoffMs: 40,
  });
  return { proc, stdout, stderr, logs };
}

void test("forwards the child's output line by line with a prefix and stops it with SIGTERM", async () => {
  const s = supervise(
    "process.stdout.write('one\\ntw'); setTimeout(() => process.stdout.write('o\\n'), 5); console.error('warn');" +
      "process.on('SIGTERM', () => { console.log('bye'); process.exit(0); }); setInterval(() => {}, 1000);",
  );
  s.proc.start();
  await until(
    'output forwarded',
    () => s.stdout.text.includes('[child] two\n') && s.stderr.text.includes('[child] warn\n'),
  );
  const pid = s.proc.pid;
  assert.ok(pid);
  await s.proc.stop();
  assert.equal(s.stdout.text, '[child] one\n[child] two\n[child] bye\n');
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
  assert.ok(s.logs.some((l) => l.startsWith('stopped')));
});

void test('a child that keeps dying is restarted with growing backoff until stopped', async () => {
  const s = supervise("console.log('started'); process.exit(3);");
  s.proc.start();
  await until('three starts', () => s.stdout.text.split('started').length - 1 >= 3);
  await s.proc.stop();
  const restarts = s.logs.filter((l) => l.includes('exited with code 3; restarting in'));
  assert.ok(restarts.length >= 2, s.logs.join('\n'));
  const delays = restarts.map((l) => Number(/in ([\d.]+)s/.exec(l)?.[1]));
  assert.ok(
    delays.every((d, i) => i === 0 || d >= (delays[i - 1] ?? 0)),
    delays.join(','),
  );
  const started = s.stdout.text.split('started').length;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(s.stdout.text.split('started').length, started, 'no restart after stop');
});

void test('a child that ignores SIGTERM is killed after the kill timeout', async () => {
  const stdout = new Capture();
  const proc = new SupervisedProcess({
    command: process.execPath,
    args: ['-e', "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000);"],
    env: process.env,
    prefix: '',
    stdout,
    stderr: new Capture(),
    log: () => undefined,
    killAfterMs: 50,
  });
  proc.start();
  await until('ready', () => stdout.text.includes('ready'));
  const pid = proc.pid!;
  await proc.stop();
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
});

void test('the local agent gets glibc huge pages for large buffers; an operator setting is kept', () => {
  assert.equal(agentEnv({ PATH: '/bin' }).GLIBC_TUNABLES, 'glibc.malloc.hugetlb=1');
  assert.equal(agentEnv({ PATH: '/bin' }).PATH, '/bin');
  assert.equal(
    agentEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).GLIBC_TUNABLES,
    'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1',
  );
  assert.equal(
    agentEnv({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }).GLIBC_TUNABLES,
    'glibc.malloc.hugetlb=0',
  );
});
