/**
 * The importer that jobs run, against a real registry (Debian's docker-registry, image pushed with
 * skopeo): it reports pulling then converting, writes the squashfs in the job's work directory,
 * and a second import of the same image pulls no layer again (the blob cache is shared).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registryImporter } from '../../src/jobs/registry-importer.js';
import type { ImportRequest, ImportResult } from '../../src/jobs/importer.js';
import { ConversionCache } from '../../src/convert/reuse.js';
import { makeLayer, pushLayout, writeOciLayout } from '../helpers/oci.js';
import { run, startRegistry } from '../helpers/services.js';
import type { Registry } from '../helpers/services.js';

let dir = '';
let registry: Registry;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flt-gw-importer-'));
  registry = await startRegistry(join(dir, 'registry'), { mode: 'none' });
  const base = await makeLayer([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/version', content: 'one\n' },
    { name: 'etc/gone', content: 'gone\n' },
  ]);
  const top = await makeLayer([
    { name: 'etc/.wh.gone', content: '' },
    { name: 'etc/version', content: 'two\n' },
  ]);
  const top2 = await makeLayer([{ name: 'etc/version', content: 'three\n' }]);
  await writeOciLayout(join(dir, 'layout'), 'v1', [{ architecture: 'amd64', layers: [base, top] }]);
  await pushLayout(join(dir, 'layout'), 'v1', registry.host, 'team/tool');
  await writeOciLayout(join(dir, 'layout2'), 'v2', [{ architecture: 'amd64', layers: [base, top2] }]);
  await pushLayout(join(dir, 'layout2'), 'v2', registry.host, 'team/tool');
});

after(async () => {
  await registry.stop();
  await rm(dir, { recursive: true, force: true });
});

async function importOnce(
  name: string,
  phases: string[],
  tag = 'v1',
  conversionCache?: ConversionCache,
): Promise<{ path: string; digest: string; sha?: string; result: ImportResult }> {
  const workDir = join(dir, 'work', name);
  await mkdir(workDir, { recursive: true });
  const request: ImportRequest = {
    location: { name: 'lab', type: 'dockerv2', url: registry.url, auth: { type: 'none' } },
    repository: 'team/tool',
    tag,
    arch: 'amd64',
    platform: {
      name: 'p',
      admins: [],
      access: { type: 'local', imageDir: join(dir, 'p') },
      allowDevices: false,
    },
    workDir,
    blobCacheDir: join(dir, 'cache'),
    ...(conversionCache ? { conversionCache } : {}),
    signal: new AbortController().signal,
    onProgress: (phase) => {
      if (phases.at(-1) !== phase) phases.push(phase);
    },
  };
  const result = await registryImporter().import(request);
  return {
    path: result.squashfsPath,
    digest: result.manifestDigest,
    ...(result.squashfsSha256 === undefined ? {} : { sha: result.squashfsSha256 }),
    result,
  };
}

void test('imports from a real registry into a squashfs with the layers applied', async () => {
  const phases: string[] = [];
  const first = await importOnce('a', phases);
  assert.deepEqual(phases, ['pulling', 'converting']);
  assert.match(first.digest, /^sha256:[0-9a-f]{64}$/);
  assert.ok(first.path.startsWith(join(dir, 'work', 'a')), 'the squashfs is in the job work dir');
  const { stdout } = await run('unsquashfs', ['-cat', first.path, 'etc/version']);
  assert.equal(stdout, 'two\n');
  const listing = await run('unsquashfs', ['-l', first.path]);
  assert.ok(!listing.stdout.includes('etc/gone'), 'the whiteout removed the file');

  const second = await importOnce('b', []);
  assert.equal(second.digest, first.digest);
  assert.equal(second.sha, first.sha, 'the same image gives the same squashfs');
});

void test('the next version of an image reuses the cached one (as a job does) and gives the bytes of a cold import', async () => {
  const cold = await importOnce('v2-cold', [], 'v2');
  assert.equal(cold.result.reusedFrom, null);

  // What the runner does with a finished import: the file into the image cache, the index beside.
  const images = join(dir, 'images');
  await mkdir(images, { recursive: true });
  const cache = new ConversionCache(join(dir, 'incremental'), (id) => join(images, `${id}.squashfs`));
  const v1 = await importOnce('c-v1', [], 'v1', cache);
  assert.equal(v1.result.reusedFrom, null, 'nothing cached yet');
  await rename(v1.path, join(images, `${v1.sha ?? ''}.squashfs`));
  await cache.remember(v1.sha ?? '', v1.result.index!, join(dir, 'work', 'c-v1'));

  const v2 = await importOnce('c-v2', [], 'v2', cache);
  assert.equal(v2.result.reusedFrom, v1.sha, 'v2 shares its base layer with v1');
  assert.equal(v2.sha, cold.sha);
  assert.deepEqual(await readFile(v2.path), await readFile(cold.path));
  const { stdout } = await run('unsquashfs', ['-cat', v2.path, 'etc/version']);
  assert.equal(stdout, 'three\n');
  const listing = await run('unsquashfs', ['-l', v2.path]);
  assert.ok(listing.stdout.includes('etc/gone'), 'v2 has no whiteout of etc/gone');
});
