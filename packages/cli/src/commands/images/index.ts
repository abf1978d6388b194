import type { Command } from 'commander';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { registerImageList } from './ls.js';
import { registerImagePull } from './pull.js';
import { registerImageLookup, registerImageRemove, registerImageShow } from './show.js';

export function registerImageCommands(program: Command, io: CliIo): void {
  const group = program
    .command('images')
    .description(
      'container images imported by the image gateway: pull from a registry, list, look up, remove',
    );
  registerImagePull(group, io);
  registerImageList(group, io);
  registerImageShow(group, io);
  registerImageLookup(group, io);
  registerImageRemove(group, io);
  examples(group, [
    'flotilla images pull busybox:1.36',
    'flotilla images ls',
    'flotilla images lookup busybox:1.36',
  ]);
}
