import { readFileSync } from 'node:fs';
import { coerceConfigField, envNameOf } from './fields.js';
import type { ConfigFieldSpec } from './fields.js';
import { parse } from 'yaml';

/** Reads a YAML config file into a plain object; problems are appended, never thrown. */
export function readYamlConfigFile(path: string, problems: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    problems.push(
      `${path}: cannot read configuration file (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
    return {};
  }
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    problems.push(
      `${path}: not valid YAML (${e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e)})`,
    );
    return {};
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push(`${path}: must be a mapping of keys to values`);
    return {};
  }
  return doc as Record<string, unknown>;
}

/**
 * Collects a component's configuration from its sources in order (file < env < flags: each `set`
 * overrides the one before), converting each value to its key's kind and remembering where it
 * came from, so that every problem is reported with its source, all together.
 */
export class ConfigCollector {
  readonly problems: string[] = [];
  readonly merged: Record<string, unknown> = {};
  readonly origins: Record<string, string> = {};

  constructor(private readonly fields: Readonly<Record<string, ConfigFieldSpec>>) {}

  /** Sets `key` from a source named `label` (a file and key, an env name, a flag). */
  readonly set = (key: string, value: unknown, label: string): void => {
    const result = coerceConfigField(this.fields, key, value);
    if (!result.ok) {
      this.problems.push(`${label}: ${result.problem}`);
      return;
    }
    this.merged[key] = result.value;
    this.origins[key] = label;
  };

  /** A YAML file: unknown keys, and secrets that may only come from the environment, are problems. */
  readFile(path: string): void {
    for (const [key, value] of Object.entries(readYamlConfigFile(path, this.problems))) {
      const field = this.fields[key];
      if (!field) this.problems.push(`${path}: unknown key "${key}"`);
      else if (field.envOnly) this.problems.push(`${path}: "${key}" may only be set with ${envNameOf(key)}`);
      else this.set(key, value, `${path}: ${key}`);
    }
  }
}
