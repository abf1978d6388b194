/**
 * `release push --compose`: a docker-compose file → the docker runtime's configuration
 * (protocol DockerRuntimeConfig, docs/containers.md). Parsed with the `yaml` library; only the
 * compose subset the agent implements is accepted, and every other key is refused here, at push
 * time, with the list of them (FLT_VALIDATION), never discovered on a device.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { DockerRuntimeConfig, DockerService, DockerUpdateStrategy } from '@flotilla/protocol';
import { parse } from 'yaml';

type Obj = Record<string, unknown>;

const SERVICE_KEYS = new Set([
  'image',
  'command',
  'entrypoint',
  'environment',
  'env_file',
  'ports',
  'volumes',
  'restart',
  'healthcheck',
  'depends_on',
  'labels',
  'user',
  'working_dir',
  'cap_add',
  'cap_drop',
  'devices',
  'logging',
  'deploy',
]);
const TOP_KEYS = new Set(['services', 'volumes', 'version', 'name']);

export interface ComposeProject {
  /** The configuration without image ids (`images` empty): resolveComposeImages fills them. */
  config: DockerRuntimeConfig;
  /** Image references the services name. */
  refs: string[];
}

export async function readCompose(
  cwd: string,
  file: string,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<ComposeProject> {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new FlotillaError(
      code === 'ENOENT' ? 'FLT_NOT_FOUND' : 'FLT_IO',
      `cannot read ${path}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 100 });
  } catch (cause) {
    throw new FlotillaError('FLT_VALIDATION', `${file} is not valid YAML: ${(cause as Error).message}`, {
      cause,
    });
  }
  return normalizeCompose(doc, {
    file,
    readEnvFile: (p) => readFile(resolve(dirname(path), p), 'utf8'),
    env,
  });
}

/**
 * Compose's variable interpolation in every string value: `$$` is a literal `$`; `${NAME}`,
 * `$NAME`, `${NAME:-default}`, `${NAME-default}` and `${NAME:?message}` take the pushing
 * environment's values (the release is signed with the result).
 */
export function interpolate(
  value: string,
  env: Readonly<Record<string, string | undefined>>,
  problems: string[],
  at: string,
): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (
      whole,
      braced: string | undefined,
      op: string | undefined,
      arg: string | undefined,
      bare: string | undefined,
    ) => {
      if (whole === '$$') return '$';
      const name = (braced ?? bare) as string;
      const v = env[name];
      const unset = op?.startsWith(':') ? v === undefined || v === '' : v === undefined;
      if (op?.endsWith('-') && unset) return arg ?? '';
      if (op?.endsWith('?') && unset) {
        problems.push(`${at}: ${name}: ${arg || 'required variable is not set'}`);
        return '';
      }
      return v ?? '';
    },
  );
}

function interpolateAll(
  v: unknown,
  env: Readonly<Record<string, string | undefined>>,
  problems: string[],
  at: string,
): unknown {
  if (typeof v === 'string') return interpolate(v, env, problems, at);
  if (Array.isArray(v)) return v.map((x, i) => interpolateAll(x, env, problems, `${at}[${i}]`));
  if (isObj(v))
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [k, interpolateAll(x, env, problems, at ? `${at}.${k}` : k)]),
    );
  return v;
}

/** The normalized project, or FLT_VALIDATION with every unsupported key and bad value in `details.problems`. */
export async function normalizeCompose(
  doc: unknown,
  options: {
    file: string;
    readEnvFile: (path: string) => Promise<string>;
    env?: Readonly<Record<string, string | undefined>>;
  },
): Promise<ComposeProject> {
  const problems: string[] = [];
  if (!isObj(doc)) throw invalid(options.file, ['(file): must be a mapping with services']);
  doc = interpolateAll(doc, options.env ?? {}, problems, '');
  if (!isObj(doc)) throw invalid(options.file, ['(file): must be a mapping with services']);
  for (const key of Object.keys(doc))
    if (!TOP_KEYS.has(key) && !key.startsWith('x-')) problems.push(`${key}: not supported`);
  const volumes = isObj(doc.volumes) ? Object.keys(doc.volumes) : [];
  if (isObj(doc.volumes))
    for (const [name, v] of Object.entries(doc.volumes))
      if (v !== null && !(isObj(v) && Object.keys(v).length === 0))
        problems.push(
          `volumes.${name}: volume options are not supported (a named volume is created per app)`,
        );
  const services: Record<string, DockerService> = {};
  const strategy: Record<string, DockerUpdateStrategy> = {};
  if (!isObj(doc.services) || Object.keys(doc.services).length === 0) problems.push('services: required');
  for (const [name, raw] of Object.entries(isObj(doc.services) ? doc.services : {})) {
    const at = `services.${name}`;
    if (!isObj(raw)) {
      problems.push(`${at}: must be a mapping`);
      continue;
    }
    for (const key of Object.keys(raw))
      if (!SERVICE_KEYS.has(key) && !key.startsWith('x-')) problems.push(`${at}.${key}: not supported`);
    const s: DockerService = { image: '' };
    if (typeof raw.image === 'string') s.image = raw.image;
    else problems.push(`${at}.image: required (build is not supported: build the image, then push)`);
    const argv = (key: 'command' | 'entrypoint') => {
      const v = raw[key];
      if (v === undefined || v === null) return;
      if (typeof v === 'string') s[key] = shellSplit(v);
      else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) s[key] = v;
      else problems.push(`${at}.${key}: a string or a list of strings`);
    };
    argv('command');
    argv('entrypoint');
    const env: Record<string, string> = {};
    for (const file of envFiles(raw.env_file, `${at}.env_file`, problems)) {
      try {
        Object.assign(env, parseEnvFile(await options.readEnvFile(file.path)));
      } catch (e) {
        if (file.required) problems.push(`${at}.env_file: cannot read ${file.path}: ${(e as Error).message}`);
      }
    }
    Object.assign(env, keyValues(raw.environment, `${at}.environment`, problems));
    if (Object.keys(env).length > 0) s.environment = env;
    if (raw.ports !== undefined) s.ports = ports(raw.ports, `${at}.ports`, problems);
    if (raw.volumes !== undefined) s.volumes = mounts(raw.volumes, `${at}.volumes`, volumes, problems);
    if (raw.restart !== undefined) {
      const r = text(raw.restart);
      if (['no', 'always', 'on-failure', 'unless-stopped'].includes(r))
        s.restart = r as DockerService['restart'];
      else problems.push(`${at}.restart: one of no, always, on-failure, unless-stopped (got ${r})`);
    }
    if (raw.healthcheck !== undefined) {
      const hc = healthcheck(raw.healthcheck, `${at}.healthcheck`, problems);
      if (hc) s.healthcheck = hc;
    }
    if (raw.depends_on !== undefined) s.depends_on = dependsOn(raw.depends_on, `${at}.depends_on`, problems);
    if (raw.labels !== undefined) s.labels = keyValues(raw.labels, `${at}.labels`, problems);
    for (const key of ['user', 'working_dir'] as const) {
      const v = raw[key];
      if (v === undefined) continue;
      if (typeof v === 'string' || typeof v === 'number') s[key] = String(v);
      else problems.push(`${at}.${key}: a string`);
    }
    for (const key of ['cap_add', 'cap_drop'] as const) {
      const v = raw[key];
      if (v === undefined) continue;
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) s[key] = v;
      else problems.push(`${at}.${key}: a list of capability names`);
    }
    if (raw.devices !== undefined) s.devices = devices(raw.devices, `${at}.devices`, problems);
    if (raw.logging !== undefined) {
      const l = raw.logging;
      if (!isObj(l)) problems.push(`${at}.logging: a mapping`);
      else {
        for (const key of Object.keys(l))
          if (key !== 'driver' && key !== 'options') problems.push(`${at}.logging.${key}: not supported`);
        const logging: NonNullable<DockerService['logging']> = {};
        if (l.driver !== undefined) {
          if (l.driver === 'json-file' || l.driver === 'local') logging.driver = l.driver;
          else problems.push(`${at}.logging.driver: json-file or local (got ${text(l.driver)})`);
        }
        if (isObj(l.options)) {
          const o: Record<string, string> = {};
          for (const [k, v] of Object.entries(l.options)) {
            if (k === 'max-size' || k === 'max-file') o[k] = String(v);
            else problems.push(`${at}.logging.options.${k}: not supported (max-size, max-file)`);
          }
          logging.options = o;
        }
        s.logging = logging;
      }
    }
    if (raw.deploy !== undefined) {
      const order = deployOrder(raw.deploy, `${at}.deploy`, problems);
      if (order) strategy[name] = order;
    }
    services[name] = s;
  }
  if (problems.length > 0) throw invalid(options.file, problems);
  const config: DockerRuntimeConfig = {
    docker: {
      compose: { services, ...(volumes.length > 0 && { volumes }) },
      images: {},
      ...(Object.keys(strategy).length > 0 && { strategy }),
    },
  };
  return { config, refs: [...new Set(Object.values(services).map((s) => s.image))].sort() };
}

function invalid(file: string, problems: string[]): FlotillaError {
  return new FlotillaError(
    'FLT_VALIDATION',
    `${file}: the docker runtime does not support ${problems.length === 1 ? 'this' : 'these'}; nothing was uploaded:\n  ${problems.join('\n  ')}`,
    { details: { problems } },
  );
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** POSIX-shell-like word splitting (quotes and backslashes), as compose does for string commands. */
export function shellSplit(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1] as string))
        word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function keyValues(v: unknown, at: string, problems: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (v === undefined || v === null) return out;
  if (Array.isArray(v)) {
    for (const item of v) {
      const text = String(item);
      const eq = text.indexOf('=');
      if (eq <= 0)
        problems.push(`${at}: ${text}: a value from the pushing shell is not supported; write NAME=value`);
      else out[text.slice(0, eq)] = text.slice(eq + 1);
    }
  } else if (isObj(v)) {
    for (const [k, value] of Object.entries(v)) {
      if (value === null || value === undefined) problems.push(`${at}.${k}: needs a value`);
      else if (typeof value === 'object') problems.push(`${at}.${k}: a string`);
      else out[k] = text(value);
    }
  } else problems.push(`${at}: a mapping or a list of NAME=value`);
  return out;
}

function envFiles(v: unknown, at: string, problems: string[]): { path: string; required: boolean }[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  const out: { path: string; required: boolean }[] = [];
  for (const item of list) {
    if (typeof item === 'string') out.push({ path: item, required: true });
    else if (isObj(item) && typeof item.path === 'string')
      out.push({ path: item.path, required: item.required !== false });
    else problems.push(`${at}: a path or a list of paths`);
  }
  return out;
}

/** `NAME=value` lines; `#` comments and blank lines skipped; optional quotes removed. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    let value = line.slice(eq + 1);
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0]))
      value = value.slice(1, -1);
    out[line.slice(0, eq).replace(/^export\s+/, '')] = value;
  }
  return out;
}

function ports(v: unknown, at: string, problems: string[]): NonNullable<DockerService['ports']> {
  const out: NonNullable<DockerService['ports']> = [];
  if (!Array.isArray(v)) {
    problems.push(`${at}: a list`);
    return out;
  }
  for (const item of v) {
    if (isObj(item)) {
      for (const k of Object.keys(item))
        if (!['target', 'published', 'host_ip', 'protocol'].includes(k))
          problems.push(`${at}.${k}: not supported`);
      const target = Number(item.target);
      const port: NonNullable<DockerService['ports']>[number] = { target };
      if (item.published !== undefined) port.published = Number(item.published);
      if (typeof item.host_ip === 'string') port.host_ip = item.host_ip;
      if (item.protocol === 'udp' || item.protocol === 'tcp') port.protocol = item.protocol;
      if (!validPort(target) || (port.published !== undefined && !validPort(port.published)))
        problems.push(`${at}: ${JSON.stringify(item)}: ports are 1-65535`);
      else out.push(port);
      continue;
    }
    // [host_ip:][published:]target[/protocol]; ranges are not supported.
    const text = String(item);
    const m = /^(?:(\[[0-9a-fA-F:]+\]|[0-9.]+):)?(?:(\d+)?:)?(\d+)(?:\/(tcp|udp))?$/.exec(text);
    if (!m) {
      problems.push(
        `${at}: ${text}: not a port mapping this runtime supports ([HOST_IP:][HOST:]CONTAINER[/tcp|udp])`,
      );
      continue;
    }
    const port: NonNullable<DockerService['ports']>[number] = { target: Number(m[3]) };
    if (m[2] !== undefined) port.published = Number(m[2]);
    if (m[1] !== undefined) port.host_ip = m[1].replace(/^\[|\]$/g, '');
    if (m[4] !== undefined) port.protocol = m[4] as 'tcp' | 'udp';
    if (!validPort(port.target) || (port.published !== undefined && !validPort(port.published)))
      problems.push(`${at}: ${text}: ports are 1-65535`);
    else out.push(port);
  }
  return out;
}

const validPort = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;

function mounts(
  v: unknown,
  at: string,
  declared: readonly string[],
  problems: string[],
): NonNullable<DockerService['volumes']> {
  const out: NonNullable<DockerService['volumes']> = [];
  if (!Array.isArray(v)) {
    problems.push(`${at}: a list`);
    return out;
  }
  for (const item of v) {
    let type: string | undefined;
    let source = '';
    let target = '';
    let readOnly = false;
    if (isObj(item)) {
      for (const k of Object.keys(item))
        if (!['type', 'source', 'target', 'read_only'].includes(k))
          problems.push(`${at}.${k}: not supported`);
      type = String(item.type);
      source = text(item.source ?? '');
      target = text(item.target ?? '');
      readOnly = item.read_only === true;
    } else {
      const parts = String(item).split(':');
      if (parts.length < 2 || parts.length > 3) {
        problems.push(`${at}: ${String(item)}: SOURCE:TARGET[:ro] (anonymous volumes are not supported)`);
        continue;
      }
      [source, target] = parts as [string, string];
      readOnly = parts[2] === 'ro';
      if (parts[2] !== undefined && parts[2] !== 'ro' && parts[2] !== 'rw')
        problems.push(`${at}: ${String(item)}: mode ro or rw`);
      type = /^[./~]/.test(source) ? 'bind' : 'volume';
    }
    if (!target.startsWith('/')) {
      problems.push(`${at}: ${target}: the target must be an absolute path in the container`);
      continue;
    }
    if (type === 'volume') {
      if (!declared.includes(source))
        problems.push(`${at}: volume ${source} is not declared in the top-level volumes`);
      else out.push({ type: 'volume', source, target, ...(readOnly && { read_only: true }) });
    } else if (type === 'bind') {
      const rel = source.replace(/^\.\//, '');
      if (!source.startsWith('./') || rel === '' || rel.split('/').includes('..'))
        problems.push(
          `${at}: ${source}: a bind mount must be a ./path inside the app's data directory (no .., no absolute host path)`,
        );
      else out.push({ type: 'bind', source: rel, target, ...(readOnly && { read_only: true }) });
    } else problems.push(`${at}: type ${type}: volume or bind`);
  }
  return out;
}

/** A compose duration (`1m30s`, `500ms`, `10s`) in milliseconds, or null. */
export function durationMs(v: unknown): number | null {
  if (typeof v === 'number') return v * 1000;
  if (typeof v !== 'string' || v === '') return null;
  const units: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = v;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h)/.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * (units[m[2] as string] as number);
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

function healthcheck(v: unknown, at: string, problems: string[]): DockerService['healthcheck'] | null {
  if (!isObj(v)) {
    problems.push(`${at}: a mapping`);
    return null;
  }
  for (const k of Object.keys(v))
    if (!['test', 'interval', 'timeout', 'start_period', 'retries', 'disable'].includes(k))
      problems.push(`${at}.${k}: not supported`);
  if (v.disable === true) return { test: ['NONE'] };
  let test: string[];
  if (typeof v.test === 'string') test = ['CMD-SHELL', v.test];
  else if (Array.isArray(v.test) && v.test.length > 0 && v.test.every((x) => typeof x === 'string'))
    test = v.test;
  else {
    problems.push(`${at}.test: a string or a list (["CMD", ...], ["CMD-SHELL", "..."])`);
    return null;
  }
  const hc: NonNullable<DockerService['healthcheck']> = { test };
  for (const [key, field] of [
    ['interval', 'interval_ms'],
    ['timeout', 'timeout_ms'],
    ['start_period', 'start_period_ms'],
  ] as const) {
    if (v[key] === undefined) continue;
    const ms = durationMs(v[key]);
    if (ms === null) problems.push(`${at}.${key}: a duration like 30s or 1m30s`);
    else hc[field] = ms;
  }
  if (v.retries !== undefined) hc.retries = Number(v.retries);
  return hc;
}

function dependsOn(v: unknown, at: string, problems: string[]): NonNullable<DockerService['depends_on']> {
  const out: NonNullable<DockerService['depends_on']> = {};
  if (Array.isArray(v)) {
    for (const name of v) out[String(name)] = { condition: 'service_started' };
  } else if (isObj(v)) {
    for (const [name, spec] of Object.entries(v)) {
      const condition = isObj(spec) ? spec.condition : undefined;
      if (isObj(spec))
        for (const k of Object.keys(spec))
          if (k !== 'condition') problems.push(`${at}.${name}.${k}: not supported`);
      if (
        condition === 'service_started' ||
        condition === 'service_healthy' ||
        condition === 'service_completed_successfully'
      )
        out[name] = { condition };
      else if (condition === undefined) out[name] = { condition: 'service_started' };
      else problems.push(`${at}.${name}.condition: ${text(condition)} is not a compose condition`);
    }
  } else problems.push(`${at}: a list or a mapping`);
  return out;
}

function devices(v: unknown, at: string, problems: string[]): NonNullable<DockerService['devices']> {
  const out: NonNullable<DockerService['devices']> = [];
  if (!Array.isArray(v)) {
    problems.push(`${at}: a list`);
    return out;
  }
  for (const item of v) {
    const parts = String(item).split(':');
    const [source, target = source, permissions] = parts as [string, string?, string?];
    if (!source.startsWith('/') || !target.startsWith('/') || parts.length > 3)
      problems.push(`${at}: ${String(item)}: /dev/HOST[:/dev/CONTAINER[:rwm]]`);
    else out.push({ source, target, ...(permissions !== undefined && { permissions }) });
  }
  return out;
}

function deployOrder(v: unknown, at: string, problems: string[]): DockerUpdateStrategy | null {
  if (!isObj(v)) {
    problems.push(`${at}: a mapping`);
    return null;
  }
  for (const k of Object.keys(v)) if (k !== 'update_config') problems.push(`${at}.${k}: not supported`);
  const uc = v.update_config;
  if (uc === undefined) return null;
  if (!isObj(uc)) {
    problems.push(`${at}.update_config: a mapping`);
    return null;
  }
  for (const k of Object.keys(uc))
    if (k !== 'order') problems.push(`${at}.update_config.${k}: not supported`);
  if (uc.order === 'start-first') return 'start-stop';
  if (uc.order === 'stop-first' || uc.order === undefined) return null;
  problems.push(`${at}.update_config.order: start-first or stop-first`);
  return null;
}

/** A scalar as the user wrote it (numbers and booleans as text), anything else as JSON. */
function text(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return `${v}`;
  return JSON.stringify(v) ?? 'nothing';
}
