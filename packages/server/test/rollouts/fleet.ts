/**
 * A fleet of devices driven over real HTTP (enrollment, tokens, update and status reports) and an
 * operator client for the rollout API, for the rollout tests.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { enrollmentMessage, generateEd25519, signMessage, tokenChallengeMessage } from '@flotilla/node-kit';
import { DEVICE_REPORTS_ROUTE, DeviceRoutes, OperatorRoutes, RolloutRoutes } from '@flotilla/protocol';
import type {
  AppProcessStatus,
  DeviceReport,
  Rollout,
  RolloutDevicePage,
  RolloutWhy,
  WaveCounts,
} from '@flotilla/protocol';
import type { Kysely } from 'kysely';
import type { Dialect } from '../../src/db/dialect.js';
import { readSnapshot } from '../../src/db/read-snapshot.js';
import type { Database } from '../../src/db/schema.js';
import { countDevices, emptyCounts } from '../../src/rollouts/counts.js';

export interface Answer<T> {
  status: number;
  body: T;
  code: string | undefined;
}

export async function http<T = unknown>(
  url: string,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
): Promise<Answer<T>> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(token !== undefined && { authorization: `Bearer ${token}` }),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const parsed = (text === '' ? null : JSON.parse(text)) as T & { error?: { code: string } };
  return { status: res.status, body: parsed, code: parsed?.error?.code };
}

export interface FleetDevice {
  id: string;
  token: string;
}

/** Enrolls `n` devices with an auto-accepting key carrying `tags`, each with a device token. */
export async function enrollFleet(
  url: string,
  adminToken: string,
  n: number,
  tags: string[],
): Promise<FleetDevice[]> {
  const key = await http<{ secret: string }>(url, 'POST', OperatorRoutes.registrationKeys, adminToken, {
    name: `fleet-${tags.join('-')}-${Math.random().toString(36).slice(2, 8)}`,
    tags,
    autoAccept: true,
  });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  const out: FleetDevice[] = [];
  for (let i = 0; i < n; i++) {
    const kp = generateEd25519();
    const nonce = await http<{ nonce: string }>(url, 'POST', DeviceRoutes.enrollNonce, undefined, {});
    const enrolled = await http<{ deviceId: string }>(url, 'POST', DeviceRoutes.enroll, undefined, {
      registrationKey: key.body.secret,
      publicKey: kp.publicKey,
      nonce: nonce.body.nonce,
      signature: signMessage(
        kp.privateKeyPem,
        enrollmentMessage(nonce.body.nonce, kp.publicKey, key.body.secret),
      ),
    });
    assert.ok(enrolled.status === 201 || enrolled.status === 200, JSON.stringify(enrolled.body));
    const deviceId = enrolled.body.deviceId;
    const challenge = await http<{ challenge: string }>(url, 'POST', DeviceRoutes.tokenChallenge, undefined, {
      deviceId,
    });
    const token = await http<{ token: string }>(url, 'POST', DeviceRoutes.token, undefined, {
      deviceId,
      challenge: challenge.body.challenge,
      signature: signMessage(kp.privateKeyPem, tokenChallengeMessage(challenge.body.challenge, deviceId)),
    });
    assert.equal(token.status, 200, JSON.stringify(token.body));
    out.push({ id: deviceId, token: token.body.token });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

export async function report(url: string, device: FleetDevice, body: DeviceReport): Promise<void> {
  const res = await http(url, 'POST', DEVICE_REPORTS_ROUTE, device.token, body);
  assert.equal(res.status, 204, JSON.stringify(res.body));
}

/** An agent's reports for an update that downloads, installs and commits. */
export async function install(
  url: string,
  device: FleetDevice,
  app: string,
  targetPath: string,
): Promise<void> {
  await report(url, device, { app, targetPath, phase: 'downloading', bytesDone: 50, bytesTotal: 100 });
  await report(url, device, { app, targetPath, phase: 'installing' });
  await report(url, device, { app, targetPath, phase: 'committed', running: targetPath });
}

/** An update that fails its health check and rolls back to `running`. */
export async function failInstall(
  url: string,
  device: FleetDevice,
  app: string,
  targetPath: string,
  running: string | null,
): Promise<void> {
  await report(url, device, { app, targetPath, phase: 'installing' });
  await report(url, device, {
    app,
    targetPath,
    phase: 'rolled-back',
    running,
    error: { code: 'FLT_HEALTH_CHECK_FAILED', message: 'health check failed: exit code 1' },
  });
}

export function processStatus(restarts: number, at: string): AppProcessStatus {
  return {
    state: restarts > 0 ? 'restarting' : 'running',
    since: at,
    restarts,
    lastExit: restarts > 0 ? { code: 1, signal: null, at } : null,
  };
}

export class RolloutClient {
  constructor(
    readonly url: string,
    readonly token: string,
  ) {}

  create(body: Record<string, unknown>): Promise<Answer<Rollout>> {
    return http<Rollout>(this.url, 'POST', RolloutRoutes.rollouts, this.token, body);
  }

  async get(id: string): Promise<Rollout> {
    const res = await http<Rollout>(this.url, 'GET', `${RolloutRoutes.rollouts}/${id}`, this.token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  action(id: string, action: string, body?: unknown): Promise<Answer<Rollout>> {
    return http<Rollout>(this.url, 'POST', `${RolloutRoutes.rollouts}/${id}/${action}`, this.token, body);
  }

  async devices(id: string, query = ''): Promise<RolloutDevicePage> {
    const res = await http<RolloutDevicePage>(
      this.url,
      'GET',
      `${RolloutRoutes.rollouts}/${id}/devices${query}`,
      this.token,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  async why(id: string, deviceId: string): Promise<RolloutWhy> {
    const res = await http<RolloutWhy>(
      this.url,
      'GET',
      `${RolloutRoutes.rollouts}/${id}/devices/${deviceId}/why`,
      this.token,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  /** Polls the rollout until `ok` holds (the engine ticks every second and on every report). */
  async until(id: string, what: string, ok: (r: Rollout) => boolean, timeoutMs = 30_000): Promise<Rollout> {
    const end = Date.now() + timeoutMs;
    let last: Rollout | undefined;
    while (Date.now() < end) {
      last = await this.get(id);
      if (ok(last)) return last;
      await sleep(100);
    }
    assert.fail(`rollout ${id}: ${what} did not happen; last seen ${JSON.stringify(last, null, 1)}`);
  }

  /** The ids of a wave's devices in one phase. */
  async phase(id: string, wave: number, phase: string): Promise<string[]> {
    return (await this.devices(id, `?wave=${wave}&phase=${phase}&limit=1000`)).items.map((d) => d.deviceId);
  }
}

/**
 * The counts kept in a rollout's row (`rollouts.counts`) equal those counted from its devices' rows:
 * per wave and phase, and the failed devices an operator resumed past.
 */
export async function assertCountsKept(
  database: Kysely<Database>,
  dialect: Dialect,
  rolloutId: string,
): Promise<void> {
  // One snapshot: an engine pass committing between the two reads would make them differ.
  const { row, counted } = await readSnapshot(database, dialect, async (db) => ({
    row: await db
      .selectFrom('rollouts')
      .select('counts')
      .where('id', '=', rolloutId)
      .executeTakeFirstOrThrow(),
    counted: await countDevices(db, rolloutId),
  }));
  assert.notEqual(row.counts, null, `${rolloutId}: counts kept in its row`);
  const kept = JSON.parse(row.counts!) as { waves: WaveCounts[]; acknowledged: number[] };
  const n = Math.max(kept.waves.length, counted.waves.length);
  for (let w = 0; w < n; w++) {
    assert.deepEqual(
      kept.waves[w] ?? emptyCounts(),
      counted.waves[w] ?? emptyCounts(),
      `${rolloutId}: wave ${w + 1} counts kept = counted`,
    );
    assert.equal(
      kept.acknowledged[w] ?? 0,
      counted.acknowledged[w] ?? 0,
      `${rolloutId}: wave ${w + 1} acknowledged`,
    );
  }
}
