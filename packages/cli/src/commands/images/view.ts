import type { Image, ImageJob } from '@flotilla/protocol';
import { list, orDash, relativeTime } from '../../output/format.js';

export const IMAGE_HEAD = [
  'platform',
  'image',
  'arch',
  'status',
  'id',
  'size',
  'private',
  'last used',
  'expires',
];

export function imageRow(i: Image): string[] {
  return [
    i.platform,
    i.image,
    i.arch,
    i.status,
    i.id === null ? '-' : i.id.slice(0, 12),
    i.sizeBytes === null ? '-' : `${Math.ceil(i.sizeBytes / 1024)} KiB`,
    i.private ? 'yes' : 'no',
    relativeTime(i.lastUsedAt),
    i.expiresAt === null ? 'never' : relativeTime(i.expiresAt),
  ];
}

export function imageFields(i: Image): [string, string][] {
  return [
    ['image', i.image],
    ['platform', i.platform],
    ['arch', i.arch],
    ['status', i.status],
    ['id', orDash(i.id)],
    ['path', orDash(i.path)],
    ['size', i.sizeBytes === null ? '-' : `${i.sizeBytes} bytes`],
    ['manifest', orDash(i.manifestDigest)],
    ['private', i.private ? `yes (users: ${list(i.users)}; groups: ${list(i.groups)})` : 'no'],
    ['created', `${i.createdAt} by ${i.createdBy}`],
    ['last used', `${i.lastUsedAt} (${relativeTime(i.lastUsedAt)})`],
    ['expires', i.expiresAt === null ? 'never' : `${i.expiresAt} (${relativeTime(i.expiresAt)})`],
    ['job', orDash(i.jobId)],
    ['error', orDash(i.error)],
  ];
}

export function jobLine(j: ImageJob): string {
  const pct = `${Math.round(j.progress * 100)}%`.padStart(4);
  const attempt = j.attempts > 1 ? ` (attempt ${j.attempts})` : '';
  return `${pct} ${j.phase}${attempt}${j.error && j.state !== 'done' ? `: ${j.error}` : ''}`;
}
