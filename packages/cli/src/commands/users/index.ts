import type { Command } from 'commander';
import type { CliIo } from '../../io.js';
import { registerUserCreate } from './create.js';
import { registerUserDisable } from './disable.js';
import { registerUserList } from './ls.js';
import { registerUserResetPassword } from './reset-password.js';
import { registerUserSetRole } from './set-role.js';

export function registerUserCommands(program: Command, io: CliIo): void {
  const group = program
    .command('users')
    .description('operator accounts and their roles (admin only; reset-password works offline)');
  registerUserCreate(group, io);
  registerUserList(group, io);
  registerUserSetRole(group, io);
  registerUserDisable(group, io);
  registerUserResetPassword(group, io);
}
