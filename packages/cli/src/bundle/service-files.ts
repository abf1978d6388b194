/**
 * The text files of an agent release tree and of its packages: the `bin/flotilla-agent` wrapper,
 * the launcher that runs the loader, the systemd unit and the install script
 * (docs/agent-lifecycle.md).
 */

/**
 * glibc's malloc for the agent (and the loader), unless `GLIBC_TUNABLES` is set already: a fixed
 * mmap threshold of 32 KiB, so that the buffers of an update (chunks of 16–256 KiB, pack and
 * decompression buffers) are mapped on their own and given back when freed. With glibc's default
 * (a threshold that grows to the largest buffer freed) they came from the main heap, and 40 MB of
 * it stayed after an update, free but not returned (docs/agent-lifecycle.md "Footprint").
 */
export const AGENT_MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=32768:glibc.malloc.trim_threshold=131072';

/**
 * The agent's V8 flags. `--expose-gc`: the agent collects garbage after an update.
 * `--max-semi-space-size=1`: a young generation of 1 MiB semi-spaces instead of up to 16 MiB; an
 * update allocates fast, and a large young generation both grows the heap by 20 MB and lets dead
 * buffers wait longer for the collection that frees their memory (docs/agent-lifecycle.md
 * "Footprint"). `--no-opt`: no optimizing compiler (TurboFan) for JavaScript; the agent's hot paths
 * (hashing, compression, SQLite) are native, and the compiler's pages of the Node binary and its
 * code stay out of memory: idle 59.4 MB instead of 63.3 MB. WebAssembly still compiles.
 */
export const AGENT_NODE_FLAGS = '--expose-gc --max-semi-space-size=1 --no-opt';

/**
 * `bin/flotilla-agent`: the bundle's own Node running the bundled JavaScript, with the memory
 * settings above; `FLOTILLA_NODE_OPTIONS` adds flags, `GLIBC_TUNABLES` replaces the malloc ones.
 */
export const AGENT_WRAPPER = `#!/bin/sh
here=$(dirname -- "$0")
GLIBC_TUNABLES=\${GLIBC_TUNABLES:-${AGENT_MALLOC_TUNABLES}}
export GLIBC_TUNABLES
exec "$here/node" ${AGENT_NODE_FLAGS} \${FLOTILLA_NODE_OPTIONS:-} "$here/../lib/flotilla-agent.mjs" "$@"
`;

/**
 * \`<install>/bin/flotilla-loader-launch\` (copied out of the release so that it never changes
 * under a running service): runs the loader from \`current\`; starts it again when it exits 75 (it
 * was updated); after three starts in a row without a healthy agent, points \`current\` back at
 * \`previous\` (a new loader that cannot run undoes itself).
 */
export const AGENT_LAUNCHER = `#!/bin/sh
# flotilla-loader-launch [-- AGENT OPTIONS]: runs the Flotilla loader (docs/agent-lifecycle.md).
set -u
install_dir=\${FLOTILLA_INSTALL_DIR:-$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)}
boots="$install_dir/run/loader-boots"
mkdir -p "$install_dir/run"
while :; do
  n=$(cat "$boots" 2>/dev/null || echo 0)
  case $n in ''|*[!0-9]*) n=0 ;; esac
  if [ "$n" -ge 3 ] && [ -L "$install_dir/previous" ]; then
    echo "flotilla-loader-launch: $n loader starts without a healthy agent; switching back to $(readlink "$install_dir/previous")" >&2
    ln -sfn "$(readlink "$install_dir/previous")" "$install_dir/current.launch.tmp" &&
      mv -T "$install_dir/current.launch.tmp" "$install_dir/current"
    n=0
  fi
  echo $((n + 1)) >"$boots"
  "$install_dir/current/bin/flotilla-agent" loader --install-dir "$install_dir" \${FLOTILLA_LOADER_ARGS:-} "$@"
  rc=$?
  [ "$rc" -eq 75 ] || exit "$rc"
done
`;

/** The sandbox both units share (docs/agent-lifecycle.md "The systemd unit"). */
function hardening(installDir: string): string {
  return `User=flotilla-agent
Group=flotilla-agent
Environment=FLOTILLA_INSTALL_DIR=${installDir}
# Memory settings (malloc, V8): bin/flotilla-agent sets them; GLIBC_TUNABLES or
# FLOTILLA_NODE_OPTIONS in agent.env override them (docs/agent-lifecycle.md "Footprint").
EnvironmentFile=-/etc/flotilla-agent/agent.env
StateDirectory=flotilla-agent
StateDirectoryMode=0700
UMask=0027
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${installDir} /var/lib/flotilla-agent
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
CapabilityBoundingSet=`;
}

/** The agent's options in both units. */
const AGENT_OPTIONS =
  '--data-dir /var/lib/flotilla-agent --registration-key-file /etc/flotilla-agent/registration.key $FLOTILLA_AGENT_ARGS';

/**
 * The systemd units, hardened; the agent runs as the \`flotilla-agent\` system user.
 * \`flotilla-agent.service\`: the loader and the agent, always running (the default).
 * \`flotilla-agent-update.timer\` + \`.service\`: timer mode, as mig-loader runs from cron: every
 * 15 minutes the loader runs the agent for one update pass (\`loader --once\`) and both exit.
 */
export function systemdUnits(
  installDir: string,
  launcher = `${installDir}/bin/flotilla-loader-launch`,
): Record<string, string> {
  return {
    'flotilla-agent.service': `[Unit]
Description=Flotilla device agent (loader and agent)
Documentation=https://github.com/flotilla/flotilla/blob/main/docs/agent-lifecycle.md
Wants=network-online.target
After=network-online.target
Conflicts=flotilla-agent-update.service flotilla-agent-update.timer

[Service]
Type=simple
ExecStart=${launcher} -- ${AGENT_OPTIONS}
Restart=always
RestartSec=5
KillMode=mixed
TimeoutStopSec=60
${hardening(installDir)}

[Install]
WantedBy=multi-user.target
`,
    'flotilla-agent-update.service': `[Unit]
Description=Flotilla device agent, one update pass (timer mode)
Documentation=https://github.com/flotilla/flotilla/blob/main/docs/agent-lifecycle.md
Wants=network-online.target
After=network-online.target
Conflicts=flotilla-agent.service

[Service]
Type=oneshot
Environment=FLOTILLA_LOADER_ARGS=--once
ExecStart=${launcher} -- ${AGENT_OPTIONS}
KillMode=mixed
TimeoutStartSec=1h
TimeoutStopSec=60
${hardening(installDir)}
`,
    'flotilla-agent-update.timer': `[Unit]
Description=Flotilla device agent, an update pass every 15 minutes (timer mode)
Documentation=https://github.com/flotilla/flotilla/blob/main/docs/agent-lifecycle.md
Conflicts=flotilla-agent.service

[Timer]
OnBootSec=2min
OnUnitInactiveSec=15min
RandomizedDelaySec=2min

[Install]
WantedBy=timers.target
`,
  };
}

/**
 * The install script the server serves at GET /install.sh (\`__FLOTILLA_SERVER__\` is replaced
 * with the server's URL): \`curl -fsSL SERVER/install.sh | sh -s -- --registration-key KEY\`.
 */
export function installScript(): string {
  return `#!/bin/sh
# Installs the Flotilla agent: curl -fsSL SERVER/install.sh | sh -s -- --registration-key KEY
# Options: --registration-key KEY (required)  --tags a,b  --server URL  --root DIR (install into a
# directory tree used as the machine; no service is set up)  --no-start  --mode service|timer
# (timer: an update pass every 15 minutes instead of an agent that always runs)
set -eu
server='__FLOTILLA_SERVER__'
key=''
tags=''
root=''
start=1
mode=service
while [ $# -gt 0 ]; do
  case $1 in
    --registration-key) key=$2; shift 2 ;;
    --tags) tags=$2; shift 2 ;;
    --server) server=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    --mode) mode=$2; shift 2 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$key" ] || { echo "install.sh: --registration-key KEY is required" >&2; exit 2; }
case $mode in
  service) unit=flotilla-agent.service ;;
  timer) unit=flotilla-agent-update.timer ;;
  *) echo "install.sh: --mode is service or timer, not $mode" >&2; exit 2 ;;
esac
case $(uname -m) in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "install.sh: no agent bundle for $(uname -m)" >&2; exit 1 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
name="flotilla-agent-linux-$arch.tar.gz"
curl -fsSL "$server/downloads/agent/$name" -o "$tmp/$name"
curl -fsSL "$server/downloads/agent/$name.sha256" -o "$tmp/$name.sha256"
(cd "$tmp" && sha256sum -c "$name.sha256" >/dev/null) || { echo "install.sh: $name does not match its checksum" >&2; exit 1; }
mkdir "$tmp/tree"
tar -xzf "$tmp/$name" -C "$tmp/tree"
version=$(sed -n 's/.*"version": *"\\([^"]*\\)".*/\\1/p' "$tmp/tree/flotilla-agent.json")
[ -n "$version" ] || { echo "install.sh: the bundle has no version" >&2; exit 1; }
install_dir="$root/opt/flotilla-agent"
data_dir="$root/var/lib/flotilla-agent"
etc_dir="$root/etc/flotilla-agent"
mkdir -p "$install_dir/versions" "$install_dir/bin" "$data_dir" "$etc_dir"
rm -rf "$install_dir/versions/$version"
mv "$tmp/tree" "$install_dir/versions/$version"
ln -sfn "versions/$version" "$install_dir/current.tmp"
mv -T "$install_dir/current.tmp" "$install_dir/current"
cp "$install_dir/current/bin/flotilla-loader-launch" "$install_dir/bin/flotilla-loader-launch.tmp"
mv "$install_dir/bin/flotilla-loader-launch.tmp" "$install_dir/bin/flotilla-loader-launch"
(umask 077 && printf '%s\\n' "$key" >"$etc_dir/registration.key")
args="--server $server"
[ -z "$tags" ] || args="$args --tags $tags"
printf 'FLOTILLA_AGENT_ARGS=%s\\n' "$args" >"$etc_dir/agent.env"
echo "installed flotilla-agent $version in $install_dir"
if [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  id flotilla-agent >/dev/null 2>&1 || useradd --system --home-dir "$data_dir" --shell /usr/sbin/nologin flotilla-agent
  chown -R flotilla-agent:flotilla-agent "$install_dir" "$data_dir" "$etc_dir"
  for f in flotilla-agent.service flotilla-agent-update.service flotilla-agent-update.timer; do
    cp "$install_dir/current/share/flotilla-agent/$f" /etc/systemd/system/
  done
  systemctl daemon-reload
  if [ "$start" = 1 ]; then systemctl enable --now "$unit"; else systemctl enable "$unit"; fi
  echo "$unit is enabled; logs: journalctl -u flotilla-agent -u flotilla-agent-update"
elif [ "$mode" = timer ]; then
  echo "run an update pass with: FLOTILLA_LOADER_ARGS=--once $install_dir/bin/flotilla-loader-launch -- --data-dir $data_dir --registration-key-file $etc_dir/registration.key $args"
else
  echo "start it with: $install_dir/bin/flotilla-loader-launch -- --data-dir $data_dir --registration-key-file $etc_dir/registration.key $args"
fi
`;
}
