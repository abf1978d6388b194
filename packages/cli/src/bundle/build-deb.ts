/**
 * `flotilla agent deb`: the agent bundle as a Debian package, built with dpkg-deb
 * (docs/agent-lifecycle.md "Debian package"). dpkg owns the release it shipped
 * (/usr/lib/flotilla-agent/<version>) and the launcher; the loader owns its install directory
 * (/var/lib/flotilla-agent-loader: versions/, current, previous), where releases deployed later live.
 */
import { chmod, cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { arch } from 'node:process';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { FlotillaError } from '@flotilla/protocol';
import { runTool } from './exec.js';
import { AGENT_LAUNCHER, systemdUnits } from './service-files.js';

export const DEB_INSTALL_DIR = '/var/lib/flotilla-agent-loader';
const LIB = '/usr/lib/flotilla-agent';

const DEB_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'armhf' };

export interface DebOptions {
  bundleDir: string;
  outDir: string;
  maintainer?: string;
}

export async function buildAgentDeb(options: DebOptions): Promise<{ file: string; version: string }> {
  const manifest = JSON.parse(await readFile(join(options.bundleDir, 'flotilla-agent.json'), 'utf8')) as {
    version?: string;
  };
  const version = manifest.version;
  if (typeof version !== 'string' || !/^[0-9][A-Za-z0-9.+~-]*$/.test(version))
    throw new FlotillaError(
      'FLT_VALIDATION',
      `a Debian version must start with a digit; the bundle's version is ${String(version)}`,
    );
  const debArch = DEB_ARCH[arch];
  if (debArch === undefined) throw new FlotillaError('FLT_VALIDATION', `no Debian architecture for ${arch}`);
  const stage = join(options.outDir, `flotilla-agent_${version}_${debArch}`);
  await rm(stage, { recursive: true, force: true });
  const lib = join(stage, LIB.slice(1));
  await mkdir(join(lib, 'bin'), { recursive: true });
  await cp(options.bundleDir, join(lib, version), { recursive: true, verbatimSymlinks: true });
  await writeFile(join(lib, 'bin', 'flotilla-loader-launch'), AGENT_LAUNCHER, { mode: 0o755 });
  // Debian ships stripped objects (lintian: unstripped-binary-or-object); the symbols are not needed to run.
  const release = join(lib, version);
  const objects = (
    await runTool('find', [release, '-type', 'f', '(', '-name', '*.node', '-o', '-path', '*/bin/node', ')'])
  )
    .split('\n')
    .filter((line) => line !== '');
  await runTool('strip', [
    '--strip-unneeded',
    '--remove-section=.comment',
    '--remove-section=.note',
    ...objects,
  ]);
  const units = join(stage, 'lib', 'systemd', 'system');
  await mkdir(units, { recursive: true });
  for (const [name, text] of Object.entries(
    systemdUnits(DEB_INSTALL_DIR, `${LIB}/bin/flotilla-loader-launch`),
  ))
    await writeFile(join(units, name), text, { mode: 0o644 });
  const doc = join(stage, 'usr', 'share', 'doc', 'flotilla-agent');
  await mkdir(doc, { recursive: true });
  await writeFile(join(doc, 'copyright'), COPYRIGHT);
  const date = new Date().toUTCString().replace('GMT', '+0000');
  const maintainer = options.maintainer ?? 'Flotilla maintainers <flotilla@example.org>';
  await writeFile(
    join(doc, 'changelog.gz'),
    gzipSync(
      `flotilla-agent (${version}) stable; urgency=medium\n\n  * Agent release ${version}.\n\n -- ${maintainer}  ${date}\n`,
      {
        level: 9,
      },
    ),
  );
  const overrides = join(stage, 'usr', 'share', 'lintian', 'overrides');
  await mkdir(overrides, { recursive: true });
  await writeFile(join(overrides, 'flotilla-agent'), LINTIAN_OVERRIDES);
  const debian = join(stage, 'DEBIAN');
  await mkdir(debian, { recursive: true });
  const sizeKb = Number((await runTool('du', ['-sk', '--exclude=DEBIAN', stage])).split(/\s/)[0]);
  await writeFile(
    join(debian, 'control'),
    [
      'Package: flotilla-agent',
      `Version: ${version}`,
      `Architecture: ${debArch}`,
      `Maintainer: ${maintainer}`,
      `Installed-Size: ${sizeKb}`,
      'Depends: adduser, libc6',
      'Section: admin',
      'Priority: optional',
      'Homepage: https://github.com/flotilla/flotilla',
      'Description: Flotilla device agent and its loader',
      ' The Flotilla agent keeps the apps assigned to this machine at their signed',
      ' releases; its loader installs and updates the agent itself and switches',
      ' back when a new agent does not reach the server.',
      '',
    ].join('\n'),
  );
  await writeScript(join(debian, 'postinst'), postinst(version));
  await writeScript(join(debian, 'prerm'), PRERM);
  await writeScript(join(debian, 'postrm'), POSTRM);
  await runTool('find', [stage, '-type', 'd', '-exec', 'chmod', '0755', '{}', '+']);
  const file = join(options.outDir, `flotilla-agent_${version}_${debArch}.deb`);
  // gzip: xz took minutes for the Node binary on a busy machine; the package is still about 40 MB.
  await runTool('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z6', '--build', stage, file]);
  await rm(stage, { recursive: true, force: true });
  return { file, version };
}

async function writeScript(path: string, text: string): Promise<void> {
  await writeFile(path, text);
  await chmod(path, 0o755);
}

function postinst(version: string): string {
  return `#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd flotilla-agent >/dev/null; then
    adduser --system --group --home /var/lib/flotilla-agent --no-create-home flotilla-agent >/dev/null
  fi
  install -d -o flotilla-agent -g flotilla-agent -m 0700 /var/lib/flotilla-agent
  install -d -o flotilla-agent -g flotilla-agent -m 0755 ${DEB_INSTALL_DIR} ${DEB_INSTALL_DIR}/versions
  install -d -m 0750 -g flotilla-agent /etc/flotilla-agent
  # The packaged release joins the loader's versions; an explicit package upgrade makes it current.
  ln -sfn ${LIB}/${version} ${DEB_INSTALL_DIR}/versions/${version}
  ln -sfn versions/${version} ${DEB_INSTALL_DIR}/current.dpkg-tmp
  mv -T ${DEB_INSTALL_DIR}/current.dpkg-tmp ${DEB_INSTALL_DIR}/current
  chown -h flotilla-agent:flotilla-agent ${DEB_INSTALL_DIR}/current ${DEB_INSTALL_DIR}/versions/${version}
fi
# Timer mode (docs/agent-lifecycle.md): FLOTILLA_AGENT_MODE=timer in /etc/flotilla-agent/agent.env.
unit=flotilla-agent.service
if grep -qs '^FLOTILLA_AGENT_MODE=timer' /etc/flotilla-agent/agent.env; then
  unit=flotilla-agent-update.timer
fi
if [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
  deb-systemd-helper enable "$unit" >/dev/null || true
  if [ -s /etc/flotilla-agent/registration.key ]; then
    deb-systemd-invoke restart "$unit" >/dev/null || true
  else
    echo "flotilla-agent: put a registration key in /etc/flotilla-agent/registration.key and FLOTILLA_AGENT_ARGS=--server URL in /etc/flotilla-agent/agent.env, then: systemctl start flotilla-agent"
  fi
fi
exit 0
`;
}

const PRERM = `#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  deb-systemd-invoke stop flotilla-agent.service flotilla-agent-update.timer flotilla-agent-update.service >/dev/null || true
fi
exit 0
`;

const POSTRM = `#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
  if command -v deb-systemd-helper >/dev/null; then
    deb-systemd-helper purge flotilla-agent.service flotilla-agent-update.timer >/dev/null || true
  fi
  rm -rf ${DEB_INSTALL_DIR} /var/lib/flotilla-agent /etc/flotilla-agent
  if getent passwd flotilla-agent >/dev/null && command -v deluser >/dev/null; then
    deluser --system flotilla-agent >/dev/null || true
  fi
fi
exit 0
`;

const COPYRIGHT = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: flotilla
Source: https://github.com/flotilla/flotilla

Files: *
Copyright: 2026 Flotilla contributors
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 can be found in
 /usr/share/common-licenses/Apache-2.0.
`;

/**
 * What lintian reports and why it is accepted: the bundle carries its own Node binary and native
 * modules (the point of a self-contained agent), built elsewhere.
 */
const LINTIAN_OVERRIDES = `# The self-contained bundle ships its own Node binary, as nodejs.org builds it (docs/agent-lifecycle.md).
flotilla-agent: embedded-library zlib [usr/lib/flotilla-agent/*/bin/node]
flotilla-agent: hardening-no-pie [usr/lib/flotilla-agent/*/bin/node]
`;
