/**
 * Inventory facts ↔ device_facts rows. One row per value (a list has one row per item, ordinal
 * 0..n-1; an empty list keeps one marker row with ordinal -1 so that it survives a round trip).
 * `value_num` holds the number for numeric facts and for strings written as plain numbers, so that
 * `rack=gt=1` compares numerically whether the agent sent 2 or "2".
 */
import { FlotillaError, LIMITS, NAME_PATTERN } from '@flotilla/protocol';
import type { Facts, FactValue } from '@flotilla/protocol';
import { assertStorableText } from './text.js';
import type { Insertable, Selectable } from 'kysely';
import type { DeviceFactsTable } from '../db/schema.js';
import { numericValue } from './rsql/values.js';

export type FactRow = Insertable<DeviceFactsTable>;
type StoredFact = Pick<
  Selectable<DeviceFactsTable>,
  'name' | 'ordinal' | 'value_type' | 'value_text' | 'value_num'
>;

export const EMPTY_LIST_ORDINAL = -1;
const FACT_NAME = new RegExp(NAME_PATTERN);

/**
 * Checks what the `Facts` schema leaves open: it constrains names only through patternProperties,
 * so a name outside the pattern would otherwise pass with any value. Throws FLT_VALIDATION.
 */
export function assertValidFacts(facts: Facts): void {
  for (const [name, value] of Object.entries(facts as Record<string, unknown>)) {
    if (!FACT_NAME.test(name)) {
      throw new FlotillaError(
        'FLT_VALIDATION',
        `invalid fact name "${name.slice(0, 80)}" (letters, digits, _ . : / -)`,
        {
          details: { fact: name.slice(0, 80) },
        },
      );
    }
    if (!isFactValue(value)) {
      throw new FlotillaError(
        'FLT_VALIDATION',
        `fact "${name}" must be a string, number, boolean or list of strings`,
        {
          details: { fact: name },
        },
      );
    }
    for (const item of Array.isArray(value) ? value : [value]) {
      if (typeof item === 'string') assertStorableText(item, `fact "${name}"`);
    }
  }
}

function isFactValue(value: unknown): boolean {
  const text = (v: unknown) => typeof v === 'string' && v.length <= LIMITS.factValueChars;
  if (Array.isArray(value)) return value.length <= LIMITS.factArrayItems && value.every(text);
  return text(value) || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

export function factsToRows(deviceId: string, facts: Facts): FactRow[] {
  const rows: FactRow[] = [];
  for (const [name, value] of Object.entries(facts)) {
    if (Array.isArray(value)) {
      if (value.length === 0) {
        rows.push({
          device_id: deviceId,
          name,
          ordinal: EMPTY_LIST_ORDINAL,
          value_type: 'list',
          value_text: '',
          value_num: null,
        });
      }
      value.forEach((item, i) => rows.push(textRow(deviceId, name, i, 'list', item)));
    } else if (typeof value === 'number') {
      rows.push({
        device_id: deviceId,
        name,
        ordinal: 0,
        value_type: 'number',
        value_text: String(value),
        value_num: value,
      });
    } else if (typeof value === 'boolean') {
      rows.push({
        device_id: deviceId,
        name,
        ordinal: 0,
        value_type: 'boolean',
        value_text: String(value),
        value_num: null,
      });
    } else {
      rows.push(textRow(deviceId, name, 0, 'string', value));
    }
  }
  return rows;
}

function textRow(
  deviceId: string,
  name: string,
  ordinal: number,
  type: 'string' | 'list',
  text: string,
): FactRow {
  return {
    device_id: deviceId,
    name,
    ordinal,
    value_type: type,
    value_text: text,
    value_num: numericValue(text) ?? null,
  };
}

/** Rebuilds facts from rows (any order). */
export function rowsToFacts(rows: readonly StoredFact[]): Facts {
  const sorted = [...rows].sort((a, b) =>
    a.name === b.name ? a.ordinal - b.ordinal : a.name < b.name ? -1 : 1,
  );
  const facts: Record<string, FactValue> = {};
  for (const row of sorted) {
    if (row.value_type === 'list') {
      const list = (facts[row.name] as string[] | undefined) ?? [];
      if (row.ordinal !== EMPTY_LIST_ORDINAL) list.push(row.value_text);
      facts[row.name] = list;
    } else if (row.value_type === 'number') {
      facts[row.name] = Number(row.value_num ?? row.value_text);
    } else if (row.value_type === 'boolean') {
      facts[row.name] = row.value_text === 'true';
    } else {
      facts[row.name] = row.value_text;
    }
  }
  return facts;
}

/** Order-insensitive for keys, order-sensitive for list items. */
export function factsEqual(a: Facts, b: Facts): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every(
    (k) => Object.prototype.hasOwnProperty.call(b, k) && JSON.stringify(a[k]) === JSON.stringify(b[k]),
  );
}

/** The hostname and agent version an inventory implies (facts `hostname`, `agent.version`). */
export function identityFacts(facts: Facts): { hostname: string | null; agentVersion: string | null } {
  const hostname = facts.hostname;
  const agentVersion = facts['agent.version'];
  return {
    hostname: typeof hostname === 'string' && hostname !== '' ? hostname.slice(0, 255) : null,
    agentVersion: typeof agentVersion === 'string' && agentVersion !== '' ? agentVersion.slice(0, 64) : null,
  };
}
