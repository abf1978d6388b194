/** Device ids are 32 hex characters; 12 are unique enough to read and to type as a prefix. */
export const SHORT_ID_CHARS = 12;

export function shortId(id: string): string {
  return id.length > SHORT_ID_CHARS ? id.slice(0, SHORT_ID_CHARS) : id;
}

const UNITS: readonly [string, number][] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
];

/** `5m ago`, `in 7d`, `just now`, or `-` when there is no time; rounded to the largest unit. */
export function relativeTime(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return '-';
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const delta = now.getTime() - at;
  const abs = Math.abs(delta);
  if (abs < 1000) return 'just now';
  const [unit, size] = UNITS.find(([, ms]) => abs >= ms) ?? ['s', 1000];
  const text = `${Math.round(abs / size)}${unit}`;
  return delta > 0 ? `${text} ago` : `in ${text}`;
}

export function list(values: readonly string[]): string {
  return values.length === 0 ? '-' : values.join(',');
}

export function orDash(value: string | number | null | undefined): string {
  return value === null || value === undefined || value === '' ? '-' : String(value);
}

/** A fact's value as one table cell. */
export function factText(value: unknown): string {
  if (Array.isArray(value)) return value.map(String).join(', ');
  return typeof value === 'string' ? value : JSON.stringify(value);
}
