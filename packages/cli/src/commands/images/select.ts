import type { Command } from 'commander';
import type { ImageSelector } from '../../api/images.js';

export interface SelectOptions {
  platform?: string;
  arch?: string;
}

/** `--platform` and `--arch`, shared by show, lookup and rm. */
export function selectorOptions(cmd: Command): Command {
  return cmd
    .argument('<image>', '[LOCATION/]NAME[:TAG]')
    .option('--platform <name>', 'platform (default: the configured default platform)')
    .option('--arch <arch>', 'architecture (default amd64)');
}

export function selectorOf(image: string, opts: SelectOptions): ImageSelector {
  return { image, platform: opts.platform, arch: opts.arch };
}
