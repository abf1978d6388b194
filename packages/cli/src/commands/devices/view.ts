import type { Device } from '@flotilla/protocol';
import { factText, list, orDash, relativeTime, shortId } from '../../output/format.js';

export const DEVICE_HEAD = ['id', 'status', 'hostname', 'online', 'tags', 'os/arch', 'last seen'];

function fact(device: Device, name: string): string | undefined {
  const value = device.facts[name];
  return value === undefined ? undefined : factText(value);
}

function platform(device: Device): string {
  const os = fact(device, 'os');
  const arch = fact(device, 'arch');
  return os || arch ? `${os ?? '?'}/${arch ?? '?'}` : '-';
}

export function deviceRow(device: Device): string[] {
  return [
    shortId(device.id),
    device.status,
    orDash(device.hostname),
    device.online ? 'yes' : 'no',
    list(device.tags),
    platform(device),
    relativeTime(device.lastSeenAt),
  ];
}

export function deviceFields(device: Device): [string, string][] {
  return [
    ['id', device.id],
    ['status', device.status],
    ['hostname', orDash(device.hostname)],
    ['online', device.online ? 'yes' : 'no'],
    ['last seen', device.lastSeenAt ? `${device.lastSeenAt} (${relativeTime(device.lastSeenAt)})` : '-'],
    ['tags', list(device.tags)],
    ['enrolled', device.enrolledAt],
    ['registration key', orDash(device.registrationKeyId)],
    ['public key', device.publicKey],
    ['state version', String(device.stateVersion)],
  ];
}

export function factRows(device: Device): [string, string][] {
  return Object.keys(device.facts)
    .sort()
    .map((name) => [name, fact(device, name) ?? '']);
}
