/**
 * The agent's stream handlers through a real multiplexer pair: exec with a real child process
 * (stdin in, stdout and stderr out, the exit code), a followed log across a rotation, and the
 * refusals (a host port not allowed, a runtime without exec).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MuxSession } from '@flotilla/node-kit';
import type { MuxStreamSink } from '@flotilla/node-kit';
import type { StreamClose, StreamOpen } from '@flotilla/protocol';
import pino from 'pino';
import { openStream } from '../../src/control/streams.js';
import type { RemoteAccess } from '../../src/control/streams.js';
import { followProcessLogs } from '../../src/runtimes/log-follow.js';
import { RotatingLog } from '../../src/runtimes/rotating-log.js';
import type { ExecIo, Runtime } from '../../src/runtimes/runtime.js';

const logger = pino({ level: 'silent' });

/** A runtime whose exec runs the command on this machine (what a container runtime does in its container). */
function testRuntime(logDir: string, withExec: boolean): Runtime {
  const runtime: Runtime = {
    kind: 'process',
    validate: () => undefined,
    start: () => Promise.resolve(),
    adopt: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    health: () => Promise.resolve(),
    close: () => Promise.resolve(),
    logs: (_app, options, onLine) => followProcessLogs(logDir, options, onLine),
  };
  if (withExec)
    runtime.exec = (_app, _service, argv, io: ExecIo) =>
      new Promise((resolve, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
        io.stdin?.pipe(child.stdin);
        child.stdout.pipe(io.stdout, { end: false });
        child.stderr.pipe(io.stderr, { end: false });
        io.signal.addEventListener('abort', () => child.kill());
        child.on('error', reject);
        child.on('close', (code) => resolve({ exitCode: code ?? 1 }));
      });
  return runtime;
}

function wired(remote: RemoteAccess) {
  // eslint-disable-next-line prefer-const
  let agent: MuxSession;
  const server = new MuxSession({ role: 'server', send: (b) => setImmediate(() => agent.receive(b)) });
  agent = new MuxSession({
    role: 'agent',
    send: (b) => setImmediate(() => server.receive(b)),
    onOpen: (stream, open) => openStream(remote, stream, open, logger),
  });
  return server;
}

interface Collected {
  out: Buffer[];
  err: Buffer[];
  closed: Promise<StreamClose>;
  sink: MuxStreamSink;
}

function collector(): Collected {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let resolve: (r: StreamClose) => void = () => undefined;
  const closed = new Promise<StreamClose>((r) => (resolve = r));
  return {
    out,
    err,
    closed,
    sink: {
      onData: (chunk, channel, done) => {
        (channel === 'err' ? err : out).push(Buffer.from(chunk));
        done();
      },
      onEof: () => undefined,
      onClose: (result) => resolve(result),
    },
  };
}

function remoteWith(runtime: Runtime, ports: number[] = []): RemoteAccess {
  return {
    runtimeOf: () => runtime,
    tunnelHostPorts: new Set(ports),
    control: () => Promise.resolve(),
    stats: () => Promise.resolve([]),
  };
}

void test('exec: stdin reaches the command, stdout and stderr come back apart, the exit code is passed on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flt-streams-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = wired(remoteWith(testRuntime(dir, true)));
  const c = collector();
  const open: StreamOpen = {
    kind: 'exec',
    app: 'web',
    argv: ['/bin/sh', '-c', 'tr a-z A-Z; echo oops >&2; exit 3'],
  };
  const stream = server.open(open, c.sink);
  const input = Buffer.alloc(600 * 1024, 'abc');
  await stream.write(input);
  stream.end();
  const result = await c.closed;
  assert.equal(result.exitCode, 3);
  assert.ok(Buffer.concat(c.out).equals(Buffer.alloc(600 * 1024, 'ABC')));
  assert.equal(Buffer.concat(c.err).toString(), 'oops\n');
});

void test('exec: output a runtime wrote without waiting (as dockerode demuxes) all arrives before the exit code', async () => {
  const written = 4 * 1024 * 1024;
  const runtime: Runtime = {
    ...testRuntime(tmpdir(), false),
    exec: (_app, _service, _argv, io: ExecIo) => {
      // Many writes, no regard for backpressure, then the command "ends" at once.
      for (let i = 0; i < written / 65536; i++) io.stdout.write(Buffer.alloc(65536, 'x'));
      io.stderr.write('bye\n');
      return Promise.resolve({ exitCode: 7 });
    },
  };
  const server = wired(remoteWith(runtime));
  const c = collector();
  server.open({ kind: 'exec', app: 'web', argv: ['cat', 'big'] }, c.sink).end();
  const result = await c.closed;
  assert.equal(result.exitCode, 7);
  assert.equal(Buffer.concat(c.out).length, written);
  assert.equal(Buffer.concat(c.err).toString(), 'bye\n');
});

void test('a runtime without exec, and a host port the agent does not allow, are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flt-streams-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = wired(remoteWith(testRuntime(dir, false), [2222]));
  const a = collector();
  server.open({ kind: 'exec', app: 'web', argv: ['id'] }, a.sink);
  assert.equal((await a.closed).error?.code, 'FLT_RUNTIME_UNSUPPORTED');
  const b = collector();
  server.open({ kind: 'tunnel', port: 22 }, b.sink);
  assert.equal((await b.closed).error?.code, 'FLT_PORT_NOT_ALLOWED');
});

void test('a followed log sends the tail, then lines written later, across a rotation', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flt-streams-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = new RotatingLog(join(dir, 'stdout.log'), 64, 3);
  t.after(() => log.close());
  log.write(Buffer.from('one\ntwo\n'));
  const server = wired(remoteWith(testRuntime(dir, false)));
  const c = collector();
  const stream = server.open({ kind: 'logs', app: 'web', follow: true, tail: 1 }, c.sink);
  const lines = () =>
    Buffer.concat(c.out)
      .toString()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as { text: string }).text);
  const until = async (pred: () => boolean) => {
    while (!pred()) await new Promise((r) => setTimeout(r, 20));
  };
  await until(() => lines().length >= 1);
  assert.deepEqual(lines(), ['two']);
  // Enough to rotate the 64-byte file twice over.
  const later = Array.from({ length: 12 }, (_, i) => `later-${i}`);
  for (const l of later) log.write(Buffer.from(`${l}\n`));
  await until(() => lines().length >= 1 + later.length);
  assert.deepEqual(lines(), ['two', ...later]);
  stream.reset({});
});
