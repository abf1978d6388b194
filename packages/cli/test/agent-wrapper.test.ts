import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_WRAPPER } from '../src/bundle/service-files.js';

/**
 * `bin/flotilla-agent` of a bundle whose `bin/node` only reports how it was started: its arguments
 * one per line, then GLIBC_TUNABLES.
 */
function runWrapper(env: Record<string, string>): { args: string[]; tunables: string } {
  const dir = mkdtempSync(join(tmpdir(), 'flt-wrapper-'));
  try {
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'flotilla-agent'), AGENT_WRAPPER);
    writeFileSync(
      join(dir, 'bin', 'node'),
      '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\necho "tunables=${GLIBC_TUNABLES-unset}"\n',
    );
    chmodSync(join(dir, 'bin', 'flotilla-agent'), 0o755);
    chmodSync(join(dir, 'bin', 'node'), 0o755);
    const r = spawnSync(join(dir, 'bin', 'flotilla-agent'), ['agent', '--version'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    return { args: lines.slice(0, -1), tunables: lines.at(-1)!.replace(/^tunables=/, '') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void test('bin/flotilla-agent starts Node with the memory settings (docs/agent-lifecycle.md "Footprint")', () => {
  const { args, tunables } = runWrapper({});
  assert.deepEqual(args.slice(0, 3), ['--expose-gc', '--max-semi-space-size=1', '--no-opt']);
  assert.match(args[3]!, /\/lib\/flotilla-agent\.mjs$/);
  assert.deepEqual(args.slice(4), ['agent', '--version']);
  assert.equal(tunables, 'glibc.malloc.mmap_threshold=32768:glibc.malloc.trim_threshold=131072');
});

void test("bin/flotilla-agent keeps the operator's GLIBC_TUNABLES and adds FLOTILLA_NODE_OPTIONS", () => {
  const { args, tunables } = runWrapper({
    GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1',
    FLOTILLA_NODE_OPTIONS: '--max-old-space-size=256',
  });
  assert.equal(tunables, 'glibc.malloc.hugetlb=1');
  assert.deepEqual(args.slice(0, 4), [
    '--expose-gc',
    '--max-semi-space-size=1',
    '--no-opt',
    '--max-old-space-size=256',
  ]);
});
