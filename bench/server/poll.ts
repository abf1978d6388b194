/**
 * Enrollment rate and authenticated state polls per second against a real `flotilla server`
 * process on SQLite, pinned to one core (`taskset -c 0`) while this load generator runs beside it.
 * Polls use keep-alive and If-None-Match, so an unchanged state is answered 304.
 *
 *   npm run build && node bench/dist/server/poll.js [--devices 500] [--seconds 15] [--connections 64]
 */
import autocannon from 'autocannon';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { DeviceRoutes } from '@flotilla/protocol';
import { enrollmentMessage, generateEd25519, signMessage, tokenChallengeMessage } from '@flotilla/node-kit';

const { values: opts } = parseArgs({
  options: {
    devices: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '15' },
    connections: { type: 'string', default: '64' },
    concurrency: { type: 'string', default: '16' },
  },
});
const DEVICES = Number(opts.devices);
const SECONDS = Number(opts.seconds);
const CONNECTIONS = Number(opts.connections);
const ENROLL_CONCURRENCY = Number(opts.concurrency);

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const cliBin = join(root, 'packages', 'cli', 'dist', 'src', 'bin.js');
const PASSWORD = 'bench-admin-password';

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** utime + stime of a process in seconds (Linux /proc; USER_HZ is 100 on Linux). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function json<T>(url: string, init: RequestInit & { body?: string } = {}): Promise<T> {
  const r = await fetch(url, {
    ...init,
    headers: { 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${r.status} ${text}`);
  return JSON.parse(text) as T;
}

async function adminToken(base: string): Promise<string> {
  const r = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: PASSWORD }),
  });
  const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const t = await json<{ secret: string }>(`${base}/api/v1/tokens`, {
    method: 'POST',
    headers: { cookie },
    body: JSON.stringify({ name: 'bench' }),
  });
  return t.secret;
}

interface Enrolled {
  token: string;
  etag: string;
}

async function enrollOne(base: string, regkey: string): Promise<Enrolled> {
  const kp = generateEd25519();
  const { nonce } = await json<{ nonce: string }>(`${base}${DeviceRoutes.enrollNonce}`, {
    method: 'POST',
    body: '{}',
  });
  const signature = signMessage(kp.privateKeyPem, enrollmentMessage(nonce, kp.publicKey, regkey));
  const { deviceId } = await json<{ deviceId: string }>(`${base}${DeviceRoutes.enroll}`, {
    method: 'POST',
    body: JSON.stringify({ registrationKey: regkey, publicKey: kp.publicKey, nonce, signature }),
  });
  const { challenge } = await json<{ challenge: string }>(`${base}${DeviceRoutes.tokenChallenge}`, {
    method: 'POST',
    body: JSON.stringify({ deviceId }),
  });
  const { token } = await json<{ token: string }>(`${base}${DeviceRoutes.token}`, {
    method: 'POST',
    body: JSON.stringify({
      deviceId,
      challenge,
      signature: signMessage(kp.privateKeyPem, tokenChallengeMessage(challenge, deviceId)),
    }),
  });
  const st = await fetch(`${base}${DeviceRoutes.state}`, { headers: { authorization: `Bearer ${token}` } });
  await st.arrayBuffer();
  return { token, etag: st.headers.get('etag') ?? '' };
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'flt-bench-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const pinned = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  const cmd = pinned ? 'taskset' : process.execPath;
  const args = [
    ...(pinned ? ['-c', '0', process.execPath] : []),
    cliBin,
    'server',
    '--data-dir',
    dataDir,
    '--listen',
    `127.0.0.1:${port}`,
    '--log-level',
    'warn',
    '--log-format',
    'json',
  ];
  const server = spawn(cmd, args, {
    env: {
      ...process.env,
      FLOTILLA_ADMIN_PASSWORD: PASSWORD,
      // Every simulated device comes from 127.0.0.1: lift the per-address limits (docs/security.md
      // "Limits in force") above what this run needs, so that they never shape the figures.
      FLOTILLA_ENROLL_NONCES_PER_ADDRESS: String(Math.max(1_000, 2 * DEVICES)),
      FLOTILLA_TOKEN_CHALLENGES_PER_ADDRESS_PER_MINUTE: String(Math.max(1_000, 2 * DEVICES)),
      FLOTILLA_MAX_CONNECTIONS_PER_ADDRESS: String(Math.max(1_000, 2 * CONNECTIONS)),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/readyz`)).ok) break;
      } catch {
        /* not yet listening */
      }
      if (i > 200) throw new Error('server did not become ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    const admin = await adminToken(base);
    const { secret } = await json<{ secret: string }>(`${base}/api/v1/registration-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
      body: JSON.stringify({ name: 'bench', autoAccept: true }),
    });

    // Enrollment: nonce + enroll + challenge + token + first state, with bounded concurrency.
    const devices: Enrolled[] = [];
    const t0 = performance.now();
    const enrollCpuBefore = await cpuSeconds(server.pid!);
    let next = 0;
    await Promise.all(
      Array.from({ length: ENROLL_CONCURRENCY }, async () => {
        while (next < DEVICES) {
          next++;
          devices.push(await enrollOne(base, secret));
        }
      }),
    );
    const enrollSec = (performance.now() - t0) / 1000;
    const enrollCpu = (await cpuSeconds(server.pid!)) - enrollCpuBefore;

    // Polls: each request picks the next device's token and its current ETag. The server's CPU
    // time over the run (from /proc) gives its capacity per core even when the load generator
    // shares the machine: polls per CPU-second.
    const cpuBefore = await cpuSeconds(server.pid!);
    let i = 0;
    const result = await autocannon({
      url: `${base}${DeviceRoutes.state}`,
      connections: CONNECTIONS,
      duration: SECONDS,
      requests: [
        {
          method: 'GET',
          setupRequest: (req) => {
            const d = devices[i++ % devices.length]!;
            return {
              ...req,
              headers: { ...req.headers, authorization: `Bearer ${d.token}`, 'if-none-match': d.etag },
            };
          },
        },
      ],
    });
    const cpuUsed = (await cpuSeconds(server.pid!)) - cpuBefore;
    const figures = {
      date: new Date().toISOString().slice(0, 10),
      machine: `${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores), node ${process.version}`,
      serverPinnedToOneCore: pinned,
      devices: DEVICES,
      enrollmentsPerSec: Math.round(DEVICES / enrollSec),
      enrollmentsPerServerCpuSecond: Math.round(DEVICES / enrollCpu),
      pollsPerSec: Math.round(result.requests.average),
      serverCpuSeconds: Number(cpuUsed.toFixed(2)),
      pollsPerServerCpuSecond: Math.round(result.requests.total / cpuUsed),
      pollLatencyMs: { p50: result.latency.p50, p99: result.latency.p99 },
      // autocannon counts every status outside 2xx as non2xx: here those are the 304 answers.
      notModified: result.non2xx,
      ok200: result['2xx'],
      errors: result.errors,
      timeouts: result.timeouts,
    };
    console.log(JSON.stringify(figures, null, 2));
    console.log(
      `\nenrollment: ${figures.enrollmentsPerSec}/s (${DEVICES} devices, concurrency ${ENROLL_CONCURRENCY}); ` +
        `${figures.enrollmentsPerServerCpuSecond} per server CPU-second (nonce, enroll, challenge, token, first state)\n` +
        `state polls per server CPU-second: ${figures.pollsPerServerCpuSecond}\n` +
        `state polls: ${figures.pollsPerSec}/s on one core (p50 ${figures.pollLatencyMs.p50} ms, p99 ${figures.pollLatencyMs.p99} ms, ${CONNECTIONS} keep-alive connections, 304 answers)`,
    );
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
