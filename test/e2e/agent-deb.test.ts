/**
 * The agent's Debian package (issue 20, docs/agent-lifecycle.md "Debian package"): built with
 * dpkg-deb from the bundle, checked by lintian, installed with `dpkg -i` (its unit checked with
 * `systemd-analyze verify` where systemd is not PID 1) and purged without leftovers. Needs root
 * and dpkg-deb (and lintian, systemd-analyze when installed); skipped otherwise.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Cluster, cliBin } from './harness.js';

const has = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
const root = process.getuid?.() === 0;
const installed = () => spawnSync('dpkg-query', ['-W', 'flotilla-agent']).status === 0;
const skip =
  !root || !has('dpkg-deb')
    ? 'needs root and dpkg-deb'
    : installed()
      ? 'flotilla-agent is already installed here'
      : false;

function run(command: string, args: string[]) {
  const r = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** dpkg, waiting (up to 5 minutes) while another process holds its lock (apt on a shared machine). */
function dpkg(args: string[]) {
  for (let i = 0; ; i++) {
    const r = run('dpkg', args);
    if (r.code === 0 || !/lock/.test(r.out) || i >= 150) return r;
    spawnSync('sleep', ['2']);
  }
}

void describe('the agent .deb', { skip }, () => {
  const cluster = new Cluster();
  let deb: string;
  const version = '1.0.0';

  before(async () => {
    const work = await cluster.tempDir('flt-deb-');
    const bundle = run(process.execPath, [
      cliBin,
      'agent',
      'bundle',
      '--out',
      join(work, 'bundle'),
      '--version',
      version,
    ]);
    assert.equal(bundle.code, 0, bundle.out);
    const built = run(process.execPath, [
      cliBin,
      'agent',
      'deb',
      '--bundle',
      join(work, 'bundle'),
      '--out',
      work,
      '--json',
    ]);
    assert.equal(built.code, 0, built.out);
    deb = (JSON.parse(built.out) as { file: string }).file;
  });
  after(async () => {
    if (installed()) dpkg(['--purge', 'flotilla-agent']);
    await cluster.cleanup();
  });

  void test('lintian finds no error', { skip: has('lintian') ? false : 'lintian is not installed' }, () => {
    const r = run('lintian', ['--tag-display-limit', '0', deb]);
    assert.doesNotMatch(r.out, /^E: /m, r.out);
    assert.equal(r.code, 0, r.out);
  });

  void test('dpkg -i installs it, its unit verifies, and dpkg --purge removes everything', () => {
    const install = dpkg(['-i', deb]);
    assert.equal(install.code, 0, install.out);
    assert.equal(
      run('/usr/lib/flotilla-agent/1.0.0/bin/flotilla-agent', ['--version']).out.trim(),
      `flotilla-agent ${version}`,
    );
    return (async () => {
      assert.equal(await readlink('/var/lib/flotilla-agent-loader/current'), `versions/${version}`);
      assert.equal(run('getent', ['passwd', 'flotilla-agent']).code, 0, 'the system user exists');
      if (has('systemd-analyze')) {
        // The service, and timer mode's timer and one-pass service.
        const verify = run('systemd-analyze', [
          'verify',
          '/lib/systemd/system/flotilla-agent.service',
          '/lib/systemd/system/flotilla-agent-update.service',
          '/lib/systemd/system/flotilla-agent-update.timer',
        ]);
        assert.doesNotMatch(verify.out, /flotilla-agent(-update)?\.(service|timer):\d+:/, verify.out);
      }
      const purge = dpkg(['--purge', 'flotilla-agent']);
      assert.equal(purge.code, 0, purge.out);
      for (const path of [
        '/usr/lib/flotilla-agent',
        '/var/lib/flotilla-agent-loader',
        '/var/lib/flotilla-agent',
        '/etc/flotilla-agent',
        '/lib/systemd/system/flotilla-agent.service',
        '/lib/systemd/system/flotilla-agent-update.timer',
      ])
        assert.equal(existsSync(path), false, `${path} is gone`);
      assert.notEqual(run('getent', ['passwd', 'flotilla-agent']).code, 0, 'the system user is gone');
    })();
  });
});
