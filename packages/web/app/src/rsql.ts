/** Writing RSQL (docs/devices.md "Selecting devices") from the visual filter builder's rows. */

export interface Condition {
  selector: string;
  op: string;
  value: string;
}

export const SELECTORS: { value: string; label: string; values?: string[] }[] = [
  { value: 'status', label: 'status', values: ['pending', 'accepted', 'rejected', 'revoked'] },
  { value: 'online', label: 'online', values: ['true', 'false'] },
  { value: 'tags', label: 'tag' },
  { value: 'hostname', label: 'hostname' },
  { value: 'id', label: 'device id' },
  { value: 'arch', label: 'arch (fact)' },
  { value: 'os', label: 'os (fact)' },
  { value: 'agentVersion', label: 'agent version' },
  { value: 'lastSeenAt', label: 'last seen' },
  { value: 'enrolledAt', label: 'enrolled' },
  { value: 'registrationKeyId', label: 'registration key' },
];

export const OPERATORS: { value: string; label: string }[] = [
  { value: '==', label: 'is' },
  { value: '!=', label: 'is not' },
  { value: '=in=', label: 'is one of' },
  { value: '=out=', label: 'is none of' },
  { value: '=lt=', label: 'less than' },
  { value: '=le=', label: 'at most' },
  { value: '=gt=', label: 'greater than' },
  { value: '=ge=', label: 'at least' },
];

const RESERVED = /[\s"'();,=!<>~]/;

/** A value as RSQL: bare when it can be, else double-quoted with `"` and `\` escaped. */
export function quote(value: string): string {
  if (value !== '' && !RESERVED.test(value)) return value;
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function conditionText(c: Condition): string {
  const selector = c.selector.trim();
  if (c.op === '=in=' || c.op === '=out=') {
    const items = c.value
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
    return `${selector}${c.op}(${items.map(quote).join(',')})`;
  }
  return `${selector}${c.op}${quote(c.value.trim())}`;
}

/** The builder's rows joined with `;` (all) or `,` (any); incomplete rows are left out. */
export function buildRsql(conditions: Condition[], join: 'all' | 'any'): string {
  const parts = conditions
    .filter((c) => c.selector.trim() !== '' && c.value.trim() !== '')
    .map(conditionText);
  return parts.join(join === 'all' ? ';' : ',');
}

/** `id=in=(…)` selecting exactly these devices, for bulk deploys. */
export function idFilter(ids: string[]): string {
  return `id=in=(${ids.map(quote).join(',')})`;
}
