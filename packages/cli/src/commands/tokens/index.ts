import type { Command } from 'commander';
import type { CliIo } from '../../io.js';
import { registerTokenCreate } from './create.js';
import { registerTokenList } from './ls.js';
import { registerTokenRevoke } from './revoke.js';

export function registerTokenCommands(program: Command, io: CliIo): void {
  const group = program.command('tokens').description('API tokens for scripts and automation');
  registerTokenCreate(group, io);
  registerTokenList(group, io);
  registerTokenRevoke(group, io);
}
