import { readFileSync } from 'node:fs';
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
