import type { Command } from 'commander';
import { getDevice } from '../../api/operator.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { resolveDeviceId } from './resolve-id.js';
import { deviceFields, factRows } from './view.js';

export function registerDeviceShow(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('show')
    .description('show one device with its inventory facts')
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .action(async (id: string, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const device = await getDevice(client, await resolveDeviceId(client, id));
      ctx.out.result(device, () => {
        ctx.out.fields(deviceFields(device));
        ctx.out.line('');
        const facts = factRows(device);
        if (facts.length === 0) ctx.out.note('no facts reported yet');
        else ctx.out.table(['fact', 'value'], facts);
      });
    });
  examples(cmd, [
    'flotilla devices show 3f2a9c0d1e4b',
    'flotilla devices show 3f2a9c0d1e4b --json | jq .facts',
  ]);
}
