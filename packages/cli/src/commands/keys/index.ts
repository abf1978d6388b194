import type { Command } from 'commander';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { registerKeysDelegateGateway } from './delegate-gateway.js';
import { registerKeysInit } from './init.js';
import { registerKeysRenew } from './renew.js';
import { registerKeysRotate } from './rotate.js';
import { registerKeysStatus } from './status.js';

export function registerKeyCommands(program: Command, io: CliIo): void {
  const group = program
    .command('keys')
    .description(
      "offline signing keys: root and targets of the image repository (TUF), and the apps delegated to the server's gateway role",
    );
  registerKeysInit(group, io);
  registerKeysStatus(group, io);
  registerKeysRenew(group, io);
  registerKeysRotate(group, io);
  registerKeysDelegateGateway(group, io);
  examples(group, [
    'flotilla keys init --passphrase-stdin < pass.txt',
    'flotilla keys status',
    'flotilla keys renew --role targets',
    'flotilla keys delegate-gateway --app cluster-images',
  ]);
}
