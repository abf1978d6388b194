import type { Command } from 'commander';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { registerReleaseDelta } from './delta.js';
import { registerReleaseDiff } from './diff.js';
import { registerReleaseList } from './ls.js';
import { registerReleasePush } from './push.js';
import { registerReleaseRevealSecret } from './reveal-secret.js';
import { registerReleaseShow } from './show.js';

export function registerReleaseCommands(program: Command, io: CliIo): void {
  const group = program.command('release').description('releases: signed, content-addressed app trees');
  registerReleasePush(group, io);
  registerReleaseList(group, io);
  registerReleaseShow(group, io);
  registerReleaseDiff(group, io);
  registerReleaseDelta(group, io);
  registerReleaseRevealSecret(group, io);
  examples(group, [
    'flotilla release push ./site --app web --version 1.4.0',
    'flotilla release ls --app web',
    'flotilla release diff web@1.3.0 web@1.4.0',
    'flotilla release delta web@1.3.0 web@1.4.0',
  ]);
}
