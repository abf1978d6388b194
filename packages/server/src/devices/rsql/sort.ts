/** `sort=-lastSeenAt,id` → ORDER BY over a whitelist of device columns; `id` always breaks ties. */
import { FlotillaError } from '@flotilla/protocol';

const SORTABLE = {
  id: 'devices.id',
  status: 'devices.status',
  hostname: 'devices.hostname',
  lastSeenAt: 'devices.last_seen_at',
  enrolledAt: 'devices.enrolled_at',
} as const;

export type SortColumn = (typeof SORTABLE)[keyof typeof SORTABLE];
export interface SortKey {
  column: SortColumn;
  direction: 'asc' | 'desc';
}

export const SORT_FIELDS = Object.keys(SORTABLE);
const DEFAULT_SORT: SortKey[] = [{ column: 'devices.enrolled_at', direction: 'asc' }];

/** Parses a sort specification; throws FLT_SORT_INVALID naming the offending field. */
export function parseSort(text: string | undefined): SortKey[] {
  const keys: SortKey[] = [];
  const fields = text === undefined || text.trim() === '' ? [] : text.split(',');
  for (const raw of fields) {
    const field = raw.trim();
    const descending = field.startsWith('-');
    const name = descending || field.startsWith('+') ? field.slice(1) : field;
    const column = Object.prototype.hasOwnProperty.call(SORTABLE, name)
      ? SORTABLE[name as keyof typeof SORTABLE]
      : undefined;
    if (column === undefined) {
      throw new FlotillaError(
        'FLT_SORT_INVALID',
        `cannot sort by "${field}" (use ${SORT_FIELDS.join(', ')}, "-" for descending)`,
        {
          details: { field, allowed: SORT_FIELDS },
        },
      );
    }
    if (keys.some((k) => k.column === column)) {
      throw new FlotillaError('FLT_SORT_INVALID', `"${name}" appears twice in the sort`, {
        details: { field },
      });
    }
    keys.push({ column, direction: descending ? 'desc' : 'asc' });
  }
  const result = keys.length > 0 ? keys : [...DEFAULT_SORT];
  if (!result.some((k) => k.column === 'devices.id')) result.push({ column: 'devices.id', direction: 'asc' });
  return result;
}
