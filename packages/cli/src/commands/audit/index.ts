import type { Command } from 'commander';
import type { CliIo } from '../../io.js';
import { registerAuditList } from './ls.js';

export function registerAuditCommands(program: Command, io: CliIo): void {
  const group = program.command('audit').description('the audit log: every mutation, who made it, when');
  registerAuditList(group, io);
}
