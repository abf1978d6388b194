import type { Command } from 'commander';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { registerDeployAssign } from './assign.js';
import { registerDeviceAppCommands } from './device-apps.js';
import { registerDeployStatus } from './status.js';

export function registerDeployCommands(program: Command, io: CliIo): void {
  const group = program.command('deploy').description('assign releases to devices and follow their rollout');
  registerDeployAssign(group, io);
  registerDeployStatus(group, io);
  examples(group, [
    'flotilla deploy web@1.4.0 --device 3f2a9c0d1e4b',
    'flotilla deploy web@1.4.0 --filter "tags==canary"',
    'flotilla deploy status web@1.4.0',
  ]);
  const devices = program.commands.find((c) => c.name() === 'devices');
  if (devices) registerDeviceAppCommands(devices, io);
}
