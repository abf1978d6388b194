/**
 * The agent's flags come from its one declaration of configuration keys (AGENT_CONFIG): every key
 * with a flag is accepted by the real `flotilla agent` executable and reaches the configuration
 * (docs/updates.md documents `--trusted-root`, which the CLI once refused).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { AGENT_CONFIG } from '@flotilla/agent';

const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
const bin = fileURLToPath(new URL(`../src/bin.${ext}`, import.meta.url));

function flotilla(args: string[]): { code: number | null; out: string } {
  const { FLOTILLA_SERVER: _server, FLOTILLA_AGENT_CONFIG: _config, ...env } = process.env;
  const result = spawnSync(process.execPath, [...process.execArgv, bin, ...args], {
    env: { ...env, FLOTILLA_LOG_FORMAT: 'json' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: result.status, out: `${result.stdout}${result.stderr}` };
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'flt-agent-flags-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

void test('flotilla agent --help lists a flag for every configuration key that declares one', () => {
  const { code, out } = flotilla(['agent', '--help']);
  assert.equal(code, 0, out);
  const flags = AGENT_CONFIG.cliOptions.filter((o) => o.property !== 'server').map((o) => o.flags);
  assert.ok(flags.includes('--trusted-root <file>'));
  for (const flag of flags) assert.ok(out.includes(flag), `--help shows ${flag}:\n${out}`);
});

void test('flotilla agent accepts --trusted-root FILE (docs/updates.md "Trust anchor")', (t) => {
  const dir = tempDir(t);
  const root = join(dir, 'root.json');
  writeFileSync(root, '{}\n');
  const { code, out } = flotilla([
    'agent',
    '--data-dir',
    join(dir, 'agent'),
    '--offline',
    '--trusted-root',
    root,
    '--dry-run',
  ]);
  assert.doesNotMatch(out, /unknown option/);
  assert.equal(code, 0, out);
});

void test('flag values reach the configuration: bad ones are listed together, named by their flag', (t) => {
  const dir = tempDir(t);
  const { code, out } = flotilla([
    'agent',
    '--data-dir',
    join(dir, 'agent'),
    '--trusted-root',
    '',
    '--stage-reuse',
    'sideways',
    '--fetch-deltas',
    'maybe',
    '--dry-run',
  ]);
  assert.notEqual(code, 0, out);
  assert.match(out, /FLT_CONFIG_INVALID|invalid agent configuration/);
  for (const flag of ['--trusted-root', '--stage-reuse', '--fetch-deltas'])
    assert.match(out, new RegExp(`${flag}: `), `the problem names ${flag}:\n${out}`);
});
