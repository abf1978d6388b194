/**
 * The event stream's throughput (docs/events.md): a burst of domain events is emitted in one server
 * (in-process `buildApp`, real HTTP), written to the event log and delivered to N SSE subscribers.
 * Prints events/s written to the log, the time until every subscriber has every event, and the
 * heap before and after.
 *
 *   npx tsc -b bench && node bench/dist/events/stream.js [--events 20000] [--subscribers 50] [--database URL]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { buildApp, resolveServerConfig } from '@flotilla/server';

const { values: opts } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    subscribers: { type: 'string', default: '50' },
    database: { type: 'string' },
  },
});
const EVENTS = Number(opts.events);
const SUBSCRIBERS = Number(opts.subscribers);

const dataDir = await mkdtemp(join(tmpdir(), 'flt-bench-events-'));
const config = resolveServerConfig({
  env: { FLOTILLA_ADMIN_PASSWORD: 'bench-admin-password' },
  flags: {
    dataDir,
    listen: '127.0.0.1:0',
    logLevel: 'warn',
    ...(opts.database ? { database: opts.database } : {}),
  },
});
const built = await buildApp({ config, logger: pino({ level: 'warn' }) });
const { app, ctx, events, eventLog } = built;
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
const login = await fetch(`${url}/api/v1/auth/login`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ username: config.adminUsername, password: 'bench-admin-password' }),
});
const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';

const aborts: AbortController[] = [];
const done: Promise<number>[] = [];
let opened = 0;
for (let i = 0; i < SUBSCRIBERS; i++) {
  const abort = new AbortController();
  aborts.push(abort);
  const res = await fetch(`${url}/api/v1/events?type=device.*`, {
    headers: { cookie },
    signal: abort.signal,
  });
  opened += 1;
  done.push(
    (async () => {
      let count = 0;
      let tail = '';
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const text = tail + decoder.decode(chunk, { stream: true });
        const parts = text.split('\n\n');
        tail = parts.pop() ?? '';
        for (const part of parts) if (part.startsWith('id: ')) count += 1;
        if (count >= EVENTS) return performance.now();
      }
      return performance.now();
    })(),
  );
}
await new Promise((r) => setTimeout(r, 500));
const heapBefore = process.memoryUsage().heapUsed;
const started = performance.now();
for (let i = 0; i < EVENTS; i++) {
  events.emit({
    type: 'device.assigned',
    deviceId: `dev_${i % 1000}`,
    app: 'web',
    targetPath: `web/1.0.${i}/${'a'.repeat(64)}`,
    rollout: 'dep_bench',
    stateVersion: i,
  });
  if (i % 500 === 499) await new Promise((r) => setImmediate(r));
}
await eventLog.settle();
const logged = performance.now();
const dropped =
  (await ctx.metrics.getSingleMetric('flotilla_events_dropped_total')?.get())?.values[0]?.value ?? 0;
if (dropped > 0)
  console.error(`${dropped} events were dropped (the log's queue bound); not waiting for delivery`);
const finished = dropped > 0 ? Number.NaN : Math.max(...(await Promise.all(done)));
const heapAfter = process.memoryUsage().heapUsed;
console.log(
  JSON.stringify(
    {
      database: ctx.dialect,
      events: EVENTS,
      subscribers: opened,
      loggedPerSecond: Math.round(EVENTS / ((logged - started) / 1000)),
      allDeliveredSeconds: Number(((finished - started) / 1000).toFixed(2)),
      deliveredPerSecond: Math.round((EVENTS * opened) / ((finished - started) / 1000)),
      heapBeforeMiB: Math.round(heapBefore / 2 ** 20),
      heapAfterMiB: Math.round(heapAfter / 2 ** 20),
      dropped,
    },
    null,
    2,
  ),
);
for (const a of aborts) a.abort();
await app.close();
await rm(dataDir, { recursive: true, force: true });
