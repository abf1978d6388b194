/**
 * Signed releases and delta updates, end to end through real processes: offline keys made by the
 * CLI, a release pushed (only missing chunks uploaded) and signed offline, deployed to a real agent
 * that verifies it with TUF against the image repository and its director, installs it atomically,
 * and reports each phase. Then an update that moves only what changed; a chunk altered in transit
 * (a proxy in front of the server) that the agent refuses on arrival as FLT_HASH_MISMATCH; and
 * objects altered on the server's disk, that the server itself refuses to serve. Each time the
 * reason is reported and the old release keeps serving.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decodeFrame } from '@flotilla/store';
import { ADMIN_PASSWORD, Api, Cluster, TamperingProxy, cliBin, waitFor } from './harness.js';

interface DeviceApp {
  app: string;
  desired: string | null;
  current: string | null;
  phase: string | null;
  bytesFetched: number | null;
  error: { code: string; message: string } | null;
}
interface PushResult {
  targetPath: string;
  upload: { uploadedBytes: number; objects: number; uploadedObjects: number };
}

async function writeTree(dir: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, content);
  }
}

void describe('signed releases delivered to three real agents', () => {
  const cluster = new Cluster();
  let proxy: TamperingProxy | undefined;
  /** The agent that reaches the server through `proxy`. */
  let proxiedId = '';
  let api: Api;
  let url: string;
  let serverData: string;
  let configDir: string;
  let keysDir: string;
  let work: string;
  /** Device id → the agent's data dir; its `web` tree is at `<dir>/apps/web/current`. */
  const agents = new Map<string, string>();
  const files: Record<string, Buffer> = {};

  function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
      encoding: 'utf8',
      input: '',
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  function push(version: string): PushResult {
    const r = cli([
      'release',
      'push',
      join(work, 'src'),
      '--app',
      'web',
      '--version',
      version,
      '--config-file',
      join(work, 'config.json'),
      '--keys-dir',
      keysDir,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as PushResult;
  }

  async function appState(deviceId: string): Promise<DeviceApp | undefined> {
    const r = await api.call<{ items: DeviceApp[] }>('GET', `/api/v1/devices/${deviceId}/apps`);
    return r.body.items.find((a) => a.app === 'web');
  }

  function installed(deviceId: string, path: string): Promise<Buffer> {
    return readFile(join(agents.get(deviceId)!, 'apps', 'web', 'current', path));
  }

  /** Waits until every agent has settled on `targetPath` and asserts each committed it. */
  async function waitAllCommitted(targetPath: string): Promise<DeviceApp[]> {
    const out: DeviceApp[] = [];
    for (const id of agents.keys()) out.push(await waitCommitted(id, targetPath));
    return out;
  }

  async function waitCommitted(deviceId: string, targetPath: string): Promise<DeviceApp> {
    const final = await waitFor(
      `web settled at ${targetPath} on ${deviceId}`,
      async () => {
        const a = await appState(deviceId);
        if (a?.desired !== targetPath) return null;
        return a.phase === 'committed' || a.phase === 'failed' || a.phase === 'rolled-back' ? a : null;
      },
      90_000,
    );
    assert.equal(final.phase, 'committed', JSON.stringify(final));
    assert.equal(final.current, targetPath);
    return final;
  }

  before(async () => {
    const server = await cluster.startServer();
    url = server.url;
    serverData = server.dataDir;
    api = await Api.login(url);
    configDir = await cluster.tempDir('flt-cli-');
    keysDir = join(configDir, 'keys');
    work = await cluster.tempDir('flt-rel-');
    const login = spawnSync(
      process.execPath,
      [cliBin, 'login', '--server', url, '--user', 'admin', '--password-stdin'],
      {
        input: `${ADMIN_PASSWORD}\n`,
        env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
        encoding: 'utf8',
      },
    );
    assert.equal(login.status, 0, login.stderr);
    await writeFile(join(work, 'config.json'), JSON.stringify({ files: {} }));
    // v1: 40 files of 20 KiB random data (incompressible, so sizes are easy to reason about).
    for (let i = 0; i < 40; i++) files[`assets/f${String(i).padStart(2, '0')}.bin`] = randomBytes(20 * 1024);
    files['index.html'] = Buffer.from('<h1>v1</h1>\n');
    await writeTree(join(work, 'src'), files);

    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'rel',
      tags: ['rel'],
      autoAccept: true,
    });
    proxy = new TamperingProxy(url);
    await proxy.start();
    const dirs = new Map<string, string>();
    for (let i = 0; i < 3; i++) {
      const a = await cluster.startAgent({
        // rel-2 goes through the proxy, which passes everything through until a test tampers.
        server: i === 2 ? proxy.url : url,
        registrationKey: key.body.secret,
        facts: { name: `rel-${i}` },
      });
      dirs.set(`rel-${i}`, a.dataDir);
    }
    await waitFor(
      'three agents enrolled',
      async () => {
        const r = await api.call<{ items: { id: string; status: string; facts: Record<string, unknown> }[] }>(
          'GET',
          `/api/v1/devices?filter=${encodeURIComponent('tags==rel;status==accepted')}`,
        );
        for (const d of r.body.items) {
          agents.set(d.id, dirs.get(String(d.facts.name))!);
          if (d.facts.name === 'rel-2') proxiedId = d.id;
        }
        return agents.size === 3;
      },
      60_000,
    );
    // The agent started before any key existed (nothing signed yet: it waits quietly); keys now.
    const init = cli(['keys', 'init', '--no-passphrase', '--keys-dir', keysDir]);
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await cluster.cleanup();
    await proxy?.stop();
  });

  void test('v1 is pushed, signed offline, deployed to three agents, verified and installed', async () => {
    const v1 = push('1.0.0');
    assert.equal(v1.upload.uploadedObjects, v1.upload.objects, 'a first push uploads everything');
    const d = cli(['deploy', 'web@1.0.0', '--filter', 'tags==rel', '--json']);
    assert.equal(d.code, 0, d.stderr);
    assert.equal((JSON.parse(d.stdout) as { devices: string[] }).devices.length, 3);
    await waitAllCommitted(v1.targetPath);
    for (const id of agents.keys()) {
      assert.equal((await installed(id, 'index.html')).toString(), '<h1>v1</h1>\n');
      assert.deepEqual(await installed(id, 'assets/f07.bin'), files['assets/f07.bin']);
    }
  });

  void test('v2 with 10% of files changed: each agent moves at most 1.3x the changed chunks', async () => {
    for (let i = 0; i < 4; i++)
      files[`assets/f${String(i * 10).padStart(2, '0')}.bin`] = randomBytes(20 * 1024);
    files['index.html'] = Buffer.from('<h1>v2</h1>\n');
    await writeTree(join(work, 'src'), files);
    const v2 = push('2.0.0');
    assert.ok(v2.upload.uploadedObjects < v2.upload.objects / 2, 'the second push uploads only what changed');
    const diff = cli(['release', 'diff', 'web@1.0.0', 'web@2.0.0', '--json']);
    assert.equal(diff.code, 0, diff.stderr);
    const { fetchBytes, modified } = JSON.parse(diff.stdout) as { fetchBytes: number; modified: unknown[] };
    assert.equal(modified.length, 5);
    assert.equal(cli(['deploy', 'web@2.0.0', '--filter', 'tags==rel']).code, 0);
    for (const app of await waitAllCommitted(v2.targetPath)) {
      assert.ok(app.bytesFetched !== null && app.bytesFetched > 0, 'bytes fetched are reported');
      assert.ok(app.bytesFetched <= 1.3 * fetchBytes, `fetched ${app.bytesFetched} > 1.3 × ${fetchBytes}`);
    }
    for (const id of agents.keys())
      assert.equal((await installed(id, 'index.html')).toString(), '<h1>v2</h1>\n');
  });

  void test('v2.1 edits four files in place: the server prepares deltas, each agent fetches a fraction of the changed chunks', async () => {
    for (let i = 1; i <= 4; i++) {
      const path = `assets/f${String(i).padStart(2, '0')}.bin`;
      const edited = Buffer.from(files[path]!);
      randomBytes(100).copy(edited, 5_000 * i);
      files[path] = edited;
    }
    await writeTree(join(work, 'src'), files);
    const v21 = push('2.1.0');
    const diff = cli(['release', 'diff', 'web@2.0.0', 'web@2.1.0', '--json']);
    assert.equal(diff.code, 0, diff.stderr);
    const { fetchBytes } = JSON.parse(diff.stdout) as { fetchBytes: number };
    // A 20 KiB file is one chunk or two (the first at least 16 KiB); the first three edits land in
    // the first chunk of their file.
    assert.ok(fetchBytes > 3 * 16 * 1024, `the changed chunks are ${fetchBytes} bytes`);
    // Like `ostree static-delta generate`: computed once on the server, before any device asks.
    const prepared = cli(['release', 'delta', 'web@2.0.0', 'web@2.1.0', '--json']);
    assert.equal(prepared.code, 0, prepared.stderr);
    const summary = JSON.parse(prepared.stdout) as { files: number; deltas: number; deltaBytes: number };
    assert.equal(summary.files, 4);
    assert.equal(summary.deltas, 4);
    assert.ok(summary.deltaBytes < fetchBytes / 10, `deltas are ${summary.deltaBytes} bytes`);
    assert.equal(cli(['deploy', 'web@2.1.0', '--filter', 'tags==rel']).code, 0);
    for (const app of await waitAllCommitted(v21.targetPath)) {
      assert.ok(app.bytesFetched !== null && app.bytesFetched > 0, 'bytes fetched are reported');
      assert.ok(app.bytesFetched < fetchBytes / 4, `fetched ${app.bytesFetched} of ${fetchBytes} changed`);
    }
    for (const id of agents.keys())
      for (let i = 1; i <= 4; i++) {
        const path = `assets/f${String(i).padStart(2, '0')}.bin`;
        assert.deepEqual(await installed(id, path), files[path], `${path} on ${id}`);
        // Rebuilt from its delta, the file was written once: the release's file is the one the
        // agent's cache keeps whole (docs/updates.md "Deltas").
        const inRelease = await stat(join(agents.get(id)!, 'apps', 'web', 'current', path));
        const whole = (await readdir(join(agents.get(id)!, 'chunks', 'files'))).map((name) =>
          join(agents.get(id)!, 'chunks', 'files', name),
        );
        const inodes = await Promise.all(whole.map(async (f) => (await stat(f)).ino));
        assert.ok(inodes.includes(inRelease.ino), `${path} on ${id} is a hardlink of a cached whole file`);
      }
    // The agents asked for each new tree in one request (the tree pack), not a level at a time.
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const served = /flotilla_objects_served_total\{via="tree-pack"\} (\d+)/.exec(metrics);
    assert.ok(served && Number(served[1]) > 0, 'tree packs were served');
  });

  /** Waits until `deviceId` settled on `targetPath` and asserts it gave it up; returns the report. */
  async function waitFailed(deviceId: string, targetPath: string): Promise<DeviceApp> {
    let last: DeviceApp | undefined;
    return waitFor(
      `${targetPath} refused on ${deviceId}`,
      async () => {
        const a = (last = await appState(deviceId));
        if (a?.desired !== targetPath) return null;
        return a.phase === 'committed' || a.phase === 'failed' || a.phase === 'rolled-back' ? a : null;
      },
      90_000,
    ).then(
      (a) => {
        assert.notEqual(a.phase, 'committed', `${targetPath} was installed on ${deviceId}`);
        return a;
      },
      (e: unknown) => {
        const logs = cluster.procs
          .filter((p) => p.name.startsWith('agent'))
          .map((p) => p.output().slice(-2000));
        throw new Error(
          `${e instanceof Error ? e.message : String(e)}; last ${JSON.stringify(last)}\n${logs.join('\n')}`,
        );
      },
    );
  }

  /** Pushes `version` and returns it with the objects the push added to the server's store. */
  async function pushAdding(version: string): Promise<{ pushed: PushResult; added: string[] }> {
    const objectsDir = join(serverData, 'objects', 'objects');
    const before = new Set(await listObjects(objectsDir));
    const pushed = push(version);
    const added = (await listObjects(objectsDir)).filter((p) => !before.has(p));
    assert.ok(added.length > 0, `${version} added objects on the server`);
    return { pushed, added };
  }

  void test('a chunk altered in transit is refused on arrival (FLT_HASH_MISMATCH), reported, and v2.1 keeps serving', async () => {
    const transit = randomBytes(30 * 1024);
    files['assets/transit.bin'] = transit;
    files['index.html'] = Buffer.from('<h1>v3</h1>\n');
    await writeTree(join(work, 'src'), files);
    const { pushed: v3, added } = await pushAdding('3.0.0');
    // The chunks of transit.bin: the new objects whose content lies in the file (tree objects do not).
    const chunks: string[] = [];
    for (const p of added) {
      const content = decodeFrame(await readFile(p));
      if (content.length > 0 && transit.includes(content)) chunks.push(basename(dirname(p)) + basename(p));
    }
    assert.ok(chunks.length > 0, 'transit.bin has chunks of its own');
    for (const id of chunks) proxy!.tamper.add(id);
    assert.equal(cli(['deploy', 'web@3.0.0', '--device', proxiedId]).code, 0);
    const failed = await waitFailed(proxiedId, v3.targetPath);
    assert.equal(failed.error?.code, 'FLT_HASH_MISMATCH', JSON.stringify(failed.error));
    assert.ok(
      chunks.some((id) => proxy!.served.has(id)),
      'the altered chunk reached the agent (it was not refused before)',
    );
    assert.equal((await installed(proxiedId, 'index.html')).toString(), '<h1>v2</h1>\n');
    assert.notEqual((await appState(proxiedId))?.current, v3.targetPath);
  });

  void test('objects altered on the server disk are refused by the server itself, reported, and v2.1 keeps serving', async () => {
    files['assets/new.bin'] = randomBytes(30 * 1024);
    files['index.html'] = Buffer.from('<h1>v4</h1>\n');
    await writeTree(join(work, 'src'), files);
    const { pushed: v4, added } = await pushAdding('4.0.0');
    // Flip bytes in every object v4 added (its chunks and tree objects, the root object among
    // them), keeping the lengths.
    for (const p of added) {
      const buf = await readFile(p);
      buf[buf.length - 1] = (buf[buf.length - 1] ?? 0) ^ 0xff;
      await writeFile(p, buf);
    }
    const deviceId = [...agents.keys()].find((id) => id !== proxiedId)!;
    assert.equal(cli(['deploy', 'web@4.0.0', '--device', deviceId]).code, 0);
    const failed = await waitFailed(deviceId, v4.targetPath);
    // The server checks what it reads against its id and refuses to serve the root object (the
    // pack request for it fails with HTTP 400): the agent reports the refusal, never the bytes.
    assert.equal(failed.error?.code, 'FLT_BAD_REQUEST', JSON.stringify(failed.error));
    assert.equal((await installed(deviceId, 'index.html')).toString(), '<h1>v2</h1>\n');
    assert.notEqual((await appState(deviceId))?.current, v4.targetPath);
  });
});

async function listObjects(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await readdir(dir, { withFileTypes: true })) {
    if (!sub.isDirectory()) continue;
    for (const f of await readdir(join(dir, sub.name), { withFileTypes: true })) {
      if (f.isFile() && !f.name.includes('.tmp')) out.push(join(dir, sub.name, f.name));
    }
  }
  return out;
}
