/**
 * `flotilla server` on PostgreSQL stops cleanly with many devices connected: closing their
 * connections audits every `device.offline` before the database closes, within Fastify's hook
 * timeout. The database is reached through a proxy that adds latency to each round trip, as a
 * loaded database server does (the fleet bench's 10,000 devices hit this without it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Fleet } from '@flotilla/sim';
import { testDatabase } from './gateway/helpers.js';
import { adminApiToken } from './helpers/server.js';

const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
const bin = fileURLToPath(new URL(`../src/bin.${ext}`, import.meta.url));
const PASSWORD = 'shutdown-test-admin-password';
const DEVICES = 200;
/** Added to every chunk sent to PostgreSQL once the devices are connected (ms). */
const LATENCY_MS = 40;

/** A TCP proxy to `target` that delays what clients send by `latencyMs` (in order). */
async function latencyProxy(target: URL): Promise<{ port: number; latencyMs: number; close(): void }> {
  const sockets = new Set<Socket>();
  const state = { latencyMs: 0 };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    let chain = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      const delay = state.latencyMs;
      chain = chain
        .then(() => (delay > 0 ? new Promise<void>((r) => setTimeout(r, delay)) : undefined))
        .then(() => {
          if (!upstream.destroyed) upstream.write(chunk);
        });
    });
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    get latencyMs() {
      return state.latencyMs;
    },
    set latencyMs(v: number) {
      state.latencyMs = v;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

void test(
  'a server on PostgreSQL with many devices connected stops cleanly and audits every disconnection',
  { skip: process.env.FLOTILLA_TEST_POSTGRES_URL === undefined && 'FLOTILLA_TEST_POSTGRES_URL not set' },
  async () => {
    const root = await mkdtemp(join(tmpdir(), 'flt-shutdown-pg-'));
    const database = await testDatabase('postgres', root);
    const dbUrl = new URL(database.url);
    const proxy = await latencyProxy(dbUrl);
    const proxied = new URL(database.url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    const child = spawn(
      process.execPath,
      [
        ...process.execArgv,
        bin,
        'server',
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        join(root, 'server'),
        '--database',
        proxied.toString(),
        '--log-level',
        'warn',
      ],
      {
        env: {
          ...process.env,
          FLOTILLA_ADMIN_PASSWORD: PASSWORD,
          FLOTILLA_MAX_CONNECTIONS_PER_ADDRESS: '0',
          FLOTILLA_ENROLL_NONCES_PER_ADDRESS: '0',
          FLOTILLA_TOKEN_CHALLENGES_PER_ADDRESS_PER_MINUTE: '0',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    let fleet: Fleet | null = null;
    try {
      const url = await new Promise<string | null>((resolve) => {
        child.stderr.on('data', (b: Buffer) => {
          stderr += b.toString();
          const m = /listening on (http:\/\/\S+)/.exec(stderr);
          if (m?.[1]) resolve(m[1]);
        });
        void exited.then(() => resolve(null));
      });
      assert.ok(url, stderr);
      const token = await adminApiToken(url, PASSWORD, 'shutdown-test');
      const key = await fetch(`${url}/api/v1/registration-keys`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ name: 'shutdown-test', autoAccept: true }),
      });
      const secret = ((await key.json()) as { secret: string }).secret;
      fleet = new Fleet({
        serverUrl: url,
        registrationKey: secret,
        devices: DEVICES,
        stateDir: join(root, 'sim'),
        syncOnConnect: false,
      });
      await fleet.start();
      assert.ok(await fleet.connected(120_000), JSON.stringify(fleet.summary()));

      proxy.latencyMs = LATENCY_MS;
      child.kill('SIGTERM');
      const code = await exited;
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stderr, /did not start in time|FLT_INTERNAL|exiting now/);

      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        const offline = await client.query<{ n: string }>(
          `select count(distinct subject_id) as n from audit_log where action = 'device.offline'`,
        );
        assert.equal(Number(offline.rows[0]?.n), DEVICES);
      } finally {
        await client.end();
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      await fleet?.stop();
      proxy.close();
      await database.drop();
      await rm(root, { recursive: true, force: true });
    }
  },
);
