/**
 * Standard TUF clients against a real listening server (docs/security.md, "Reading the image repository
 * with standard TUF clients"): tuf-js's Updater and python-tuf's reference client (ngclient) load a
 * trusted root, refresh, find a release's target, download it from the consistent-snapshot URL they
 * build themselves and verify it — with a token header; without one they are refused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import { BaseFetcher, Updater } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import type { Release } from '@flotilla/protocol';
import { bearer, createTestApp } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { assign, publish, treeOf } from '../objects/push.js';
import { initTrust, signReleases } from '../releases/signing.js';

const run = promisify(execFile);
/** The script lives beside this file's source (tests run from dist/). */
const PYTHON_CLIENT = fileURLToPath(
  new URL(
    import.meta.url.endsWith('.ts') ? './python_tuf_client.py' : '../../../test/tuf/python_tuf_client.py',
    import.meta.url,
  ),
);

/** tuf-js's fetcher with a header added to every request (its default fetcher sends none). */
class HeaderFetcher extends BaseFetcher {
  constructor(private readonly headers: Record<string, string>) {
    super();
  }

  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const response = await fetch(url, { headers: this.headers, signal: AbortSignal.timeout(30_000) });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new DownloadHTTPError(`GET ${url}: HTTP ${response.status}`, response.status);
    }
    return response.body as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

let t: TestApp;
let base: string;
let release: Release;
let rootBytes: Buffer;
let deviceToken: string;
let otherDeviceToken: string;
let trustedRoot: Buffer;
const dirs: string[] = [];

before(async () => {
  t = await createTestApp({ dialect: 'sqlite' });
  const tree = await treeOf({ 'index.html': '<h1>for any TUF client</h1>', 'bin/run.sh': 'exec true\n' });
  release = await publish(t, tree, 'web', '2.1.0');
  rootBytes = Buffer.from(await tree.store.getObject(tree.root));
  const keys = await initTrust(t);
  await signReleases(t, keys, [release], () => rootBytes.length);
  const device = await acceptedDevice(t);
  deviceToken = device.token;
  // A device may download the root object of releases assigned to it only (issue 13 item 1).
  await assign(t, release, device.id);
  otherDeviceToken = (await acceptedDevice(t)).token;
  // The trusted root comes out of band (here: an operator reads version 1).
  const root = await t.app.inject({
    method: 'GET',
    url: '/tuf/image/1.root.json',
    headers: bearer(t.adminToken),
  });
  assert.equal(root.statusCode, 200, root.body);
  trustedRoot = root.rawPayload;
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
});
after(async () => {
  await t.close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function workDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-tuf-client-'));
  dirs.push(dir);
  return dir;
}

async function tufJs(headers: Record<string, string>) {
  const dir = await workDir();
  await writeFile(join(dir, 'root.json'), trustedRoot);
  return {
    dir,
    updater: new Updater({
      metadataDir: dir,
      metadataBaseUrl: `${base}/tuf/image/`,
      targetDir: dir,
      targetBaseUrl: `${base}/tuf/image/targets/`,
      fetcher: new HeaderFetcher(headers),
    }),
  };
}

void test("tuf-js's Updater verifies the image repository and downloads a release's target with a token header", async () => {
  for (const token of [deviceToken, await t.tokenFor('viewer')]) {
    const { dir, updater } = await tufJs(bearer(token));
    await updater.refresh();
    const info = await updater.getTargetInfo(release.targetPath);
    assert.ok(info, 'the release is a target');
    assert.equal(info.length, rootBytes.length);
    const file = await updater.downloadTarget(info, join(dir, 'root-object'));
    const bytes = await readFile(file);
    assert.deepEqual(bytes, rootBytes);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), release.rootObject);
  }
});

void test("a device not assigned the release reads the metadata but not the release's target (404)", async () => {
  const { dir, updater } = await tufJs(bearer(otherDeviceToken));
  await updater.refresh();
  const info = await updater.getTargetInfo(release.targetPath);
  assert.ok(info, 'the metadata lists the release');
  await assert.rejects(updater.downloadTarget(info, join(dir, 'root-object')), (e: unknown) => {
    assert.ok(e instanceof DownloadHTTPError, String(e));
    assert.equal(e.statusCode, 404);
    return true;
  });
});

void test("tuf-js's Updater is refused without a token (HTTP 401)", async () => {
  const { updater } = await tufJs({});
  await assert.rejects(updater.refresh(), (e: unknown) => {
    assert.ok(e instanceof DownloadHTTPError, String(e));
    assert.equal(e.statusCode, 401);
    return true;
  });
});

interface PythonResult {
  ok: boolean;
  error?: string;
  status?: number | null;
  length?: number;
  sha256?: string;
  signedLength?: number;
  signedSha256?: string;
}

/** python-tuf 3.1.1 as vendored beside this test (Debian 12 packages no python-tuf). */
const VENDORED_PYTHON_TUF = fileURLToPath(
  new URL(
    import.meta.url.endsWith('.ts') ? './vendor/python-tuf' : '../../../test/tuf/vendor/python-tuf',
    import.meta.url,
  ),
);

interface PythonTuf {
  python: string;
  env: NodeJS.ProcessEnv;
  version: string;
}

/**
 * A python3 that imports python-tuf's ngclient, with its version, or null: an installed python-tuf
 * first, then the vendored copy (which needs Debian's python3-securesystemslib and python3-requests).
 */
async function pythonTuf(): Promise<PythonTuf | null> {
  const vendored = { ...process.env, PYTHONPATH: VENDORED_PYTHON_TUF };
  const candidates: Array<[string, NodeJS.ProcessEnv]> = [
    ['python3', process.env],
    ['/usr/bin/python3', process.env],
    ['/usr/bin/python3', vendored],
    ['python3', vendored],
  ];
  for (const [python, env] of candidates) {
    try {
      const { stdout } = await run(python, ['-c', 'import tuf, tuf.ngclient; print(tuf.__version__)'], {
        env,
      });
      return { python, env, version: stdout.trim() };
    } catch {
      // try the next interpreter
    }
  }
  return null;
}

/**
 * Whether a missing python-tuf fails the test rather than skipping it: when asked to
 * (FLOTILLA_REQUIRE_PYTHON_TUF=1), or in CI (.ci/run installs what the vendored copy needs).
 */
function pythonTufRequired(): boolean {
  return process.env.FLOTILLA_REQUIRE_PYTHON_TUF === '1' || process.env.CI === 'true';
}

async function withPythonTuf(t: TestContext): Promise<PythonTuf | null> {
  const found = await pythonTuf();
  if (found) {
    t.diagnostic(`python-tuf ${found.version} (${found.python}${found.env.PYTHONPATH ? ', vendored' : ''})`);
    return found;
  }
  const why =
    "python-tuf's ngclient is not importable by python3, nor the vendored copy (it needs Debian's " +
    'python3-securesystemslib and python3-requests: apt-get install python3-securesystemslib python3-requests)';
  if (pythonTufRequired()) assert.fail(why);
  t.skip(why);
  return null;
}

async function pythonClient(py: PythonTuf, token: string | null): Promise<PythonResult> {
  const dir = await workDir();
  const rootFile = join(dir, 'trusted-root.json');
  await writeFile(rootFile, trustedRoot);
  const args = [
    PYTHON_CLIENT,
    '--metadata-url',
    `${base}/tuf/image/`,
    '--targets-url',
    `${base}/tuf/image/targets/`,
    '--trusted-root',
    rootFile,
    '--target',
    release.targetPath,
    '--work-dir',
    join(dir, 'client'),
    ...(token === null ? [] : ['--token', token]),
  ];
  const { stdout } = await run(py.python, args, { env: py.env }).catch(
    (e: { code?: number; stdout?: string; stderr?: string }) => {
      if (e.code === 2 && e.stdout) return { stdout: e.stdout };
      throw new Error(`python client failed (${e.code}): ${e.stderr ?? ''}`);
    },
  );
  return JSON.parse(stdout) as PythonResult;
}

void test("python-tuf's ngclient verifies the image repository and downloads a release's target with a token header", async (t) => {
  const python = await withPythonTuf(t);
  if (python === null) return;
  const result = await pythonClient(python, deviceToken);
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.equal(result.length, rootBytes.length);
  assert.equal(result.signedLength, rootBytes.length);
  assert.equal(result.sha256, release.rootObject);
  assert.equal(result.signedSha256, release.rootObject);
});

void test("python-tuf's ngclient is refused without a token (HTTP 401)", async (t) => {
  const python = await withPythonTuf(t);
  if (python === null) return;
  const result = await pythonClient(python, null);
  assert.equal(result.ok, false, JSON.stringify(result));
  assert.equal(result.status, 401, JSON.stringify(result));
});
