/**
 * The agent rides out a server restart and reconnects by itself; the server rides out agents that
 * vanish (SIGKILL) and keeps serving; a revoked device is cut off at once and its agent stops.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, Cluster, waitFor } from './harness.js';

interface DeviceView {
  id: string;
  status: string;
  online: boolean;
  enrolledAt: string;
  facts: Record<string, unknown>;
}
interface AuditList {
  items: { action: string; subjectId: string; at: string }[];
}

void describe('resilience of server and agents', () => {
  const cluster = new Cluster();
  let url: string;
  let port: number;
  let dataDir: string;
  let api: Api;
  let secret: string;

  before(async () => {
    const s = await cluster.startServer();
    ({ url, port, dataDir } = s);
    api = await Api.login(url);
    const k = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'resilience',
      autoAccept: true,
    });
    assert.equal(k.status, 201);
    secret = k.body.secret;
  });
  after(() => cluster.cleanup());

  async function deviceNamed(name: string): Promise<DeviceView | null> {
    const r = await api.call<{ items: DeviceView[] }>(
      'GET',
      `/api/v1/devices?filter=${encodeURIComponent(`name==${name}`)}`,
    );
    return r.body.items[0] ?? null;
  }

  async function onlineEventsSince(id: string, since: string): Promise<number> {
    const r = await api.call<AuditList>(
      'GET',
      `/api/v1/audit?action=device.online&subjectId=${id}&since=${encodeURIComponent(since)}`,
    );
    return r.body.items.length;
  }

  void test('an agent reconnects by itself after the server restarts', async () => {
    await cluster.startAgent({ server: url, registrationKey: secret, facts: { name: 'survivor' } });
    const dev = await waitFor(
      'survivor online',
      async () => {
        const d = await deviceNamed('survivor');
        return d?.online ? d : null;
      },
      60_000,
    );
    const serverProc = cluster.procs.find((p) => p.name === 'server')!;
    const code = await cluster.stop(serverProc);
    // On failure, the server's last log lines say why (a hang into the CLI's forced exit, or an error).
    assert.equal(
      code,
      0,
      `server exits cleanly on SIGTERM; its output ends:\n${serverProc.output().slice(-4000)}`,
    );
    const restartedAt = new Date().toISOString();
    const s2 = await cluster.startServer({ dataDir, port });
    api = await Api.login(s2.url);
    await waitFor(
      'survivor reconnects over WebSocket',
      async () => (await onlineEventsSince(dev.id, restartedAt)) > 0,
      90_000,
    );
    const again = await deviceNamed('survivor');
    assert.equal(again?.online, true);
  });

  void test('the server rides out agents that vanish, and marks them offline', async () => {
    const a = await cluster.startAgent({ server: url, registrationKey: secret, facts: { name: 'vanisher' } });
    const dev = await waitFor(
      'vanisher online',
      async () => {
        const d = await deviceNamed('vanisher');
        return d?.online ? d : null;
      },
      60_000,
    );
    await waitFor(
      'vanisher connected over WebSocket',
      async () => (await onlineEventsSince(dev.id, dev.enrolledAt)) > 0,
      30_000,
    );
    await cluster.stop(a.proc, 'SIGKILL');
    await waitFor(
      'vanisher recorded offline',
      async () => {
        const r = await api.call<AuditList>('GET', `/api/v1/audit?action=device.offline&subjectId=${dev.id}`);
        return r.body.items.length > 0;
      },
      60_000,
    );
    await waitFor('vanisher shown offline', async () => !(await deviceNamed('vanisher'))?.online, 30_000);
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 200);
    const list = await api.call<{ items: DeviceView[] }>('GET', '/api/v1/devices');
    assert.equal(list.status, 200);
  });

  void test('a revoked device is cut off at once and its agent stops contacting the server', async () => {
    const a = await cluster.startAgent({ server: url, registrationKey: secret, facts: { name: 'revokee' } });
    const dev = await waitFor(
      'revokee online',
      async () => {
        const d = await deviceNamed('revokee');
        return d?.online ? d : null;
      },
      60_000,
    );
    await waitFor(
      'revokee connected over WebSocket',
      async () => (await onlineEventsSince(dev.id, dev.enrolledAt)) > 0,
      30_000,
    );
    const r = await api.call('POST', `/api/v1/devices/${dev.id}/revoke`, { reason: 'e2e' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // Its WebSocket is closed at once (device.offline), and with no more polls it shows offline.
    await waitFor(
      'revokee disconnected',
      async () => {
        const r = await api.call<AuditList>('GET', `/api/v1/audit?action=device.offline&subjectId=${dev.id}`);
        return r.body.items.length > 0;
      },
      10_000,
    );
    await waitFor('revokee offline', async () => !(await deviceNamed('revokee'))?.online, 30_000);
    // The agent learns it was revoked (close code) and stops contacting the server: it either exits
    // or stays idle; in both cases it must not re-enroll or reconnect.
    const before = (await api.call<AuditList>('GET', `/api/v1/audit?subjectId=${dev.id}&limit=1000`)).body
      .items.length;
    await new Promise((res) => setTimeout(res, 5000));
    const afterCount = (await api.call<AuditList>('GET', `/api/v1/audit?subjectId=${dev.id}&limit=1000`)).body
      .items.length;
    assert.equal(afterCount, before, 'no new activity from the revoked device');
    assert.equal((await deviceNamed('revokee'))?.status, 'revoked');
    assert.ok(a.proc.output().length > 0);
  });
});
