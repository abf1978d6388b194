import type { Command } from 'commander';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { registerRegkeyCreate } from './create.js';
import { registerRegkeyList } from './ls.js';
import { registerRegkeyRevoke } from './revoke.js';

export function registerRegistrationKeyCommands(program: Command, io: CliIo): void {
  const group = program.command('regkeys').description('registration keys: what devices present to enroll');
  registerRegkeyCreate(group, io);
  registerRegkeyList(group, io);
  registerRegkeyRevoke(group, io);
  examples(group, ['flotilla regkeys create --name lab --tags lab', 'flotilla regkeys ls']);
}
