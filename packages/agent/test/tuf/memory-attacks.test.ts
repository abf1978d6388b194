/**
 * Trusted metadata in memory (the fleet simulator, memory-metadata.ts): the same verification as
 * with files. The attack list runs again with `trustedIn.memory`; each
 * test file runs in its own process, so the switch holds for this file only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryMetadata, provisionTrustedRootInMemory } from '../../src/tuf/index.js';
import { trustedVersion, world } from './fixture.js';
import { provision, trustedIn, verify } from './helpers.js';

trustedIn.memory = true;
await import('./attacks.test.js');

void test('in memory: nothing is written to the metadata directory, and a kept root is not replaced', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  const [release] = await verify(w);
  assert.equal(release?.path, w.web1.path);
  assert.equal(await trustedVersion(w, 'director', 'targets'), 1);
  assert.equal(existsSync(join(w.metadataDir, 'image')), false);
  assert.equal(existsSync(join(w.metadataDir, 'director')), false);
  const memory = new MemoryMetadata();
  assert.equal(provisionTrustedRootInMemory(memory, w.image.get('1.root.json')), 'stored');
  assert.equal(provisionTrustedRootInMemory(memory, w.director.get('1.root.json')), 'kept');
  assert.deepEqual(memory.read('root.json'), Buffer.from(w.image.get('1.root.json')));
  assert.throws(() => memory.read('timestamp.json'), { code: 'ENOENT' });
});
