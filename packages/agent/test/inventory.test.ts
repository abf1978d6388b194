import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FLOTILLA_VERSION, Facts, LIMITS } from '@flotilla/protocol';
import { Value } from '@sinclair/typebox/value';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { collectInventory } from '../src/inventory/collect.js';
import type { InventoryConfig } from '../src/inventory/collect.js';
import { debianArch, parseOsRelease } from '../src/inventory/builtin.js';
import { factsHash } from '../src/inventory/hash.js';
import { parseScriptOutput } from '../src/inventory/parse.js';
import { tempDir } from '@flotilla/testkit';

interface Setup {
  config: InventoryConfig;
  warnings: { source?: string; reason?: string; msg: string }[];
  logger: Logger;
}

function setup(dir: string, overrides: Partial<InventoryConfig> = {}): Setup {
  const inventoryDir = join(dir, 'inventory.d');
  mkdirSync(inventoryDir, { recursive: true });
  const warnings: Setup['warnings'] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        warnings.push(JSON.parse(line) as Setup['warnings'][number]);
      },
    },
  );
  return {
    config: {
      dataDir: dir,
      inventoryDir,
      inventoryScriptTimeoutMs: 3000,
      inventoryScriptMaxOutputBytes: 4096,
      ...overrides,
    },
    warnings,
    logger,
  };
}

function script(dir: string, name: string, body: string) {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

void test('built-in facts are present and typed', async (t) => {
  const { config } = setup(tempDir(t));
  const facts = await collectInventory(config);
  assert.ok(Value.Check(Facts, facts));
  for (const name of ['os', 'arch', 'kernel', 'hostname', 'agent.version'])
    assert.equal(typeof facts[name], 'string', name);
  for (const name of ['cpus', 'memory.total_bytes', 'disk.total_bytes', 'disk.free_bytes']) {
    assert.equal(typeof facts[name], 'number', name);
    assert.ok((facts[name] as number) > 0, name);
  }
  assert.ok((facts['disk.free_bytes'] as number) <= (facts['disk.total_bytes'] as number));
  assert.ok(Array.isArray(facts['ip.addresses']));
  assert.equal(facts['agent.version'], FLOTILLA_VERSION);
  assert.equal(facts.os, process.platform);
});

void test('os-release parsing handles quotes and escapes', () => {
  const parsed = parseOsRelease(
    'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian \\"bookworm\\""\n# comment\nNAME=\'x y\'\n',
  );
  assert.deepEqual(parsed, { ID: 'debian', VERSION_ID: '12', PRETTY_NAME: 'Debian "bookworm"', NAME: 'x y' });
});

void test('scripts print name=value lines; a repeated name makes a list; JSON files add facts', async (t) => {
  const { config, warnings, logger } = setup(tempDir(t));
  script(
    config.inventoryDir,
    '10-site',
    'echo site=berlin\necho rack=r1\necho rack=r2\necho\necho "note=a=b"',
  );
  writeFileSync(
    join(config.inventoryDir, 'hardware.json'),
    JSON.stringify({ 'hw.model': 'pi4', 'hw.ram_gb': 4, 'hw.ok': true, 'hw.ports': ['a', 'b'] }),
  );
  writeFileSync(join(config.inventoryDir, 'README'), 'not executable, not json: ignored');
  const facts = await collectInventory(config, { logger });
  assert.equal(facts.site, 'berlin');
  assert.deepEqual(facts.rack, ['r1', 'r2']);
  assert.equal(facts.note, 'a=b');
  assert.equal(facts['hw.model'], 'pi4');
  assert.equal(facts['hw.ram_gb'], 4);
  assert.equal(facts['hw.ok'], true);
  assert.deepEqual(facts['hw.ports'], ['a', 'b']);
  assert.deepEqual(warnings, []);
});

void test('a script that hangs, fails, prints garbage or too much is skipped; the others still count', async (t) => {
  const { config, warnings, logger } = setup(tempDir(t), { inventoryScriptTimeoutMs: 500 });
  const dir = config.inventoryDir;
  script(dir, 'a-hangs', 'echo early=1\nsleep 30 &\nsleep 30');
  script(dir, 'b-garbage', 'echo "this is not a fact"');
  script(dir, 'c-too-much', 'yes big=xxxxxxxxxxxxxxxx');
  script(dir, 'd-fails', 'echo x=1\necho oops >&2\nexit 3');
  script(dir, 'e-bad-name', 'echo "bad name=1"');
  script(dir, 'f-good', 'echo good=yes');
  writeFileSync(join(dir, 'g-broken.json'), '{ not json');
  writeFileSync(join(dir, 'h-array.json'), '[1, 2]');
  writeFileSync(join(dir, 'i-nested.json'), '{"a": {"b": 1}}');
  writeFileSync(join(dir, 'j-binary'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]));
  chmodSync(join(dir, 'j-binary'), 0o755);
  const facts = await collectInventory(config, { logger });
  assert.equal(facts.good, 'yes');
  for (const name of ['early', 'big', 'x', 'a']) assert.equal(facts[name], undefined, name);
  const skipped = warnings
    .filter((w) => w.msg === 'inventory source skipped')
    .map((w) => (w.source ?? '').split('/').pop());
  assert.deepEqual(skipped, [
    'a-hangs',
    'b-garbage',
    'c-too-much',
    'd-fails',
    'e-bad-name',
    'g-broken.json',
    'h-array.json',
    'i-nested.json',
    'j-binary',
  ]);
  const reasons = new Map(warnings.map((w) => [(w.source ?? '').split('/').pop(), w.reason ?? '']));
  assert.match(reasons.get('a-hangs') ?? '', /timed out/);
  assert.match(reasons.get('c-too-much') ?? '', /more than 4096 bytes/);
  assert.match(reasons.get('d-fails') ?? '', /status 3: oops/);
});

void test('scripts do not see the registration key', async (t) => {
  const { config, logger } = setup(tempDir(t));
  script(
    config.inventoryDir,
    'env',
    'echo "key=${FLOTILLA_REGISTRATION_KEY:-none}"\necho "flag=$FLOTILLA_INVENTORY"',
  );
  const saved = process.env.FLOTILLA_REGISTRATION_KEY;
  process.env.FLOTILLA_REGISTRATION_KEY = 'flt_rk_topsecret';
  t.after(() => {
    if (saved === undefined) delete process.env.FLOTILLA_REGISTRATION_KEY;
    else process.env.FLOTILLA_REGISTRATION_KEY = saved;
  });
  const facts = await collectInventory(config, { logger });
  assert.equal(facts.key, 'none');
  assert.equal(facts.flag, '1');
});

void test('custom facts cannot override built-ins, and the total stays within the protocol limit', async (t) => {
  const { config, warnings, logger } = setup(tempDir(t));
  const many: Record<string, string> = { hostname: 'spoofed' };
  for (let i = 0; i < LIMITS.factsPerDevice; i++) many[`f${i}`] = 'v';
  writeFileSync(join(config.inventoryDir, 'many.json'), JSON.stringify(many));
  const facts = await collectInventory(config, { logger });
  assert.notEqual(facts.hostname, 'spoofed');
  assert.equal(Object.keys(facts).length, LIMITS.factsPerDevice);
  assert.ok(Value.Check(Facts, facts));
  assert.ok(warnings.some((w) => w.msg.includes('already set')));
  assert.ok(warnings.some((w) => w.msg.includes('too many')));
});

void test('script output limits follow the protocol', () => {
  assert.deepEqual(parseScriptOutput('a=1\r\nb=\n'), { ok: true, facts: { a: '1', b: '' } });
  assert.equal(parseScriptOutput(`a=${'x'.repeat(LIMITS.factValueChars + 1)}`).ok, false);
  assert.equal(parseScriptOutput('a=1\n'.repeat(LIMITS.factArrayItems + 1)).ok, false);
  assert.equal(parseScriptOutput('=novalue').ok, false);
  assert.equal(parseScriptOutput('-leading=1').ok, false);
});

void test('the facts hash ignores order and sees every change', () => {
  assert.equal(factsHash({ a: '1', b: 2 }), factsHash({ b: 2, a: '1' }));
  assert.notEqual(factsHash({ a: '1' }), factsHash({ a: 1 }));
  assert.notEqual(factsHash({ a: ['x', 'y'] }), factsHash({ a: ['y', 'x'] }));
  // Free disk space alone changing does not count as a change worth a report.
  assert.equal(factsHash({ a: '1', 'disk.free_bytes': 10 }), factsHash({ a: '1', 'disk.free_bytes': 20 }));
});

void test('a missing inventory directory yields the built-ins only', async (t) => {
  const dir = tempDir(t);
  const facts = await collectInventory({
    dataDir: dir,
    inventoryDir: join(dir, 'nope'),
    inventoryScriptTimeoutMs: 1000,
    inventoryScriptMaxOutputBytes: 1024,
  });
  assert.equal(facts['agent.version'], FLOTILLA_VERSION);
});

void test('architecture is reported with the names operators filter on (amd64, not x64)', () => {
  assert.equal(debianArch('x64'), 'amd64');
  assert.equal(debianArch('arm64'), 'arm64');
  assert.equal(debianArch('ia32'), '386');
  assert.equal(debianArch('riscv64'), 'riscv64');
});
