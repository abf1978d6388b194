/**
 * Remote access end to end through real processes (docs/remote-access.md): a real server, a real
 * agent running a `process` app (a TCP echo server that also prints what the test asks it to), and
 * the CLI. A followed log shows a line written after the follow started; a restart gives the app a
 * new pid; a tunnel carries 50 MB intact both ways and 20 concurrent streams; exec on a process
 * app is refused with FLT_RUNTIME_UNSUPPORTED; a viewer is refused and nothing is audited for it;
 * every command is audited; a revoked device's tunnels close at once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ADMIN_PASSWORD, Api, Cluster, cliBin, freePort, waitFor } from './harness.js';
import type { Proc } from './harness.js';

const APP = 'echo';

const ECHO_SERVER = `
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const port = Number(process.argv[2]);
net.createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); s.pipe(s); })
  .listen(port, '127.0.0.1', () => console.log('listening on ' + port));
const say = path.join(process.env.FLOTILLA_APP_DATA, 'say');
setInterval(() => {
  if (fs.existsSync(say)) { const text = fs.readFileSync(say, 'utf8').trim(); fs.rmSync(say); console.log(text); }
}, 100);
`;

/** Sends `data` through a TCP connection to 127.0.0.1:port, half-closes, and returns what came back. */
function roundTrip(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
    socket.on('connect', () => {
      socket.end(data);
    });
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

void describe('remote access to a process app on a real agent', () => {
  const cluster = new Cluster();
  let api: Api;
  let url: string;
  let configDir: string;
  let keysDir: string;
  let work: string;
  let deviceId = '';
  let agentDir = '';
  let echoPort = 0;

  function cli(args: string[], input = '') {
    const r = spawnSync(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
      encoding: 'utf8',
      input,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  function spawnCli(name: string, args: string[]): Proc {
    return cluster.spawnCli(name, args, { FLOTILLA_CONFIG_DIR: configDir });
  }

  async function audited(action: string): Promise<{ actorId: string; details: Record<string, unknown> }[]> {
    const r = await api.call<{
      items: { action: string; subjectId: string; actorId: string; details: Record<string, unknown> }[];
    }>('GET', `/api/v1/audit?action=${encodeURIComponent(action)}&limit=200`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.items.filter((e) => e.action === action && e.subjectId === deviceId);
  }

  function pidOf(): number {
    const r = cli(['devices', 'stats', deviceId, '--app', APP, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const stats = JSON.parse(r.stdout) as { services: { service: string; state: string; pid?: number }[] };
    assert.equal(stats.services.length, 1);
    assert.equal(stats.services[0]!.service, APP);
    const pid = stats.services[0]!.pid;
    assert.ok(pid !== undefined && pid > 1, r.stdout);
    return pid;
  }

  /** Starts `flotilla tunnel … --local 0 --json` and returns the local port it listens on. */
  async function openTunnel(extra: string[]): Promise<{ proc: Proc; port: number }> {
    const proc = spawnCli('tunnel', [
      'tunnel',
      deviceId,
      String(echoPort),
      '--local',
      '0',
      '--json',
      ...extra,
    ]);
    const port = await waitFor('the tunnel listens', () => {
      if (proc.child.exitCode !== null) throw new Error(`tunnel exited: ${proc.output()}`);
      const m = /"local":\s*{[^}]*"port":\s*(\d+)/.exec(proc.output());
      return Promise.resolve(m ? Number(m[1]) : null);
    });
    return { proc, port };
  }

  before(async () => {
    const server = await cluster.startServer();
    url = server.url;
    api = await Api.login(url);
    configDir = await cluster.tempDir('flt-cli-');
    keysDir = join(configDir, 'keys');
    work = await cluster.tempDir('flt-remote-');
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
    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'remote',
      tags: ['remote'],
      autoAccept: true,
    });
    echoPort = await freePort();
    const agent = await cluster.startAgent({
      server: url,
      registrationKey: key.body.secret,
      extraArgs: ['--tunnel-host-ports', String(echoPort)],
    });
    agentDir = agent.dataDir;
    deviceId = await waitFor(
      'the agent enrolled',
      async () => {
        const r = await api.call<{ items: { id: string }[] }>(
          'GET',
          `/api/v1/devices?filter=${encodeURIComponent('tags==remote;status==accepted')}`,
        );
        return r.body.items[0]?.id ?? null;
      },
      60_000,
    );
    assert.equal(cli(['keys', 'init', '--no-passphrase', '--keys-dir', keysDir]).code, 0);
    await mkdir(join(work, 'src'), { recursive: true });
    await writeFile(join(work, 'src', 'echo.cjs'), ECHO_SERVER);
    await writeFile(
      join(work, 'config.json'),
      JSON.stringify({
        process: { command: [process.execPath, 'echo.cjs', String(echoPort)], health: { windowMs: 500 } },
      }),
    );
    const push = cli([
      'release',
      'push',
      join(work, 'src'),
      '--app',
      APP,
      '--version',
      '1.0.0',
      '--runtime',
      'process',
      '--config-file',
      join(work, 'config.json'),
      '--keys-dir',
      keysDir,
      '--json',
    ]);
    assert.equal(push.code, 0, push.stderr);
    const d = cli(['deploy', `${APP}@1.0.0`, '--device', deviceId, '--json']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor(
      'the app committed',
      async () => {
        const r = await api.call<{ items: { app: string; phase: string | null }[] }>(
          'GET',
          `/api/v1/devices/${deviceId}/apps`,
        );
        const a = r.body.items.find((i) => i.app === APP);
        if (a?.phase === 'failed' || a?.phase === 'rolled-back') throw new Error(JSON.stringify(a));
        return a?.phase === 'committed';
      },
      90_000,
    );
    await waitFor('the echo server listens', () =>
      roundTrip(echoPort, Buffer.from('x')).then((b) => b.equals(Buffer.from('x'))),
    );
  });
  after(() => cluster.cleanup());

  void test('a followed log shows a line written after the follow started', async () => {
    const follow = spawnCli('logs', ['devices', 'logs', deviceId, '--app', APP, '-f', '--json']);
    // The tail comes first: the line the app printed when it started listening.
    await waitFor('the tail', () => Promise.resolve(follow.output().includes('listening on')));
    const marker = `marker-${randomBytes(6).toString('hex')}`;
    // Written whole, then renamed into place: the app polls for the file, and one caught between
    // writeFile's create and its write printed an empty line and removed it, marker unwritten.
    const say = join(agentDir, 'apps', APP, 'data', 'say');
    await writeFile(`${say}.tmp`, `${marker}\n`);
    await rename(`${say}.tmp`, say);
    await waitFor('the new line, followed', () => Promise.resolve(follow.output().includes(marker)));
    const line = follow
      .output()
      .split('\n')
      .find((l) => l.includes(marker));
    assert.equal((JSON.parse(line!) as { stream: string; text: string }).text, marker);
    await cluster.stop(follow, 'SIGINT');
    const streams = await audited('device.logs.stream');
    assert.ok(streams.some((e) => e.details.follow === true && e.details.app === APP));
  });

  void test('restart gives the process app a new pid; stop and start too; each is audited', async () => {
    const before = pidOf();
    const r = cli(['devices', 'restart', deviceId, '--app', APP, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const afterRestart = await waitFor('a running process after the restart', () => {
      try {
        return Promise.resolve(pidOf());
      } catch {
        return Promise.resolve(null);
      }
    });
    assert.notEqual(afterRestart, before);
    assert.equal(cli(['devices', 'stop', deviceId, '--app', APP]).code, 0);
    const stopped = JSON.parse(cli(['devices', 'stats', deviceId, '--app', APP, '--json']).stdout) as {
      services: { state: string; pid?: number }[];
    };
    assert.equal(stopped.services[0]!.state, 'stopped');
    assert.equal(stopped.services[0]!.pid, undefined);
    assert.equal(cli(['devices', 'start', deviceId, '--app', APP]).code, 0);
    await waitFor('the echo server listens again', () =>
      roundTrip(echoPort, Buffer.from('y'))
        .then((b) => b.equals(Buffer.from('y')))
        .catch(() => false),
    );
    const wrong = cli(['devices', 'restart', deviceId, '--app', APP, '--service', 'nope']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /FLT_NOT_FOUND/);
    const actions = (await audited('device.app.control')).map((e) => e.details.action);
    assert.deepEqual(actions.sort(), ['restart', 'start', 'stop']);
    assert.ok((await audited('device.app.stats')).length >= 3);
  });

  void test('a tunnel carries 50 MB intact both ways and 20 concurrent streams', async () => {
    const { proc, port } = await openTunnel(['--app', APP]);
    try {
      const big = randomBytes(50 * 1024 * 1024);
      const back = await roundTrip(port, big);
      assert.equal(back.length, big.length);
      assert.equal(sha(back), sha(big));
      const many = Array.from({ length: 20 }, () =>
        randomBytes(256 * 1024 + Math.floor(Math.random() * 65536)),
      );
      const answers = await Promise.all(many.map((b) => roundTrip(port, b)));
      answers.forEach((a, i) => assert.equal(sha(a), sha(many[i]!)));
    } finally {
      await cluster.stop(proc);
    }
    const opened = await audited('device.tunnel.open');
    assert.ok(opened.length >= 21);
    assert.deepEqual(opened[0]!.details, { app: APP, port: echoPort });
  });

  void test("a tunnel to the device's own port: only ports the agent allows", async () => {
    const { proc, port } = await openTunnel([]);
    try {
      const data = randomBytes(100_000);
      assert.equal(sha(await roundTrip(port, data)), sha(data));
    } finally {
      await cluster.stop(proc);
    }
    const other = await freePort();
    const refused = spawnCli('tunnel-refused', ['tunnel', deviceId, String(other), '--local', '0', '--json']);
    const lport = await waitFor('listening', () => {
      const m = /"local":\s*{[^}]*"port":\s*(\d+)/.exec(refused.output());
      return Promise.resolve(m ? Number(m[1]) : null);
    });
    try {
      const back = await roundTrip(lport, Buffer.from('hello')).catch(() => Buffer.alloc(0));
      assert.equal(back.length, 0);
      await waitFor('the refusal is reported', () =>
        Promise.resolve(refused.output().includes('FLT_PORT_NOT_ALLOWED')),
      );
    } finally {
      await cluster.stop(refused);
    }
  });

  void test('exec on a process app is refused with FLT_RUNTIME_UNSUPPORTED (there is no container)', () => {
    const r = cli(['devices', 'exec', deviceId, '--app', APP, '--no-stdin', '--', 'echo', 'hi']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /FLT_RUNTIME_UNSUPPORTED/);
  });

  void test('a viewer may read stats, but not logs, restart, exec or tunnel; nothing is audited for them', async () => {
    const created = await api.call<{ id: string }>('POST', '/api/v1/users', {
      username: 'watcher',
      password: 'watcher-password-1234',
      role: 'viewer',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const viewer = await Api.login(url, 'watcher', 'watcher-password-1234');
    const restart = await viewer.call('POST', `/api/v1/devices/${deviceId}/apps/${APP}/control`, {
      action: 'restart',
    });
    assert.equal(restart.status, 403);
    const logs = await fetch(`${url}/api/v1/devices/${deviceId}/apps/${APP}/log-stream`, {
      headers: { authorization: `Bearer ${viewer.bearer}` },
    });
    assert.equal(logs.status, 403);
    for (const path of [`tunnel?port=${echoPort}&app=${APP}`, `exec?app=${APP}&cmd=id`]) {
      const status = await new Promise<number>((resolve) => {
        const ws = new WebSocket(`${url.replace('http', 'ws')}/api/v1/devices/${deviceId}/${path}`, {
          headers: { authorization: `Bearer ${viewer.bearer}` },
        });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('error', () => undefined);
      });
      assert.equal(status, 403, path);
    }
    const stats = await viewer.call('GET', `/api/v1/devices/${deviceId}/apps/${APP}/stats`);
    assert.equal(stats.status, 200);
    for (const action of ['device.app.control', 'device.logs.stream', 'device.tunnel.open', 'device.exec'])
      assert.ok(!(await audited(action)).some((e) => e.actorId === created.body.id), action);
  });

  void test("a revoked device's open tunnel closes at once", async () => {
    const { proc, port } = await openTunnel(['--app', APP]);
    try {
      const socket = connect({ host: '127.0.0.1', port });
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.on('error', () => undefined);
      // The stream is open end to end once a byte made the round trip.
      await new Promise<void>((resolve) => {
        socket.once('data', () => resolve());
        socket.write('ping');
      });
      const r = await api.call('POST', `/api/v1/devices/${deviceId}/revoke`, {});
      assert.ok(r.status < 300, JSON.stringify(r.body));
      await closed;
      await waitFor('the tunnel reports why', () =>
        Promise.resolve(/FLT_DEVICE_REVOKED|FLT_DEVICE_OFFLINE/.test(proc.output())),
      );
    } finally {
      await cluster.stop(proc);
    }
  });
});
