#!/bin/sh
# Installs OSTree and zstd, then builds the benchmark's data sets (two consecutive releases each) in
# $FLOTILLA_BENCH_CACHE (default /tmp/flotilla-bench-cache). Everything comes from the npm registry
# and the Debian archive; a data set already built is kept.
set -eu
CACHE="${FLOTILLA_BENCH_CACHE:-/tmp/flotilla-bench-cache}"
mkdir -p "$CACHE"

if ! command -v ostree >/dev/null || ! command -v zstd >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ostree zstd >/dev/null
fi

# npm <name> <dir> <spec...>: an npm install with dependencies, as a project would have it.
npm_tree() {
  dir="$CACHE/$1"
  shift
  [ -f "$dir/.done" ] && return 0
  rm -rf "$dir" && mkdir -p "$dir"
  echo '{"name":"tree","private":true}' >"$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error "$@"
  rm -f "$dir/package-lock.json" "$dir/node_modules/.package-lock.json"
  touch "$dir/.done"
}

# deb_tree <dir> <pkg=version...>: the packages unpacked over one another, like a root filesystem.
deb_tree() {
  dir="$CACHE/$1"
  shift
  [ -f "$dir/.done" ] && return 0
  rm -rf "$dir" "$dir.debs" && mkdir -p "$dir/root" "$dir.debs"
  (cd "$dir.debs" && apt-get download -qq "$@")
  for deb in "$dir.debs"/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  rm -rf "$dir.debs"
  # A release tree holds no absolute symlinks (FLT_PATH_UNSAFE): point each at the same file
  # inside the unpacked root instead, for both Flotilla and OSTree.
  find "$dir/root" -type l -lname '/*' | while read -r link; do
    target=$(readlink "$link")
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$dir/root$target")" "$link"
  done
  touch "$dir/.done"
}

# 1. A large npm package with its dependencies, two releases.
npm_tree npm-v1 typescript@5.8.3 @babel/core@7.26.0 @babel/preset-env@7.26.0
npm_tree npm-v2 typescript@5.9.3 @babel/core@7.26.10 @babel/preset-env@7.26.9

# 2. Debian packages before and after a security upgrade (bookworm → bookworm-security / -updates).
deb_tree deb-v1 \
  python3.11-minimal=3.11.2-6+deb12u8 libpython3.11-minimal=3.11.2-6+deb12u8 \
  libpython3.11-stdlib=3.11.2-6+deb12u8 libpython3.11=3.11.2-6+deb12u8 \
  libssl3=3.0.17-1~deb12u2 openssl=3.0.17-1~deb12u2 \
  systemd=252.38-1~deb12u1 perl-modules-5.36=5.36.0-7+deb12u3
deb_tree deb-v2 \
  python3.11-minimal=3.11.2-6+deb12u9 libpython3.11-minimal=3.11.2-6+deb12u9 \
  libpython3.11-stdlib=3.11.2-6+deb12u9 libpython3.11=3.11.2-6+deb12u9 \
  libssl3=3.0.22-1~deb12u2 openssl=3.0.22-1~deb12u2 \
  systemd=252.39-1~deb12u2 perl-modules-5.36=5.36.0-7+deb12u4

# 3. Large prebuilt binaries rebuilt for a new release (Go-built esbuild, Rust-built swc).
npm_tree bin-v1 @esbuild/linux-x64@0.25.0 @swc/core-linux-x64-gnu@1.11.21
npm_tree bin-v2 @esbuild/linux-x64@0.25.1 @swc/core-linux-x64-gnu@1.11.22
echo "data sets ready in $CACHE"
