/**
 * The docker runtime's exec demultiplexer: frames split anywhere across chunks come out whole and in
 * order on stdout and stderr, and the engine's stream is paused while a destination is full.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import { demuxWithBackpressure } from '../../src/runtimes/docker/docker-runtime.js';

function frame(type: 1 | 2, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** A destination that takes a chunk only every few milliseconds (an operator reading slowly). */
function slowSink(into: Buffer[]): Writable {
  return new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      into.push(Buffer.from(chunk));
      setTimeout(callback, 1);
    },
  });
}

void test('frames split across chunks come out whole, in order, apart; a full destination pauses the source', async () => {
  const outParts = Array.from({ length: 40 }, () => randomBytes(32 * 1024));
  const errParts = [Buffer.from('warn 1\n'), Buffer.from('warn 2\n')];
  const wire = Buffer.concat([
    frame(2, errParts[0]!),
    ...outParts.map((p) => frame(1, p)),
    frame(2, errParts[1]!),
  ]);
  const source = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = slowSink(out);
  let paused = 0;
  source.on('pause', () => (paused += 1));
  demuxWithBackpressure(source, stdout, slowSink(err));
  // Odd-sized chunks: headers and payloads are cut at arbitrary places.
  for (let at = 0; at < wire.length; at += 7777) source.write(wire.subarray(at, at + 7777));
  source.end();
  await new Promise<void>((resolve) => source.on('end', () => resolve()));
  await new Promise<void>((resolve) => stdout.end(() => resolve()));
  assert.ok(Buffer.concat(out).equals(Buffer.concat(outParts)));
  assert.equal(Buffer.concat(err).toString(), 'warn 1\nwarn 2\n');
  assert.ok(paused > 0, 'the source was paused while stdout was full');
});
