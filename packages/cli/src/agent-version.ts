import { FLOTILLA_VERSION, FlotillaError } from '@flotilla/protocol';

/** The agent bundle's version (replaced by esbuild when the bundle is built), else the source tree's. */
export function agentVersion(): string {
  return process.env.FLOTILLA_BUNDLE_VERSION ?? FLOTILLA_VERSION;
}

const DEBIAN_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'armhf', ia32: 'i386' };

/** The architecture this agent runs as, in the names devices report (Debian's: amd64, arm64). */
export function agentArch(): string {
  return DEBIAN_ARCH[process.arch] ?? process.arch;
}

/**
 * `--profiling [port]`: the inspector, bound to loopback only (reach it through an SSH tunnel);
 * returns the line that says where.
 */
export async function openInspector(port: boolean | string): Promise<string> {
  const number = port === true ? 9229 : Number(port);
  if (!Number.isInteger(number) || number < 0 || number > 65535)
    throw new FlotillaError('FLT_CONFIG_INVALID', `--profiling: ${String(port)} is not a port`, {
      details: { problems: ['--profiling: a port from 0 to 65535'] },
    });
  const inspector = await import('node:inspector');
  inspector.open(number, '127.0.0.1', false);
  return `profiling: the Node inspector listens on ${inspector.url() ?? `127.0.0.1:${number}`} (loopback only)`;
}
