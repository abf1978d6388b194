import type { Command } from 'commander';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { parseReleaseRef } from '../../push/release-ref.js';
import { revealSecret } from '../../push/releases-api.js';

export function registerReleaseRevealSecret(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('reveal-secret')
    .description("print one secret's value (admin only; every reveal is audited as release.secret.reveal)")
    .argument('<app@version>', 'the release, e.g. api@2.1.0')
    .argument('<name>', 'the secret, e.g. API_KEY')
    .action(async (ref: string, name: string, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const { app, version } = parseReleaseRef(ref);
      const revealed = await revealSecret(await ctx.client(), app, version, name);
      // The value alone (no trailing decoration), so that it can be piped: `… | other-tool`.
      ctx.out.result(revealed, () => ctx.out.line(revealed.value));
    });
  examples(cmd, [
    'flotilla release reveal-secret api@2.1.0 API_KEY',
    'flotilla release reveal-secret api@2.1.0 API_KEY --json | jq -r .value',
  ]);
}
