import type { Command } from 'commander';
import { lookupImage, removeImage, showImage } from '../../api/images.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { selectorOf, selectorOptions } from './select.js';
import type { SelectOptions } from './select.js';
import { imageFields } from './view.js';

export function registerImageShow(parent: Command, io: CliIo): void {
  const cmd = selectorOptions(parent.command('show').description('one image (does not count as use)')).action(
    async (image: string, opts: SelectOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const res = await showImage(await ctx.client(), selectorOf(image, opts));
      ctx.out.result(res, () => ctx.out.fields(imageFields(res)));
    },
  );
  examples(cmd, [
    'flotilla images show busybox:1.36',
    'flotilla images show busybox:1.36 --platform cluster --json',
  ]);
}

export function registerImageLookup(parent: Command, io: CliIo): void {
  const cmd = selectorOptions(
    parent
      .command('lookup')
      .description("a ready image's id and path on its platform; counts as use (resets its expiry)"),
  ).action(async (image: string, opts: SelectOptions, command: Command) => {
    const ctx = contextFor(io, command);
    const res = await lookupImage(await ctx.client(), selectorOf(image, opts));
    ctx.out.result(res, () => ctx.out.line(`${res.id} ${res.path}`));
  });
  examples(cmd, [
    'flotilla images lookup busybox:1.36 --platform cluster',
    'flotilla images lookup busybox:1.36 --json',
  ]);
}

export function registerImageRemove(parent: Command, io: CliIo): void {
  const cmd = selectorOptions(
    parent
      .command('rm')
      .description('remove an image from its platform and the cache (server or platform admins)'),
  ).action(async (image: string, opts: SelectOptions, command: Command) => {
    const ctx = contextFor(io, command);
    const sel = selectorOf(image, opts);
    await removeImage(await ctx.client(), sel);
    ctx.out.result({ removed: sel }, () => ctx.out.line(`removed ${image}`));
  });
  examples(cmd, ['flotilla images rm busybox:1.36 --platform cluster']);
}
