import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * The CLI's configuration directory: `--config-dir`, else `$FLOTILLA_CONFIG_DIR`, else
 * `$XDG_CONFIG_HOME/flotilla`, else `~/.config/flotilla`. Relative paths resolve against `cwd`.
 */
export function resolveConfigDir(opts: {
  flag?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
}): string {
  const { flag, env, cwd } = opts;
  const chosen =
    nonEmpty(flag) ??
    nonEmpty(env.FLOTILLA_CONFIG_DIR) ??
    (nonEmpty(env.XDG_CONFIG_HOME) ? join(env.XDG_CONFIG_HOME as string, 'flotilla') : undefined) ??
    join(nonEmpty(env.HOME) ?? homedir(), '.config', 'flotilla');
  return isAbsolute(chosen) ? chosen : resolve(cwd, chosen);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}
