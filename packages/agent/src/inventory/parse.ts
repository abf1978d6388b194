/** Validation of custom facts against the protocol's `Facts` limits. */
import { LIMITS, NAME_PATTERN } from '@flotilla/protocol';
import type { FactValue } from '@flotilla/protocol';

const NAME = new RegExp(NAME_PATTERN);

export type Parsed = { ok: true; facts: Record<string, FactValue> } | { ok: false; reason: string };

/**
 * Parses an inventory script's output: one `name=value` per line, blank lines ignored, a name
 * repeated makes a list. Any other line makes the whole output invalid (Mender's rule).
 */
export function parseScriptOutput(text: string): Parsed {
  const values = new Map<string, string[]>();
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') continue;
    const eq = line.indexOf('=');
    const name = eq < 0 ? '' : line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (eq < 0 || !NAME.test(name))
      return { ok: false, reason: `line ${index + 1}: expected name=value with a valid name` };
    if (value.length > LIMITS.factValueChars)
      return {
        ok: false,
        reason: `line ${index + 1}: value longer than ${LIMITS.factValueChars} characters`,
      };
    const list = values.get(name) ?? [];
    if (list.length >= LIMITS.factArrayItems)
      return { ok: false, reason: `"${name}": more than ${LIMITS.factArrayItems} values` };
    list.push(value);
    values.set(name, list);
  }
  const facts: Record<string, FactValue> = {};
  for (const [name, list] of values) facts[name] = list.length === 1 ? (list[0] as string) : list;
  return { ok: true, facts };
}

/** Checks a parsed JSON document: an object of fact names to string, number, boolean or list of strings. */
export function checkFactObject(value: unknown): Parsed {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return { ok: false, reason: 'must be a JSON object' };
  const facts: Record<string, FactValue> = {};
  for (const [name, fact] of Object.entries(value)) {
    if (!NAME.test(name)) return { ok: false, reason: `invalid fact name "${name.slice(0, 80)}"` };
    const problem = factValueProblem(fact);
    if (problem) return { ok: false, reason: `"${name}": ${problem}` };
    facts[name] = fact as FactValue;
  }
  return { ok: true, facts };
}

function factValueProblem(value: unknown): string | null {
  if (typeof value === 'boolean') return null;
  if (typeof value === 'number') return Number.isFinite(value) ? null : 'number must be finite';
  if (typeof value === 'string')
    return value.length <= LIMITS.factValueChars ? null : `longer than ${LIMITS.factValueChars} characters`;
  if (Array.isArray(value)) {
    if (value.length > LIMITS.factArrayItems) return `more than ${LIMITS.factArrayItems} items`;
    const bad = (value as unknown[]).some(
      (item) => typeof item !== 'string' || item.length > LIMITS.factValueChars,
    );
    return !bad ? null : `list items must be strings of at most ${LIMITS.factValueChars} characters`;
  }
  return 'must be a string, number, boolean or list of strings';
}
