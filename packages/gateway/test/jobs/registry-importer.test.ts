/**
 * The importer that jobs run, against a real registry (Debian's docker-registry, image pushed with
 * skopeo): it reports pulling then converting, writes the squashfs in the job's work directory,
 * and a second import of the same image pulls no layer again (the blob cache is shared).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registryImporter } from '../../src/jobs/registry-importer.js';
import type { ImportRequest } from '../../src/jobs/importer.js';
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
  await writeOciLayout(join(dir, 'layout'), 'v1', [{ architecture: 'amd64', layers: [base, top] }]);
  await pushLayout(join(dir, 'layout'), 'v1', registry.host, 'team/tool');
});

after(async () => {
  await registry.stop();
  await rm(dir, { recursive: true, force: true });
});

async function importOnce(
  name: string,
  phases: string[],
): Promise<{ path: string; digest: string; sha?: string }> {
  const workDir = join(dir, 'work', name);
  await mkdir(workDir, { recursive: true });
  const request: ImportRequest = {
    location: { name: 'lab', type: 'dockerv2', url: registry.url, auth: { type: 'none' } },
    repository: 'team/tool',
    tag: 'v1',
    arch: 'amd64',
    platform: {
      name: 'p',
      admins: [],
      access: { type: 'local', imageDir: join(dir, 'p') },
      allowDevices: false,
    },
    workDir,
    blobCacheDir: join(dir, 'cache'),
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
