/**
 * RSQL → SQL against real SQLite and PostgreSQL: each filter must select exactly the right devices,
 * and bad filters or sorts must be refused with a stable code.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FlotillaError } from '@flotilla/protocol';
import type { Facts } from '@flotilla/protocol';
import { listDevices } from '../../src/devices/manage/list.js';
import type { ListContext } from '../../src/devices/manage/list.js';
import { factsToRows } from '../../src/devices/facts.js';
import { testDialects } from '../helpers/app.js';
import { openTestDatabase } from './databases.js';
import type { TestDatabase } from './databases.js';

const NOW = new Date('2026-11-23T12:00:00.000Z');
const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();

interface Seed {
  id: string;
  status: 'pending' | 'accepted' | 'rejected' | 'revoked';
  hostname: string | null;
  tags: string[];
  facts: Facts;
  lastSeenAt: string | null;
  enrolledAt: string;
}

const SEEDS: Seed[] = [
  {
    id: 'd1',
    status: 'accepted',
    hostname: 'web-1',
    tags: ['canary', 'eu'],
    facts: {
      arch: 'arm64',
      'os.distro': 'debian-12',
      cpus: 4,
      rack: '1',
      mem: 2048.5,
      gpu: false,
      labels: ['a', 'b'],
      promo: '50%_off',
    },
    lastSeenAt: ago(10_000),
    enrolledAt: '2026-01-01T00:00:00.000Z',
  },
  {
    id: 'd2',
    status: 'accepted',
    hostname: 'web-2',
    tags: ['eu'],
    facts: { arch: 'amd64', 'os.distro': 'debian-11', cpus: 16, rack: '2', labels: [], promo: '50x off' },
    lastSeenAt: ago(3_600_000),
    enrolledAt: '2026-02-01T00:00:00.000Z',
  },
  {
    id: 'd3',
    status: 'pending',
    hostname: 'DB_1',
    tags: [],
    facts: { arch: 'amd64', 'os.distro': 'Debian-12', cpus: 8, rack: '10', gpu: true },
    lastSeenAt: null,
    enrolledAt: '2026-03-01T00:00:00.000Z',
  },
  {
    id: 'd4',
    status: 'rejected',
    hostname: null,
    tags: ['canary', 'us-east'],
    facts: { arch: 'riscv64', weird: 'a[b]?c', labels: ['b', 'c'] },
    lastSeenAt: null,
    enrolledAt: '2026-04-01T00:00:00.000Z',
  },
];

/** `x1==1;(x2==1,(x3==1;(…)))`: AND and OR alternate, so every level nests. */
function alternating(levels: number): string {
  return levels === 0 ? 'id==*' : `x${levels}==1${levels % 2 ? ';' : ','}(${alternating(levels - 1)})`;
}

for (const dialect of testDialects()) {
  void describe(`RSQL device filters (${dialect})`, () => {
    let tdb: TestDatabase;
    /** d4 has an open WebSocket on this server (never flushed to the database). */
    const presence = {
      onlineIds: () => ['d4'],
      pendingLastSeen: () => undefined,
      isConnected: (id: string) => id === 'd4',
    };
    const ctx = (): ListContext => ({ db: tdb.db, dialect, presence, now: NOW, offlineAfterMs: 90_000 });

    before(async () => {
      tdb = await openTestDatabase(dialect);
      for (const s of SEEDS) {
        await tdb.db
          .insertInto('devices')
          .values({
            id: s.id,
            public_key: `pk-${s.id}`,
            status: s.status,
            hostname: s.hostname,
            registration_key_id: null,
            enrolled_at: s.enrolledAt,
            status_changed_at: s.enrolledAt,
            status_reason: null,
            last_seen_at: s.lastSeenAt,
            agent_version: null,
            state_version: 0,
          })
          .execute();
        for (const tag of s.tags)
          await tdb.db.insertInto('device_tags').values({ device_id: s.id, tag }).execute();
        const rows = factsToRows(s.id, s.facts);
        if (rows.length > 0) await tdb.db.insertInto('device_facts').values(rows).execute();
      }
    });
    after(() => tdb.dispose());

    async function ids(filter: string, sort?: string): Promise<string[]> {
      const page = await listDevices(ctx(), { filter, ...(sort ? { sort } : {}), limit: 100 });
      assert.equal(page.total, page.items.length);
      return page.items.map((d) => d.id);
    }
    const sorted = async (filter: string) => (await ids(filter)).sort();

    const cases: [string, string[]][] = [
      ['id==d1', ['d1']],
      ['status==accepted', ['d1', 'd2']],
      ['status!=accepted', ['d3', 'd4']],
      ['status=in=(pending,rejected)', ['d3', 'd4']],
      ['status=out=(pending,rejected)', ['d1', 'd2']],
      ['hostname==web-*', ['d1', 'd2']],
      ['hostname==DB_*', ['d3']],
      // Wildcards are case-sensitive on both dialects, and _ % [ ? match only themselves.
      ['hostname==db*', []],
      ['hostname==web_1', []],
      ['hostname!=web-1', ['d2', 'd3', 'd4']],
      ['hostname=gt=web-1', ['d2']],
      ['tags==canary', ['d1', 'd4']],
      ['tag==eu', ['d1', 'd2']],
      ['tags!=canary', ['d2', 'd3']],
      ['tags=in=(eu,us-east)', ['d1', 'd2', 'd4']],
      ['tags=out=(canary,eu)', ['d3']],
      ['tags==us-*', ['d4']],
      ['arch==arm64', ['d1']],
      ['facts.arch==amd64', ['d2', 'd3']],
      ['arch=in=(arm64,riscv64)', ['d1', 'd4']],
      ['arch=out=(arm64,riscv64)', ['d2', 'd3']],
      ['arch!=amd64', ['d1', 'd4']],
      ['os.distro==debian*', ['d1', 'd2']],
      ['os.distro==*-12', ['d1', 'd3']],
      ['promo==50%_off', ['d1']],
      ['promo==50*off', ['d1', 'd2']],
      ['weird==a[b]?c', ['d4']],
      ['weird==a[b]*', ['d4']],
      // Numbers compare numerically, also when the agent sent them as strings ("10" > "2").
      ['cpus=gt=4', ['d2', 'd3']],
      ['cpus=ge=4', ['d1', 'd2', 'd3']],
      ['cpus=lt=8', ['d1']],
      ['cpus=le=8', ['d1', 'd3']],
      ['cpus==16', ['d2']],
      ['cpus==16.0', ['d2']],
      ['cpus>4', ['d2', 'd3']],
      ['rack=gt=2', ['d3']],
      ['rack=gt=1', ['d2', 'd3']],
      ['mem=ge=2048.5', ['d1']],
      ['gpu==true', ['d3']],
      ['gpu==false', ['d1']],
      ['labels==b', ['d1', 'd4']],
      ['labels=in=(c)', ['d4']],
      ['labels!=a', ['d2', 'd3', 'd4']],
      ['labels==*', ['d1', 'd4']],
      ['weird!=*', ['d1', 'd2', 'd3']],
      ['online==true', ['d1', 'd4']],
      ['online==false', ['d2', 'd3']],
      ['online!=true', ['d2', 'd3']],
      ['lastSeenAt=gt=-1m', ['d1']],
      ['lastSeenAt=lt=-1m', ['d2']],
      ['enrolledAt=ge=2026-02-01', ['d2', 'd3', 'd4']],
      ['enrolledAt=lt=2026-02-01T00:00:00Z', ['d1']],
      ['enrolledAt=lt=2026-02-01T01:00:00+02:00', ['d1']],
      ['tags==canary;arch==arm64', ['d1']],
      ['tags==canary,arch==amd64', ['d1', 'd2', 'd3', 'd4']],
      ['tags==canary and arch==arm64', ['d1']],
      ['(tags==canary,status==pending);arch=out=(riscv64)', ['d1', 'd3']],
      ['tags==eu;(cpus=gt=8,(arch==arm64;gpu==false))', ['d1', 'd2']],
      ['((status==accepted;tags!=canary),(status==rejected;online==true));id!=d4', ['d2']],
      ['nothing==here', []],
      ['nothing!=here', ['d1', 'd2', 'd3', 'd4']],
      ['arch=="arm64"', ['d1']],
      ['((((arch==arm64))))', ['d1']],
      [alternating(12), []],
    ];
    for (const [filter, expected] of cases) {
      void test(`${filter} → [${expected.join(', ')}]`, async () => {
        assert.deepEqual(await sorted(filter), expected);
      });
    }

    void test('sort over whitelisted fields, nulls last, id breaks ties', async () => {
      assert.deepEqual(await ids('id==*', '-enrolledAt'), ['d4', 'd3', 'd2', 'd1']);
      assert.deepEqual(await ids('id==*', 'hostname'), ['d3', 'd1', 'd2', 'd4']);
      assert.deepEqual(await ids('id==*', '-lastSeenAt,id'), ['d1', 'd2', 'd3', 'd4']);
      assert.deepEqual(await ids('id==*', 'status,-id'), ['d2', 'd1', 'd3', 'd4']);
    });

    void test('pages carry the total, facts and tags', async () => {
      const page = await listDevices(ctx(), { filter: 'id==*', sort: 'id', limit: 2, offset: 1 });
      assert.equal(page.total, 4);
      assert.deepEqual(
        page.items.map((d) => d.id),
        ['d2', 'd3'],
      );
      const d2 = page.items[0]!;
      assert.deepEqual(d2.facts, SEEDS[1]!.facts);
      assert.deepEqual(d2.tags, ['eu']);
      assert.equal(d2.online, false);
      const all = await listDevices(ctx(), { sort: 'id' });
      assert.deepEqual(all.items[0]!.facts, SEEDS[0]!.facts);
      assert.equal(all.items[3]!.online, true);
    });

    const invalid: [string, string][] = [
      ['arch==', 'FLT_FILTER_INVALID'],
      ['(arch==arm64', 'FLT_FILTER_INVALID'],
      ['arch==arm64;', 'FLT_FILTER_INVALID'],
      ['role==(', 'FLT_FILTER_INVALID'],
      ['arch=like=arm', 'FLT_FILTER_INVALID'],
      ['status==lost', 'FLT_FILTER_INVALID'],
      ['status=gt=accepted', 'FLT_FILTER_INVALID'],
      ['online==maybe', 'FLT_FILTER_INVALID'],
      ['online=in=(true)', 'FLT_FILTER_INVALID'],
      ['tags=gt=a', 'FLT_FILTER_INVALID'],
      ['enrolledAt=gt=yesterday', 'FLT_FILTER_INVALID'],
      ['enrolledAt=gt=2026-02-01T00:00:00', 'FLT_FILTER_INVALID'],
      ['lastSeenAt=gt=-999999999w', 'FLT_FILTER_INVALID'],
      ['enrolledAt=gt=2026-13-45', 'FLT_FILTER_INVALID'],
      ['-bad==x', 'FLT_FILTER_INVALID'],
      ['facts.==x', 'FLT_FILTER_INVALID'],
      ['arch==(a,b)', 'FLT_FILTER_INVALID'],
      [Array.from({ length: 101 }, (_, i) => `a${i}==x`).join(';'), 'FLT_FILTER_INVALID'],
      [alternating(20), 'FLT_FILTER_INVALID'],
    ];
    for (const [filter, code] of invalid) {
      void test(`refuses ${filter.length > 40 ? filter.slice(0, 40) + '…' : filter}`, async () => {
        await assert.rejects(
          listDevices(ctx(), { filter }),
          (e: unknown) => e instanceof FlotillaError && e.code === code,
        );
      });
    }

    void test('a syntax error reports its position', async () => {
      await assert.rejects(listDevices(ctx(), { filter: 'arch==arm64;;x==y' }), (e: unknown) => {
        assert.ok(e instanceof FlotillaError);
        assert.equal(e.code, 'FLT_FILTER_INVALID');
        assert.equal((e.details as { position?: number }).position, 13);
        return true;
      });
    });

    for (const sort of ['publicKey', 'facts.arch', '-', 'id,id', 'hostname;drop']) {
      void test(`refuses sort ${sort}`, async () => {
        await assert.rejects(
          listDevices(ctx(), { sort }),
          (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_SORT_INVALID',
        );
      });
    }
  });
}
