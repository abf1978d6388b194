import type { Command } from 'commander';
import { deviceAction } from '../../api/operator.js';
import type { DeviceAction } from '../../api/operator.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { resolveDeviceId } from './resolve-id.js';

const DESCRIPTIONS: Record<DeviceAction, string> = {
  accept: 'accept a pending (or rejected) device: it may now receive deployments',
  reject: 'reject a pending device: it stays known but gets nothing',
  revoke: 'revoke an accepted device for good: its key is no longer trusted',
};
const PAST: Record<DeviceAction, string> = { accept: 'accepted', reject: 'rejected', revoke: 'revoked' };

/** `devices accept|reject|revoke ID [--reason T]`: one implementation for the three transitions. */
export function registerDeviceAction(parent: Command, io: CliIo, action: DeviceAction): void {
  const cmd = parent
    .command(action)
    .description(DESCRIPTIONS[action])
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .option('--reason <text>', 'why, recorded in the audit log')
    .action(async (id: string, opts: { reason?: string }, command: Command) => {
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const device = await deviceAction(
        client,
        action,
        await resolveDeviceId(client, id),
        opts.reason === undefined ? {} : { reason: opts.reason },
      );
      ctx.out.result(device, () =>
        ctx.out.line(`${PAST[action]} device ${device.id} (${device.hostname ?? 'no hostname'})`),
      );
    });
  examples(cmd, [
    `flotilla devices ${action} 3f2a9c0d1e4b`,
    `flotilla devices ${action} 3f2a9c0d1e4b --reason "ticket 42"`,
  ]);
}
