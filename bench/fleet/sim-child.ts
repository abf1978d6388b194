/**
 * One simulator process of the fleet bench (`--sim-procs N`, sims.ts): receives its share of the
 * fleet over IPC, runs it, and sends its counts every 250 ms until told to stop.
 */
import { Fleet } from '@flotilla/sim';
import type { ChildMessage, SimSpec } from './sims.js';

const send = (m: ChildMessage) => process.send?.(m);

process.once('message', (m: { type: 'spec'; spec: SimSpec }) => {
  let last = 0;
  const fleet = new Fleet({
    ...m.spec,
    onNotified: () => {
      last = Date.now();
    },
  });
  const report = setInterval(
    () => send({ type: 'stats', summary: fleet.summary(), lastNotifiedAt: last }),
    250,
  );
  process.on('message', (msg: { type: string }) => {
    if (msg.type !== 'stop') return;
    clearInterval(report);
    void fleet.stop().then(() => process.exit(0));
  });
  process.once('disconnect', () => {
    void fleet.stop().then(() => process.exit(0));
  });
  fleet.start().then(
    () => send({ type: 'started' }),
    (e: unknown) => send({ type: 'failed', message: e instanceof Error ? e.message : String(e) }),
  );
});
