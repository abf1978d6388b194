/**
 * The `docker load` archive's ustar headers (load-archive.ts): read back by tar-stream (name,
 * size, content, checksum), sizes of 8 GiB and more in base-256, and names a header cannot hold
 * refused.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import * as tar from 'tar-stream';
import { tarHeader } from '../../src/runtimes/docker/load-archive.js';

async function entries(
  archive: Buffer,
): Promise<{ name: string; size: number; body: Buffer; mode: number }[]> {
  const extract = tar.extract();
  const out: { name: string; size: number; body: Buffer; mode: number }[] = [];
  extract.on('entry', (header, stream, next) => {
    const parts: Buffer[] = [];
    stream.on('data', (c: unknown) => void parts.push(c as Buffer));
    stream.on('end', () => {
      out.push({
        name: header.name,
        size: header.size ?? -1,
        body: Buffer.concat(parts),
        mode: header.mode ?? -1,
      });
      next();
    });
  });
  const done = new Promise<void>((resolve, reject) => {
    extract.on('finish', () => resolve());
    extract.on('error', reject);
  });
  Readable.from([archive]).pipe(extract);
  await done;
  return out;
}

const pad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512);

void test('headers a tar reader reads back: names, sizes, contents, mode 0644', async () => {
  const config = Buffer.from('{"a":1}');
  const layer = Buffer.alloc(1500, 7);
  const name = `${'a'.repeat(64)}/layer.tar`;
  const archive = Buffer.concat([
    tarHeader(`${'b'.repeat(64)}.json`, config.length),
    config,
    pad(config.length),
    tarHeader(name, layer.length),
    layer,
    pad(layer.length),
    tarHeader('empty', 0),
    Buffer.alloc(1024),
  ]);
  const got = await entries(archive);
  assert.deepEqual(
    got.map((e) => [e.name, e.size, e.mode]),
    [
      [`${'b'.repeat(64)}.json`, 7, 0o644],
      [name, 1500, 0o644],
      ['empty', 0, 0o644],
    ],
  );
  assert.deepEqual(got[0]!.body, config);
  assert.deepEqual(got[1]!.body, layer);
});

void test('a size of 8 GiB or more is written in base-256, with a valid checksum', () => {
  const size = 9 * 1024 ** 3 + 5;
  const header = tarHeader('big/layer.tar', size);
  assert.equal(header[124], 0x80);
  let value = 0n;
  for (let i = 125; i < 136; i++) value = (value << 8n) | BigInt(header[i]!);
  assert.equal(value, BigInt(size));
  const copy = Buffer.from(header);
  copy.fill(0x20, 148, 156);
  const sum = copy.reduce((s, b) => s + b, 0);
  assert.equal(parseInt(header.subarray(148, 154).toString('ascii'), 8), sum);
  // Just below the limit stays octal.
  assert.equal(
    tarHeader('x', 8 ** 11 - 1)
      .subarray(124, 135)
      .toString('ascii'),
    '77777777777',
  );
});

void test('a name a ustar header cannot hold is refused', () => {
  assert.throws(() => tarHeader('n'.repeat(101), 1), /not short ASCII/);
  assert.throws(() => tarHeader('caf\u00e9', 1), /not short ASCII/);
});
