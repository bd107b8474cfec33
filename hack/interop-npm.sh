#!/usr/bin/env bash
# Installs the Node packages of the interop suite, exactly as pinned by
# test/interop/node/package-lock.json (npm ci), once per lock file, into a cache outside the
# repository, and links them as test/interop/node/node_modules (gitignored). Quiet and instant
# when the cache is current; a clean clone installs once (a few seconds, from the npm registry).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=test/interop/node
sum="$(sha256sum "$dir/package-lock.json" | cut -c1-16)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/m2m-operator/interop-node/$sum"
if [[ ! -f "$cache/.installed" ]]; then
  echo "interop: installing the pinned Node packages into $cache" >&2
  rm -rf "$cache.tmp"
  mkdir -p "$cache.tmp"
  cp "$dir/package.json" "$dir/package-lock.json" "$cache.tmp/"
  (cd "$cache.tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$cache.tmp/.installed"
  rm -rf "$cache"
  mv "$cache.tmp" "$cache"
fi
if [[ -e "$dir/node_modules" && ! -L "$dir/node_modules" ]]; then
  rm -rf "$dir/node_modules" # a local npm install: replace it by the pinned cache
fi
ln -sfn "$cache/node_modules" "$dir/node_modules"
