/**
 * Inventory = built-in facts + custom facts from `inventoryDir` (Mender's inventory scripts):
 * every executable file is run and prints `name=value` lines; every non-executable `*.json` file
 * holds an object of facts. A bad script or file is logged and skipped, never fatal.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Facts, LIMITS } from '@flotilla/protocol';
import type { FactValue } from '@flotilla/protocol';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config.js';
import { matches } from '../util/schema.js';
import { collectBuiltinFacts } from './builtin.js';
import { checkFactObject } from './parse.js';
import type { Parsed } from './parse.js';
import { runInventoryScript } from './script.js';

export type InventoryConfig = Pick<
  AgentConfig,
  'dataDir' | 'inventoryDir' | 'inventoryScriptTimeoutMs' | 'inventoryScriptMaxOutputBytes'
>;

const MAX_JSON_FILE_BYTES = 1024 * 1024;

/** Collects the device's facts now. Never throws for a bad custom source; logs and skips it. */
export async function collectInventory(
  config: InventoryConfig,
  options: { logger?: Logger } = {},
): Promise<Facts> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const facts: Record<string, FactValue> = { ...(await collectBuiltinFacts(config.dataDir)) };
  const sources = await customSources(config, logger);
  // Sources are read concurrently so one slow script does not delay the others; merged in file order.
  const results = await Promise.all(sources.map((source) => source.read()));
  for (const [index, result] of results.entries()) {
    const source = sources[index] as Source;
    if (!result.ok) {
      logger.warn({ source: source.path, reason: result.reason }, 'inventory source skipped');
      continue;
    }
    for (const [name, value] of Object.entries(result.facts)) {
      if (name in facts) {
        logger.warn(
          { source: source.path, fact: name },
          'inventory fact already set by an earlier source; ignored',
        );
      } else if (Object.keys(facts).length >= LIMITS.factsPerDevice) {
        logger.warn(
          { source: source.path, fact: name, limit: LIMITS.factsPerDevice },
          'too many inventory facts; ignored',
        );
      } else {
        facts[name] = value;
      }
    }
  }
  if (!matches(Facts, facts)) throw new Error('collected inventory violates the Facts schema');
  return facts;
}

interface Source {
  path: string;
  read: () => Promise<Parsed>;
}

async function customSources(config: InventoryConfig, logger: Logger): Promise<Source[]> {
  let names: string[];
  try {
    names = (await readdir(config.inventoryDir)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      logger.warn(
        { dir: config.inventoryDir, err: e },
        'cannot read inventory directory; only built-in facts reported',
      );
    }
    return [];
  }
  const sources: Source[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const path = join(config.inventoryDir, name);
    let info;
    try {
      info = await stat(path);
    } catch {
      continue;
    }
    if (!info.isFile()) continue;
    if ((info.mode & 0o111) !== 0) {
      const limits = {
        timeoutMs: config.inventoryScriptTimeoutMs,
        maxOutputBytes: config.inventoryScriptMaxOutputBytes,
      };
      sources.push({ path, read: () => runInventoryScript(path, limits) });
    } else if (name.endsWith('.json')) {
      sources.push({ path, read: () => readJsonFacts(path, info.size) });
    }
  }
  return sources;
}

async function readJsonFacts(path: string, size: number): Promise<Parsed> {
  if (size > MAX_JSON_FILE_BYTES) return { ok: false, reason: `larger than ${MAX_JSON_FILE_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    return {
      ok: false,
      reason: e instanceof SyntaxError ? `not valid JSON (${e.message})` : `cannot read (${String(e)})`,
    };
  }
  return checkFactObject(value);
}
