import type { Release } from '@flotilla/protocol';
import { formatBytes } from '../../push/progress.js';
import { relativeTime } from '../../output/format.js';

export const RELEASE_HEAD = ['app', 'version', 'runtime', 'files', 'size', 'signed', 'root', 'created'];

export function releaseRow(r: Release): string[] {
  return [
    r.app,
    r.version,
    r.runtime,
    String(r.files),
    formatBytes(r.bytes),
    r.signed ? 'yes' : 'no',
    r.rootObject.slice(0, 12),
    relativeTime(r.createdAt),
  ];
}

export function releaseFields(r: Release): [string, string][] {
  return [
    ['release', `${r.app}@${r.version}`],
    ['runtime', r.runtime],
    ['target', r.targetPath],
    ['root object', r.rootObject],
    ['signed', r.signed ? 'yes (offline targets key)' : 'no: not named by signed targets metadata'],
    ['files', String(r.files)],
    ['size', `${formatBytes(r.bytes)} (${formatBytes(r.storedBytes)} stored)`],
    ['created', `${r.createdAt} (${relativeTime(r.createdAt)}) by ${r.createdBy}`],
    ['config', Object.keys(r.config).length === 0 ? '-' : JSON.stringify(r.config)],
    ...(r.secrets
      ? ([
          [
            'secrets',
            r.secrets.map((s) => `${s.name} (${s.stored ? 'stored' : 'value missing'})`).join(', '),
          ],
        ] as [string, string][])
      : []),
  ];
}
