import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MUX_INITIAL_WINDOW,
  MUX_MAX_DATA,
  MUX_MAX_WINDOW,
  MuxFrameType,
  decodeMuxFrame,
  encodeJsonFrame,
  encodeMuxFrame,
  encodeWindow,
} from '@flotilla/protocol';
import type { StreamClose, StreamOpen } from '@flotilla/protocol';
import { MuxSession } from '../src/index.js';
import type { MuxStream, MuxStreamSink } from '../src/index.js';

interface Received {
  data: Buffer[];
  closed: StreamClose | null;
  held: (() => void)[];
}

function sink(r: Received, hold = false): MuxStreamSink {
  return {
    onData: (chunk, _channel, done) => {
      r.data.push(Buffer.from(chunk));
      if (hold) r.held.push(done);
      else done();
    },
    onEof: () => undefined,
    onClose: (result) => {
      r.closed = result;
    },
  };
}

const fresh = (): Received => ({ data: [], closed: null, held: [] });
const TUNNEL: StreamOpen = { kind: 'tunnel', port: 22 };

/** A server and an agent session wired to each other (frames delivered on the next tick). */
function pair(agentHold = false) {
  const agentSide: { stream: MuxStream | null; got: Received } = { stream: null, got: fresh() };
  const hostile: string[] = [];
  // eslint-disable-next-line prefer-const
  let agent: MuxSession;
  const server = new MuxSession({
    role: 'server',
    send: (b) => setImmediate(() => agent.receive(b)),
    onHostile: (p) => hostile.push(`server: ${p}`),
  });
  agent = new MuxSession({
    role: 'agent',
    send: (b) => setImmediate(() => server.receive(b)),
    onOpen: (stream) => {
      agentSide.stream = stream;
      return sink(agentSide.got, agentHold);
    },
    onHostile: (p) => hostile.push(`agent: ${p}`),
  });
  return { server, agent, agentSide, hostile };
}

const tick = () => new Promise((r) => setImmediate(r));

void test('data flows within the window; a reader that does not pass data on stops the writer', async () => {
  const { server, agentSide } = pair(true);
  const got = fresh();
  const stream = server.open(TUNNEL, sink(got));
  const big = Buffer.alloc(MUX_INITIAL_WINDOW * 2, 7);
  let written = false;
  void stream.write(big).then(() => (written = true));
  for (let i = 0; i < 20; i++) await tick();
  const received = () => agentSide.got.data.reduce((n, b) => n + b.length, 0);
  // Exactly one window arrived; the writer waits.
  assert.equal(received(), MUX_INITIAL_WINDOW);
  assert.equal(written, false);
  for (const done of agentSide.got.held.splice(0)) done();
  for (let i = 0; i < 20; i++) await tick();
  for (const done of agentSide.got.held.splice(0)) done();
  for (let i = 0; i < 20; i++) await tick();
  assert.equal(received(), big.length);
  assert.equal(written, true);
  assert.ok(agentSide.got.data.every((b) => b.length <= MUX_MAX_DATA));
});

void test('a peer sending beyond its window gets the stream closed with FLT_STREAM_PROTOCOL', () => {
  const frames: Uint8Array[] = [];
  const server = new MuxSession({ role: 'server', send: (b) => frames.push(b) });
  const got = fresh();
  const stream = server.open(TUNNEL, sink(got, true));
  const chunk = new Uint8Array(MUX_MAX_DATA);
  for (let sent = 0; sent <= MUX_INITIAL_WINDOW; sent += MUX_MAX_DATA)
    server.receive(encodeMuxFrame(MuxFrameType.data, stream.id, chunk));
  assert.equal(got.closed?.error?.code, 'FLT_STREAM_PROTOCOL');
  assert.equal(stream.closed, true);
  // The peer was told: the last frame is a close with the error.
  const last = decodeMuxFrame(frames[frames.length - 1]!);
  assert.ok(last.ok && last.frame.type === MuxFrameType.close);
  assert.equal(server.size, 0);
});

void test('a window that would overflow, an oversized frame, a bad window value: refused, nothing crashes', () => {
  const server = new MuxSession({ role: 'server', send: () => undefined });
  const a = fresh();
  const s1 = server.open(TUNNEL, sink(a));
  server.receive(encodeWindow(s1.id, MUX_MAX_WINDOW));
  assert.equal(a.closed?.error?.code, 'FLT_STREAM_PROTOCOL');
  assert.match(a.closed?.error?.message ?? '', /window/);

  const b = fresh();
  const s2 = server.open(TUNNEL, sink(b));
  server.receive(encodeMuxFrame(MuxFrameType.data, s2.id, new Uint8Array(MUX_MAX_DATA + 1)));
  assert.equal(b.closed?.error?.code, 'FLT_STREAM_PROTOCOL');

  const c = fresh();
  const s3 = server.open(TUNNEL, sink(c));
  const zero = encodeMuxFrame(MuxFrameType.window, s3.id, new Uint8Array(4));
  server.receive(zero);
  assert.equal(c.closed?.error?.code, 'FLT_STREAM_PROTOCOL');
});

void test('frames for streams never opened are hostile; late frames for ended streams are not', () => {
  const hostile: string[] = [];
  const server = new MuxSession({ role: 'server', send: () => undefined, onHostile: (p) => hostile.push(p) });
  server.receive(encodeMuxFrame(MuxFrameType.data, 99, new Uint8Array(3)));
  server.receive(new Uint8Array([2, 0, 0]));
  server.receive(encodeMuxFrame(42 as MuxFrameType, 1, new Uint8Array(0)));
  server.receive(encodeMuxFrame(MuxFrameType.data, 0, new Uint8Array(1)));
  // An agent may not open streams.
  server.receive(encodeJsonFrame(MuxFrameType.open, 5, TUNNEL));
  assert.equal(hostile.length, 5);
  const s = server.open(TUNNEL, sink(fresh()));
  s.reset({});
  server.receive(encodeMuxFrame(MuxFrameType.data, s.id, new Uint8Array(3)));
  assert.equal(hostile.length, 5);
});

void test('the agent refuses a malformed open, a reused or decreasing id, and too many streams', async () => {
  const sent: Uint8Array[] = [];
  let opened = 0;
  const agent = new MuxSession({
    role: 'agent',
    send: (b) => sent.push(b),
    maxStreams: 2,
    onOpen: () => {
      opened += 1;
      return sink(fresh());
    },
  });
  const closeOf = (id: number) => {
    for (const b of sent) {
      const d = decodeMuxFrame(b);
      if (d.ok && d.frame.type === MuxFrameType.close && d.frame.stream === id)
        return JSON.parse(Buffer.from(d.frame.payload).toString()) as StreamClose;
    }
    return null;
  };
  agent.receive(encodeMuxFrame(MuxFrameType.open, 1, Buffer.from('{"kind":"shell"}')));
  assert.equal(closeOf(1)?.error?.code, 'FLT_STREAM_PROTOCOL');
  agent.receive(encodeJsonFrame(MuxFrameType.open, 3, TUNNEL));
  agent.receive(encodeJsonFrame(MuxFrameType.open, 2, TUNNEL));
  assert.equal(closeOf(2)?.error?.code, 'FLT_STREAM_PROTOCOL');
  agent.receive(encodeJsonFrame(MuxFrameType.open, 4, TUNNEL));
  agent.receive(encodeJsonFrame(MuxFrameType.open, 5, TUNNEL));
  assert.equal(closeOf(5)?.error?.code, 'FLT_STREAM_LIMIT');
  assert.equal(opened, 2);
  agent.receive(encodeJsonFrame(MuxFrameType.open, 3, TUNNEL));
  assert.equal(closeOf(3)?.error?.code, 'FLT_STREAM_PROTOCOL');
  await tick();
});

void test('closeAll ends every stream at once and sends nothing more', () => {
  const sent: Uint8Array[] = [];
  const server = new MuxSession({ role: 'server', send: (b) => sent.push(b) });
  const got = [fresh(), fresh(), fresh()];
  const streams = got.map((g) => server.open(TUNNEL, sink(g)));
  const before = sent.length;
  server.closeAll({ error: { code: 'FLT_DEVICE_REVOKED', message: 'revoked' } });
  assert.ok(got.every((g) => g.closed?.error?.code === 'FLT_DEVICE_REVOKED'));
  void streams[0]!.write(Buffer.from('late'));
  assert.equal(sent.length, before);
  assert.throws(() => server.open(TUNNEL, sink(fresh())));
});
