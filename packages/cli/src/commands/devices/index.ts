import type { Command } from 'commander';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { registerDeviceAction } from './action.js';
import { registerDeviceList } from './ls.js';
import { registerDeviceShow } from './show.js';
import { registerDeviceTag } from './tag.js';

export function registerDeviceCommands(program: Command, io: CliIo): void {
  const group = program.command('devices').description('devices: list, inspect, accept, reject, revoke, tag');
  registerDeviceList(group, io);
  registerDeviceShow(group, io);
  registerDeviceAction(group, io, 'accept');
  registerDeviceAction(group, io, 'reject');
  registerDeviceAction(group, io, 'revoke');
  registerDeviceTag(group, io);
  examples(group, ['flotilla devices ls --filter "status==pending"', 'flotilla devices accept 3f2a9c0d1e4b']);
}
