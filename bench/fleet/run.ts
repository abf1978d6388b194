/**
 * Fleet benchmark (bench/README.md "fleet"): one real `flotilla server` process and the fleet
 * simulator (packages/sim, in this process) on this machine, on SQLite and then PostgreSQL.
 *
 * 1. N simulated devices enroll and connect their WebSockets (heartbeats at the server's interval).
 *    Server memory (RSS) before and with the connections held: MB per 1,000 connections.
 * 2. Idle: the server's CPU time over a window with every device connected: CPU ms per second per
 *    1,000 idle devices.
 * 3. Deploy: `POST /api/v1/deployments` with a filter selecting all N; time until the last device
 *    received its `state-changed` notice, and until every device's `committed` report was accepted
 *    (instant installs; each device refreshes and verifies both TUF repositories first). Checked
 *    with `deploy status` at the end (exact counts).
 *
 *    With `--trigger rollout` the assignment is a one-wave rollout instead (`POST /api/v1/rollouts`,
 *    waves `100%`, no soak): also the time until the rollout shows `completed` (every device counted
 *    a success by the engine).
 *
 * Each way of starting an assignment is one function (`Trigger`): `deployTrigger`, `rolloutTrigger`.
 *
 * The simulator runs in this process, or with `--sim-procs N` in N child processes (sims.ts), each
 * with its own open-files limit; the server's connection cap is lifted (`maxConnections` 0), so
 * the server process's own open-files limit is what bounds the connections it holds.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { childSims, cpuSecondsOf as cpuSeconds, inProcessSims, rssMbOf as rssMb } from './sims.js';
import type { Sims } from './sims.js';

const { values: opts } = parseArgs({
  options: {
    devices: { type: 'string', default: '10000' },
    dialect: { type: 'string', default: 'sqlite' },
    idle: { type: 'string', default: '20' },
    addresses: { type: 'string' },
    json: { type: 'boolean', default: false },
    'notify-only': { type: 'boolean', default: false },
    'max-wait': { type: 'string', default: '600' },
    trigger: { type: 'string', default: 'deploy' },
    'sim-procs': { type: 'string', default: '1' },
  },
});
const SIM_PROCS = Math.max(1, Number(opts['sim-procs']));
/** Seconds to wait for every commit; then the figures so far are printed (`committed` short of N). */
const MAX_WAIT_MS = Number(opts['max-wait']) * 1000;
const DEVICES = Number(opts.devices);
const IDLE_SECONDS = Number(opts.idle);
const DIALECTS = opts.dialect === 'both' ? ['sqlite', 'postgres'] : [opts.dialect];
const ADDRESSES = Number(opts.addresses ?? Math.max(1, Math.ceil(DEVICES / 10_000)));

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const cliBin = join(root, 'packages', 'cli', 'dist', 'src', 'bin.js');
const PASSWORD = 'bench-admin-password';
const POSTGRES = process.env.FLOTILLA_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Api {
  constructor(
    readonly base: string,
    readonly token: string,
  ) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const r = await fetch(`${this.base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    if (r.status >= 400) throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 500)}`);
    return { status: r.status, body: JSON.parse(text) as T };
  }
}

async function adminApi(base: string): Promise<Api> {
  const r = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: PASSWORD }),
  });
  const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const t = await fetch(`${base}/api/v1/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({ name: 'bench' }),
  });
  return new Api(base, ((await t.json()) as { secret: string }).secret);
}

interface Server {
  base: string;
  child: ChildProcess;
  dataDir: string;
  stop(): Promise<void>;
}

async function startServer(dialect: string): Promise<Server> {
  const dataDir = await mkdtemp(join(tmpdir(), 'flt-bench-fleet-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let database: string | undefined;
  let dbName: string | undefined;
  if (dialect === 'postgres') {
    dbName = `flt_bench_${Math.random().toString(36).slice(2, 10)}`;
    const client = new pg.Client({ connectionString: POSTGRES });
    await client.connect();
    await client.query(`CREATE DATABASE ${dbName}`);
    await client.end();
    const url = new URL(POSTGRES);
    url.pathname = `/${dbName}`;
    database = url.toString();
  }
  const args = [
    cliBin,
    'server',
    '--data-dir',
    dataDir,
    '--listen',
    `127.0.0.1:${port}`,
    '--log-level',
    'warn',
  ];
  if (database) args.push('--database', database);
  // FLT_BENCH_SERVER_PROF=DIR: a CPU profile of the server (written when it stops) to DIR.
  const prof = process.env.FLT_BENCH_SERVER_PROF;
  const child = spawn(process.execPath, [...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []), ...args], {
    env: {
      ...process.env,
      FLOTILLA_ADMIN_PASSWORD: PASSWORD,
      // Every simulated device comes from 127.0.0.0/8: no per-address caps (docs/simulator.md).
      FLOTILLA_MAX_CONNECTIONS_PER_ADDRESS: '0',
      // Nor the total cap (10,000 by default): the devices' WebSockets plus the simulator's idle
      // keep-alive HTTP connections exceed it at 10,000 devices, and the devices refused would
      // back off for minutes. The process's open-files limit bounds the connections instead.
      FLOTILLA_MAX_CONNECTIONS: '0',
      FLOTILLA_ENROLL_NONCES_PER_ADDRESS: '0',
      FLOTILLA_TOKEN_CHALLENGES_PER_ADDRESS_PER_MINUTE: '0',
      FLOTILLA_REPORTS_PER_DEVICE_PER_MINUTE: '0',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error('the server exited');
    const ok = await fetch(`${base}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i > 300) throw new Error('the server did not start');
    await sleep(100);
  }
  return {
    base,
    child,
    dataDir,
    async stop() {
      // FLT_BENCH_SERVER_METRICS=FILE: the server's /metrics (requests per route and status) to FILE.
      const metricsFile = process.env.FLT_BENCH_SERVER_METRICS;
      if (metricsFile) await writeFile(metricsFile, await (await fetch(`${base}/metrics`)).text());
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      await rm(dataDir, { recursive: true, force: true });
      if (dbName) {
        const client = new pg.Client({ connectionString: POSTGRES });
        await client.connect();
        await client.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
        await client.end();
      }
    },
  };
}

/** Signs one release into the server with the real CLI (offline keys in a temp dir). */
async function pushRelease(base: string, work: string): Promise<void> {
  const configDir = join(work, 'cli');
  const env = { ...process.env, FLOTILLA_CONFIG_DIR: configDir };
  const run = (args: string[], input = '') => {
    const r = spawnSync(process.execPath, [cliBin, ...args], { env, encoding: 'utf8', input });
    if (r.status !== 0) throw new Error(`flotilla ${args.join(' ')}: ${r.stderr}`);
  };
  run(['login', '--server', base, '--user', 'admin', '--password-stdin'], `${PASSWORD}\n`);
  run(['keys', 'init', '--no-passphrase', '--keys-dir', join(configDir, 'keys')]);
  const tree = join(work, 'tree');
  await mkdir(tree, { recursive: true });
  await writeFile(join(tree, 'index.html'), 'fleet bench\n');
  run(['release', 'push', tree, '--app', 'web', '--version', '1.0.0', '--keys-dir', join(configDir, 'keys')]);
}

/**
 * Starts an assignment of web@1.0.0 to every bench device; resolves when the server answered.
 * `finished`, when given, resolves when the server counts the assignment complete.
 */
type Trigger = (api: Api) => Promise<{ answeredMs: number; status: number; finished?: () => Promise<void> }>;

const deployTrigger: Trigger = async (api) => {
  const t0 = performance.now();
  const r = await api.call('POST', '/api/v1/deployments', {
    app: 'web',
    version: '1.0.0',
    filter: 'tags==bench',
  });
  return { answeredMs: performance.now() - t0, status: r.status };
};

/** A one-wave rollout to every bench device, no soak: complete once every device committed. */
const rolloutTrigger: Trigger = async (api) => {
  const t0 = performance.now();
  const r = await api.call<{ id: string }>('POST', '/api/v1/rollouts', {
    app: 'web',
    version: '1.0.0',
    filter: 'tags==bench',
    waves: ['100%'],
    soakSeconds: 0,
  });
  const answeredMs = performance.now() - t0;
  const finished = async () => {
    for (;;) {
      const state = (await api.call<{ state: string }>('GET', `/api/v1/rollouts/${r.body.id}`)).body.state;
      if (state === 'completed') return;
      if (state !== 'running') throw new Error(`the rollout is ${state}`);
      if (performance.now() - t0 > 600_000) throw new Error('the rollout did not complete');
      // Once a second, as an operator's `rollout show` would: each answer counts every device of
      // the rollout and sorts their install times (10,000 rows), which every 100 ms cost the
      // server more CPU than the engine's own passes.
      await sleep(1000);
    }
  };
  return { answeredMs, status: r.status, finished };
};

const TRIGGERS: Record<string, Trigger> = { deploy: deployTrigger, rollout: rolloutTrigger };
const TRIGGER = TRIGGERS[opts.trigger];
if (TRIGGER === undefined) throw new Error(`--trigger: deploy or rollout, not ${opts.trigger}`);

interface Figures {
  dialect: string;
  trigger: string;
  devices: number;
  enrollSeconds: number;
  connectSeconds: number;
  /** Server CPU from the fleet's start until all connected, per device (ms): enrollment's cost. */
  enrollServerCpuMsPerDevice: number;
  serverRssBaseMb: number;
  serverRssHeldMb: number;
  mbPer1000: number;
  simRssMb: number;
  idleCpuMsPerSecondPer1000: number;
  deployAnsweredMs: number;
  deployStatus: number;
  notifiedAllSeconds: number;
  committedAllSeconds: number;
  committedExact: number;
  /** Commits the devices saw accepted by the end (short of `devices` when --max-wait ran out). */
  committedByDevices: number;
  waitedSeconds: number;
  /** Rollouts: until the rollout showed `completed` (NaN for a deploy). */
  completedSeconds: number;
  /** CPU seconds the server and the simulator spent from the start until all committed (a rollout: completed). */
  deployServerCpuSeconds: number;
  deploySimCpuSeconds: number;
  /** The same per device, ms. */
  serverCpuMsPerDevice: number;
  simCpuMsPerDevice: number;
  simProcs: number;
  /** Load average (1 min) at the start and at the end of the assignment: the machine is shared. */
  loadAverage: [number, number];
  errors: Record<string, number>;
}

async function runOne(dialect: string, trigger: Trigger): Promise<Figures> {
  const work = await mkdtemp(join(tmpdir(), 'flt-bench-fleet-work-'));
  const server = await startServer(dialect);
  const pid = server.child.pid!;
  let fleet: Sims | null = null;
  const stateDir = await mkdtemp(join('/dev/shm', 'flt-bench-sim-'));
  try {
    const api = await adminApi(server.base);
    await pushRelease(server.base, work);
    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'bench',
      autoAccept: true,
    });
    await sleep(1000);
    const serverRssBaseMb = await rssMb(pid);
    const spec = {
      serverUrl: server.base,
      registrationKey: key.body.secret,
      devices: DEVICES,
      stateDir,
      tags: ['bench'],
      localAddresses: Array.from({ length: ADDRESSES }, (_, i) => `127.0.0.${i + 1}`),
      syncOnConnect: false,
      enrollConcurrency: Math.max(4, Math.round(32 / SIM_PROCS)),
      connectConcurrency: Math.max(16, Math.round(256 / SIM_PROCS)),
    };
    fleet = SIM_PROCS > 1 ? childSims(spec, SIM_PROCS) : inProcessSims(spec);
    const sims = fleet;
    const t0 = performance.now();
    const progress = setInterval(() => {
      const s = sims.summary();
      const errors = Object.keys(s.errors).length > 0 ? ` errors ${JSON.stringify(s.errors)}` : '';
      process.stderr.write(
        `  enrolled ${s.enrolled} connected ${s.connected} notified ${s.notified} committed ${s.committedReported}${errors}\n`,
      );
    }, 10_000);
    try {
      const enrollCpu0 = await cpuSeconds(pid);
      await sims.start();
      const enrollSeconds = (performance.now() - t0) / 1000;
      if (!(await sims.connected(300_000)))
        throw new Error(`not all connected: ${JSON.stringify(sims.summary())}`);
      const connectSeconds = (performance.now() - t0) / 1000;
      const enrollServerCpuMsPerDevice = (((await cpuSeconds(pid)) - enrollCpu0) * 1000) / DEVICES;
      await sleep(3000);
      const serverRssHeldMb = await rssMb(pid);
      const cpu0 = await cpuSeconds(pid);
      await sleep(IDLE_SECONDS * 1000);
      const idleCpu = (await cpuSeconds(pid)) - cpu0;
      const simRssMb = await sims.rssMb();

      const loadBefore = loadavg()[0]!;
      const serverCpuBefore = await cpuSeconds(pid);
      const simCpuBefore = await sims.cpuSeconds();
      const d0 = performance.now();
      const d0Wall = Date.now();
      const answered = await trigger(api);
      while (sims.summary().notified < DEVICES) {
        if (performance.now() - d0 > 300_000)
          throw new Error(`notified ${sims.summary().notified} of ${DEVICES}`);
        await sleep(20);
      }
      const notifiedAllSeconds = (sims.lastNotifiedAt() - d0Wall) / 1000;
      // --notify-only: stop once every device was told (large fleets on a busy machine).
      const waitCommitted = opts['notify-only'] !== true;
      let timedOut = false;
      while (waitCommitted && sims.summary().committedReported < DEVICES) {
        if (performance.now() - d0 > MAX_WAIT_MS) {
          timedOut = true;
          break;
        }
        await sleep(50);
      }
      const committedAllSeconds = waitCommitted && !timedOut ? (performance.now() - d0) / 1000 : Number.NaN;
      const committedByDevices = sims.summary().committedReported;
      const waitedSeconds = (performance.now() - d0) / 1000;
      let completedSeconds = Number.NaN;
      if (waitCommitted && !timedOut && answered.finished) {
        await answered.finished();
        completedSeconds = (performance.now() - d0) / 1000;
      }
      const deployServerCpuSeconds = (await cpuSeconds(pid)) - serverCpuBefore;
      const deploySimCpuSeconds = (await sims.cpuSeconds()) - simCpuBefore;
      const status = await api.call<{ phases: Record<string, number> }>(
        'GET',
        '/api/v1/deployments/status?app=web&version=1.0.0',
      );
      return {
        dialect,
        trigger: opts.trigger,
        devices: DEVICES,
        enrollSeconds,
        connectSeconds,
        enrollServerCpuMsPerDevice,
        serverRssBaseMb,
        serverRssHeldMb,
        mbPer1000: ((serverRssHeldMb - serverRssBaseMb) / DEVICES) * 1000,
        simRssMb,
        idleCpuMsPerSecondPer1000: ((idleCpu * 1000) / IDLE_SECONDS / DEVICES) * 1000,
        deployAnsweredMs: answered.answeredMs,
        deployStatus: answered.status,
        notifiedAllSeconds,
        committedAllSeconds,
        committedExact: status.body.phases.committed ?? 0,
        committedByDevices,
        waitedSeconds,
        completedSeconds,
        deployServerCpuSeconds,
        deploySimCpuSeconds,
        serverCpuMsPerDevice: (deployServerCpuSeconds * 1000) / DEVICES,
        simCpuMsPerDevice: (deploySimCpuSeconds * 1000) / DEVICES,
        simProcs: SIM_PROCS,
        loadAverage: [loadBefore, loadavg()[0]!],
        errors: sims.summary().errors,
      };
    } finally {
      clearInterval(progress);
    }
  } finally {
    await fleet?.stop();
    await server.stop();
    await rm(work, { recursive: true, force: true });
    await rm(stateDir, { recursive: true, force: true });
  }
}

const results: Figures[] = [];
for (const dialect of DIALECTS) {
  process.stderr.write(`fleet bench: ${DEVICES} devices on ${dialect}, ${opts.trigger}\n`);
  const f = await runOne(dialect, TRIGGER);
  results.push(f);
  if (!opts.json) {
    console.log(`\n${dialect}, ${f.devices} devices, ${f.trigger}`);
    console.log(
      `  enroll ${f.enrollSeconds.toFixed(1)} s, all connected after ${f.connectSeconds.toFixed(1)} s (server CPU ${f.enrollServerCpuMsPerDevice.toFixed(1)} ms per device)`,
    );
    console.log(
      `  server RSS ${f.serverRssBaseMb.toFixed(0)} MB → ${f.serverRssHeldMb.toFixed(0)} MB held: ` +
        `${f.mbPer1000.toFixed(1)} MB per 1,000 connections (simulator RSS ${f.simRssMb.toFixed(0)} MB)`,
    );
    console.log(
      `  idle server CPU: ${f.idleCpuMsPerSecondPer1000.toFixed(2)} ms per second per 1,000 devices`,
    );
    console.log(`  ${f.trigger} answered in ${f.deployAnsweredMs.toFixed(0)} ms (HTTP ${f.deployStatus})`);
    console.log(`  all ${f.devices} notified after ${f.notifiedAllSeconds.toFixed(2)} s`);
    if (Number.isNaN(f.committedAllSeconds))
      console.log(
        `  committed ${f.committedByDevices} of ${f.devices} after ${f.waitedSeconds.toFixed(1)} s ` +
          `(${(f.committedByDevices / f.waitedSeconds).toFixed(1)} a second; deploy status: ${f.committedExact} committed)`,
      );
    else
      console.log(
        `  all committed after ${f.committedAllSeconds.toFixed(1)} s (deploy status: ${f.committedExact} committed)`,
      );
    if (!Number.isNaN(f.completedSeconds))
      console.log(`  rollout completed after ${f.completedSeconds.toFixed(1)} s`);
    console.log(
      `  CPU meanwhile: server ${f.deployServerCpuSeconds.toFixed(1)} s, simulator ${f.deploySimCpuSeconds.toFixed(1)} s ` +
        `(${f.serverCpuMsPerDevice.toFixed(1)} / ${f.simCpuMsPerDevice.toFixed(1)} ms per device; ` +
        `${f.simProcs} simulator process${f.simProcs > 1 ? 'es' : ''}; load average ${f.loadAverage[0].toFixed(1)} → ${f.loadAverage[1].toFixed(1)})`,
    );
    if (Object.keys(f.errors).length > 0)
      console.log(`  errors seen by devices: ${JSON.stringify(f.errors)}`);
  }
}
if (opts.json) console.log(JSON.stringify(results, null, 2));
