/**
 * `GET /api/v1/fleet/overview` (docs/events.md "Fleet overview"): devices per status, how many
 * accepted devices are online, and per app which releases the devices run. Three aggregate
 * queries, whatever the fleet's size.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { EventRoutes, FleetOverview } from '@flotilla/protocol';
import type { ReleaseCount } from '@flotilla/protocol';
import { requireRole } from '../http/auth.js';
import type { DeviceRuntime } from '../devices/runtime.js';

export async function fleetOverview(rt: DeviceRuntime): Promise<FleetOverview> {
  const { ctx, presence } = rt;
  // Last-seen times collected in memory go to the database first, so "online" counts them.
  await presence.flush();
  const now = ctx.clock.now();
  const cutoff = new Date(now.getTime() - ctx.config.offlineAfterMs).toISOString();
  const statuses = await ctx.db
    .selectFrom('devices')
    .select(['status', (eb) => eb.fn.countAll().as('n')])
    .groupBy('status')
    .execute();
  const count = (s: string) => Number(statuses.find((r) => r.status === s)?.n ?? 0);
  const online = await ctx.db
    .selectFrom('devices')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('status', '=', 'accepted')
    .where('last_seen_at', '>=', cutoff)
    .executeTakeFirst();
  const accepted = count('accepted');
  const onlineCount = Math.min(accepted, Number(online?.n ?? 0));

  const releases = await ctx.db
    .selectFrom('device_apps as da')
    .innerJoin('devices as d', (j) => j.onRef('d.id', '=', 'da.device_id').on('d.status', '=', 'accepted'))
    .leftJoin('releases as r', 'r.target_path', 'da.current')
    .select(['da.app', 'da.current', 'r.version', (eb) => eb.fn.countAll().as('n')])
    .groupBy(['da.app', 'da.current', 'r.version'])
    .execute();
  const updating = await ctx.db
    .selectFrom('device_apps as da')
    .innerJoin('devices as d', (j) => j.onRef('d.id', '=', 'da.device_id').on('d.status', '=', 'accepted'))
    .select(['da.app', (eb) => eb.fn.countAll().as('n')])
    .where('da.desired', 'is not', null)
    .where((eb) => eb.or([eb('da.current', 'is', null), eb('da.current', '!=', eb.ref('da.desired'))]))
    .groupBy('da.app')
    .execute();

  const apps = new Map<string, { devices: number; releases: ReleaseCount[] }>();
  for (const row of releases) {
    const entry = apps.get(row.app) ?? { devices: 0, releases: [] };
    const n = Number(row.n);
    entry.devices += n;
    entry.releases.push({ version: row.version ?? null, targetPath: row.current, devices: n });
    apps.set(row.app, entry);
  }
  return {
    at: now.toISOString(),
    devices: {
      total: statuses.reduce((sum, r) => sum + Number(r.n), 0),
      pending: count('pending'),
      accepted,
      rejected: count('rejected'),
      revoked: count('revoked'),
      online: onlineCount,
      offline: accepted - onlineCount,
    },
    apps: [...apps.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([app, entry]) => ({
        app,
        devices: entry.devices,
        updating: Number(updating.find((u) => u.app === app)?.n ?? 0),
        releases: entry.releases.sort(
          (a, b) => b.devices - a.devices || String(a.version).localeCompare(String(b.version)),
        ),
      })),
  };
}

export function registerFleetRoutes(base: FastifyInstance, rt: DeviceRuntime): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    EventRoutes.fleetOverview,
    {
      schema: {
        summary: 'Fleet overview: devices per status, online and offline, release distribution per app',
        description: 'Roles: viewer.',
        tags: ['fleet'],
        response: { 200: FleetOverview },
      },
      preHandler: requireRole('viewer'),
    },
    () => fleetOverview(rt),
  );
}
