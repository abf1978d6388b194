/** Facts every agent reports without any configuration. */
import { readFile, statfs } from 'node:fs/promises';
import { arch, cpus, hostname, networkInterfaces, release, totalmem } from 'node:os';
import { FLOTILLA_VERSION, LIMITS } from '@flotilla/protocol';
import type { Facts } from '@flotilla/protocol';

/**
 * Node's architecture names (`x64`, `ia32`) differ from the ones operators filter on everywhere else
 * (Debian, Docker, Go: `amd64`, `386`); report the latter so `arch=in=(arm64,amd64)` works.
 */
const ARCH_NAMES: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  arm: 'armhf',
  ppc64: 'ppc64el',
  loong64: 'loong64',
};

export function debianArch(nodeArch: string): string {
  return ARCH_NAMES[nodeArch] ?? nodeArch;
}

const OS_RELEASE_FILES = ['/etc/os-release', '/usr/lib/os-release'];

export async function collectBuiltinFacts(dataDir: string): Promise<Facts> {
  const facts: Facts = {
    os: process.platform,
    arch: debianArch(arch()),
    kernel: clip(release()),
    hostname: clip(hostname()),
    cpus: Math.max(1, cpus().length),
    'memory.total_bytes': totalmem(),
    'ip.addresses': ipAddresses(),
    'agent.version': FLOTILLA_VERSION,
  };
  const model = cpus()[0]?.model.trim();
  if (model) facts['cpu.model'] = clip(model);
  const distro = await readOsRelease();
  if (distro.ID) facts['os.distro'] = clip(distro.ID);
  if (distro.VERSION_ID) facts['os.version'] = clip(distro.VERSION_ID);
  try {
    const fs = await statfs(dataDir);
    facts['disk.total_bytes'] = fs.blocks * fs.bsize;
    facts['disk.free_bytes'] = fs.bavail * fs.bsize;
  } catch {
    // A data dir on a filesystem without statfs support: the disk facts are simply absent.
  }
  return facts;
}

/** Parses os-release(5): `KEY=value` lines, values optionally quoted. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m?.[1]) continue;
    let value = m[2] ?? '';
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replace(/\\(["\\$`])/g, '$1');
    }
    out[m[1]] = value;
  }
  return out;
}

async function readOsRelease(): Promise<Record<string, string>> {
  for (const path of OS_RELEASE_FILES) {
    try {
      return parseOsRelease(await readFile(path, 'utf8'));
    } catch {
      // try the next location
    }
  }
  return {};
}

function ipAddresses(): string[] {
  const addresses = new Set<string>();
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) if (!entry.internal) addresses.add(entry.address);
  }
  return [...addresses].sort().slice(0, LIMITS.factArrayItems);
}

function clip(text: string): string {
  return text.slice(0, LIMITS.factValueChars);
}
