/** Device gauges and counters on the server's Prometheus registry. */
import { Counter, Gauge } from 'prom-client';
import type { ServerContext } from '../context.js';
import type { Presence } from './presence.js';
import { compileFilter } from './rsql/translate.js';

const STATUSES = ['pending', 'accepted', 'rejected', 'revoked'] as const;

export interface DeviceMetrics {
  enrollments: Counter<'result'>;
  polls: Counter<'result'>;
}

export function createDeviceMetrics(ctx: ServerContext, presence: Presence): DeviceMetrics {
  const registers = [ctx.metrics];
  new Gauge({
    name: 'flotilla_devices',
    help: 'Devices by status',
    labelNames: ['status'] as const,
    registers,
    async collect() {
      const rows = await ctx.db
        .selectFrom('devices')
        .select((eb) => ['status', eb.fn.countAll<number | string>().as('n')])
        .groupBy('status')
        .execute();
      for (const status of STATUSES)
        this.set({ status }, Number(rows.find((r) => r.status === status)?.n ?? 0));
    },
  });
  new Gauge({
    name: 'flotilla_devices_online',
    help: 'Devices with an open WebSocket here or seen within offlineAfterMs',
    registers,
    async collect() {
      const online = compileFilter('online==true', {
        dialect: ctx.dialect,
        now: ctx.clock.now(),
        offlineAfterMs: ctx.config.offlineAfterMs,
        onlineIds: presence.onlineIds(),
      });
      const row = await ctx.db
        .selectFrom('devices')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where(online)
        .executeTakeFirstOrThrow();
      this.set(Number(row.n));
    },
  });
  new Gauge({
    name: 'flotilla_device_websockets',
    help: 'Open device WebSocket connections on this server',
    registers,
    collect() {
      this.set(presence.connectedCount);
    },
  });
  return {
    enrollments: new Counter({
      name: 'flotilla_device_enrollments_total',
      help: 'Enrollment attempts by result (enrolled, reenrolled, refused)',
      labelNames: ['result'] as const,
      registers,
    }),
    polls: new Counter({
      name: 'flotilla_device_state_polls_total',
      help: 'Authenticated state polls by result (modified, not_modified)',
      labelNames: ['result'] as const,
      registers,
    }),
  };
}
