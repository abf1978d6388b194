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

/**
 * Where `flotilla up` keeps its data unless told otherwise: `$XDG_DATA_HOME/flotilla/up`, else
 * `~/.local/share/flotilla/up` — outside any source tree, so that apps installed by the local
 * agent never inherit a repository's package.json (`"type": "module"`) or other settings.
 */
export function defaultUpDataDir(env: Readonly<Record<string, string | undefined>>): string {
  const dataHome = nonEmpty(env.XDG_DATA_HOME) ?? join(nonEmpty(env.HOME) ?? homedir(), '.local', 'share');
  return join(dataHome, 'flotilla', 'up');
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}
