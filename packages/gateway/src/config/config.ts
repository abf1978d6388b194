/**
 * The gateway's configuration, after Shifter's imagemanager.json: a default image location,
 * locations (registries with their authentication), a default format, the pull and expiration
 * timeouts, a cache directory and platforms, each with its admins and access type. Read from a
 * YAML file (`--gateway-config`), validated once, frozen. Every problem is listed in one error.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { FlotillaError, parseDurationMs } from '@flotilla/protocol';
import { readYamlConfigFile } from '@flotilla/node-kit';

export type LocationAuth =
  | { type: 'none' }
  | { type: 'basic'; username: string; password: string }
  | { type: 'token'; username?: string; password?: string };

/** A registry (Shifter's location of type `dockerv2`). */
export interface LocationConfig {
  name: string;
  type: 'dockerv2';
  /** Base URL, e.g. `http://127.0.0.1:5000`. */
  url: string;
  auth: LocationAuth;
}

export type PlatformAccess =
  | { type: 'local'; imageDir: string }
  | {
      type: 'remote';
      host: string;
      port: number;
      username: string;
      privateKeyFile: string;
      imageDir: string;
      /** SHA-256 fingerprint of the host key (`SHA256:…` as ssh-keygen -l prints it); required. */
      hostKeySha256: string;
    }
  | {
      /** Delivered by Flotilla agents: the image's release tree as a release of `app`, signed by the gateway role. */
      type: 'fleet';
      /** The app the images become releases of (delegated with `flotilla keys delegate-gateway --app`). */
      app: string;
      /** RSQL device filter selecting the platform's devices, e.g. `tags==cluster`. */
      filter: string;
    };

export interface PlatformConfig {
  name: string;
  /** Usernames that may pull and remove on this platform and see its private images. */
  admins: string[];
  access: PlatformAccess;
  /** Allow device nodes in images for this platform. */
  allowDevices: boolean;
}

export interface GatewayConfig {
  defaultLocation: string;
  locations: Record<string, LocationConfig>;
  defaultPlatform: string;
  platforms: Record<string, PlatformConfig>;
  /** Only `squashfs` (Shifter's default format). */
  defaultFormat: 'squashfs';
  defaultArch: string;
  /** Longest one import attempt may take, ms. */
  pullTimeoutMs: number;
  /** Images not looked up for this long are removed; 0 = never. */
  expirationTimeoutMs: number;
  /** How often the expiry sweep runs, ms. */
  expirySweepMs: number;
  cacheDir: string;
  /** Group name → usernames, for private images' group lists. */
  groups: Record<string, string[]>;
  /** Jobs one worker (or the in-process queue) runs at once. */
  concurrency: number;
  /** Attempts per job before it fails (retries = attempts - 1). */
  attempts: number;
  /** First retry delay, ms; doubles per attempt. */
  backoffMs: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** A release's app name (protocol AppName). */
const APP = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;

/**
 * The configuration from `file` (YAML, may be undefined) with defaults under `dataDir`. Relative
 * paths in the file are taken from the file's directory.
 */
export function loadGatewayConfig(file: string | undefined, dataDir: string): GatewayConfig {
  const problems: string[] = [];
  const raw = file === undefined ? {} : readYamlConfigFile(file, problems);
  const base = file === undefined ? dataDir : resolve(file, '..');
  const config = parseGatewayConfig(raw, { dataDir, baseDir: base }, problems);
  if (problems.length > 0 || config === null) {
    throw new FlotillaError(
      'FLT_GATEWAY_CONFIG_INVALID',
      `invalid gateway configuration:\n  ${problems.join('\n  ')}`,
      {
        details: { problems },
      },
    );
  }
  return config;
}

interface Dirs {
  dataDir: string;
  baseDir: string;
}

export function parseGatewayConfig(
  raw: Record<string, unknown>,
  dirs: Dirs,
  problems: string[],
): GatewayConfig | null {
  const known = new Set([
    'defaultLocation',
    'locations',
    'defaultPlatform',
    'platforms',
    'defaultFormat',
    'defaultArch',
    'pullTimeout',
    'expirationTimeout',
    'expirySweepInterval',
    'cacheDir',
    'groups',
    'concurrency',
    'attempts',
    'backoff',
  ]);
  for (const key of Object.keys(raw)) if (!known.has(key)) problems.push(`${key}: unknown key`);
  const path = (v: unknown, where: string, fallback: string): string => {
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || v === '') {
      problems.push(`${where}: must be a path`);
      return fallback;
    }
    return isAbsolute(v) ? v : resolve(dirs.baseDir, v);
  };
  const duration = (v: unknown, where: string, fallback: number): number => {
    if (v === undefined) return fallback;
    try {
      return parseDurationMs(v as string | number);
    } catch {
      problems.push(`${where}: must be a duration such as 30s, 10m or 7d`);
      return fallback;
    }
  };
  const int = (v: unknown, where: string, fallback: number, min: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      problems.push(`${where}: must be an integer >= ${min}`);
      return fallback;
    }
    return v;
  };
  const strings = (v: unknown, where: string): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      problems.push(`${where}: must be a list of names`);
      return [];
    }
    return v as string[];
  };

  const locations: Record<string, LocationConfig> = {};
  for (const [name, value] of Object.entries(objectAt(raw.locations, 'locations', problems))) {
    const loc = parseLocation(name, value, problems);
    if (loc) locations[name] = loc;
  }
  const platforms: Record<string, PlatformConfig> = {};
  const rawPlatforms = objectAt(raw.platforms, 'platforms', problems);
  if (Object.keys(rawPlatforms).length === 0) {
    platforms.default = {
      name: 'default',
      admins: [],
      access: { type: 'local', imageDir: join(dirs.dataDir, 'gateway', 'images') },
      allowDevices: false,
    };
  }
  for (const [name, value] of Object.entries(rawPlatforms)) {
    const where = `platforms.${name}`;
    if (!NAME.test(name)) problems.push(`${where}: a platform name is letters, digits, _ . -`);
    const p = objectAt(value, where, problems);
    const access = objectAt(p.access, `${where}.access`, problems);
    let parsed: PlatformAccess | null = null;
    if (access.type === 'local') {
      parsed = { type: 'local', imageDir: path(access.imageDir, `${where}.access.imageDir`, '') };
      if (parsed.imageDir === '') problems.push(`${where}.access.imageDir: required`);
    } else if (access.type === 'remote') {
      const need = (k: string): string => {
        const v = access[k];
        if (typeof v !== 'string' || v === '') {
          problems.push(`${where}.access.${k}: required`);
          return '';
        }
        return v;
      };
      parsed = {
        type: 'remote',
        host: need('host'),
        port: int(access.port, `${where}.access.port`, 22, 1),
        username: need('username'),
        privateKeyFile: path(access.privateKeyFile, `${where}.access.privateKeyFile`, ''),
        imageDir: need('imageDir'),
        hostKeySha256: need('hostKeySha256'),
      };
      if (parsed.privateKeyFile === '') problems.push(`${where}.access.privateKeyFile: required`);
      if (parsed.imageDir !== '' && !parsed.imageDir.startsWith('/'))
        problems.push(`${where}.access.imageDir: must be an absolute path on the remote host`);
    } else if (access.type === 'fleet') {
      const app = typeof access.app === 'string' ? access.app : '';
      const filter = typeof access.filter === 'string' ? access.filter.trim() : '';
      if (!APP.test(app))
        problems.push(`${where}.access.app: required, an app name (letters, digits, _ . + -, no slash)`);
      if (filter === '')
        problems.push(`${where}.access.filter: required, a device filter such as tags==${name}`);
      parsed = { type: 'fleet', app, filter };
    } else {
      problems.push(`${where}.access.type: must be local, remote or fleet`);
    }
    if (parsed) {
      platforms[name] = {
        name,
        admins: strings(p.admins, `${where}.admins`),
        access: parsed,
        allowDevices: p.allowDevices === true,
      };
    }
  }
  const fleetApps = new Map<string, string>();
  for (const platform of Object.values(platforms)) {
    if (platform.access.type !== 'fleet') continue;
    const other = fleetApps.get(platform.access.app);
    if (other !== undefined)
      problems.push(
        `platforms.${platform.name}.access.app: ${platform.access.app} is already the app of platform ${other}`,
      );
    fleetApps.set(platform.access.app, platform.name);
  }
  const groups: Record<string, string[]> = {};
  for (const [name, members] of Object.entries(objectAt(raw.groups, 'groups', problems)))
    groups[name] = strings(members, `groups.${name}`);

  const defaultLocation =
    typeof raw.defaultLocation === 'string' ? raw.defaultLocation : (Object.keys(locations)[0] ?? '');
  if (defaultLocation !== '' && !(defaultLocation in locations))
    problems.push(`defaultLocation: no location named ${defaultLocation}`);
  const defaultPlatform =
    typeof raw.defaultPlatform === 'string' ? raw.defaultPlatform : (Object.keys(platforms)[0] ?? 'default');
  if (!(defaultPlatform in platforms)) problems.push(`defaultPlatform: no platform named ${defaultPlatform}`);
  if (raw.defaultFormat !== undefined && raw.defaultFormat !== 'squashfs')
    problems.push('defaultFormat: only squashfs is supported');
  let defaultArch = 'amd64';
  if (typeof raw.defaultArch === 'string' && /^[a-z0-9]+$/.test(raw.defaultArch))
    defaultArch = raw.defaultArch;
  else if (raw.defaultArch !== undefined)
    problems.push('defaultArch: an architecture name such as amd64 or arm64');

  const config: GatewayConfig = {
    defaultLocation,
    locations,
    defaultPlatform,
    platforms,
    defaultFormat: 'squashfs',
    defaultArch,
    pullTimeoutMs: duration(raw.pullTimeout, 'pullTimeout', 30 * 60_000),
    expirationTimeoutMs: duration(raw.expirationTimeout, 'expirationTimeout', 90 * 24 * 3600_000),
    expirySweepMs: duration(raw.expirySweepInterval, 'expirySweepInterval', 10 * 60_000),
    cacheDir: path(raw.cacheDir, 'cacheDir', join(dirs.dataDir, 'gateway', 'cache')),
    groups,
    concurrency: int(raw.concurrency, 'concurrency', 2, 1),
    attempts: int(raw.attempts, 'attempts', 3, 1),
    backoffMs: duration(raw.backoff, 'backoff', 5_000),
  };
  return problems.length > 0 ? null : deepFreeze(config);
}

function parseLocation(name: string, value: unknown, problems: string[]): LocationConfig | null {
  const where = `locations.${name}`;
  if (!NAME.test(name)) problems.push(`${where}: a location name is letters, digits, _ . -`);
  const v = objectAt(value, where, problems);
  const type = v.type ?? 'dockerv2';
  if (type !== 'dockerv2') problems.push(`${where}.type: only dockerv2 is supported`);
  if (typeof v.url !== 'string' || !/^https?:\/\/[^/]+/.test(v.url)) {
    problems.push(`${where}.url: must be an http(s) URL such as https://registry.example.org`);
    return null;
  }
  const a = objectAt(v.auth ?? { type: 'none' }, `${where}.auth`, problems);
  let auth: LocationAuth;
  if (a.type === 'none' || a.type === undefined) auth = { type: 'none' };
  else if (a.type === 'basic' || a.type === 'token') {
    const username = typeof a.username === 'string' ? a.username : undefined;
    const password = typeof a.password === 'string' ? a.password : undefined;
    if (a.type === 'basic' && (username === undefined || password === undefined)) {
      problems.push(`${where}.auth: basic needs username and password`);
      return null;
    }
    auth =
      a.type === 'basic'
        ? { type: 'basic', username: username ?? '', password: password ?? '' }
        : {
            type: 'token',
            ...(username === undefined ? {} : { username }),
            ...(password === undefined ? {} : { password }),
          };
  } else {
    problems.push(`${where}.auth.type: must be none, basic or token`);
    return null;
  }
  return { name, type: 'dockerv2', url: v.url.replace(/\/+$/, ''), auth };
}

function objectAt(v: unknown, where: string, problems: string[]): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) {
    problems.push(`${where}: must be a mapping`);
    return {};
  }
  return v as Record<string, unknown>;
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
