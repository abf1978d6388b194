import type { Command } from 'commander';
import { roleKeysOf } from '@flotilla/node-kit';
import type { TufStatus } from '@flotilla/protocol';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { relativeTime } from '../../output/format.js';
import type { Printer } from '../../output/printer.js';
import { currentRoot, tufStatus } from '../../signing/image-api.js';
import { keyIdsOnDisk, OFFLINE_ROLES } from '../../signing/keys-dir.js';
import { keysDirOf } from './options.js';

interface StatusOptions {
  keysDir?: string;
}

interface LocalKeys {
  role: string;
  named: number;
  threshold: number;
  present: number;
}

const ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;

export function registerKeysStatus(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('status')
    .description(
      "the image repository's metadata versions and expiries, which offline keys this machine holds, " +
        'and what needs renewing',
    )
    .option('--keys-dir <dir>', 'where the offline keys are (default: <config-dir>/keys)')
    .action(async (opts: StatusOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const keysDir = keysDirOf(ctx, opts);
      const client = await ctx.client();
      const status = await tufStatus(client);
      const local: LocalKeys[] = [];
      if (status.initialized) {
        const root = await currentRoot(client);
        for (const role of OFFLINE_ROLES) {
          const { keys, threshold } = roleKeysOf(root.signed, role);
          const onDisk = new Set(await keyIdsOnDisk(keysDir, role));
          local.push({
            role,
            named: keys.length,
            threshold,
            present: keys.filter((k) => onDisk.has(k.keyID)).length,
          });
        }
      }
      ctx.out.result({ ...status, keysDir, localKeys: local }, () =>
        printStatus(ctx.out, status, keysDir, local),
      );
    });
  examples(cmd, ['flotilla keys status', 'flotilla keys status --json | jq .warnings']);
}

function printStatus(out: Printer, status: TufStatus, keysDir: string, local: readonly LocalKeys[]): void {
  if (!status.initialized) {
    out.note('the image repository has no root yet: run `flotilla keys init`');
    return;
  }
  const rows = ROLES.map((role) => {
    const state = status[role];
    const mine = local.find((l) => l.role === role);
    return [
      role,
      state ? `v${state.version}` : '-',
      state ? state.expires : '-',
      state ? relativeTime(state.expires) : '-',
      mine ? `${mine.present} of ${mine.named} (threshold ${mine.threshold})` : 'server (online)',
    ];
  });
  const gw = status.gateway;
  if (gw)
    rows.push([
      'gateway',
      gw.version !== undefined ? `v${gw.version}` : '-',
      gw.expires ?? '-',
      gw.expires ? relativeTime(gw.expires) : '-',
      `server (online), delegated: ${gw.apps.join(', ')}`,
    ]);
  out.table(['role', 'version', 'expires', 'in', `keys in ${keysDir}`], rows);
  if (gw && !gw.keyMatches)
    out.warn(
      "the gateway delegation names another key than the server's gateway key: run `flotilla keys delegate-gateway`",
    );
  for (const warning of status.warnings) {
    const when = warning.expired ? 'has expired' : `expires ${relativeTime(warning.expires)}`;
    out.warn(`${warning.role} v${warning.version} ${when}: run \`${warning.command}\``);
  }
}
