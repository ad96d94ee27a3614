#!/usr/bin/env bash
# Installs the agent CLIs the suite drives into a cache folder outside the clone and prints
# the folder holding their executables. Pinned (default): package.json + package-lock.json
# here, installed once per lock (the folder is named by the lock's hash), reused afterwards.
# `--latest`: the newest published versions, into a fresh folder, for `make agents-latest`.
# Everything comes from the npm registry; no package's install step fetches from elsewhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${LLMPROXY_AGENTS_CACHE:-$HOME/.cache/llmproxy-agents}
mkdir -p "$cache"
if [ "${1:-}" = "--latest" ]; then
  dest=$(mktemp -d "$cache/latest-XXXXXX")
  names=$(node -e 'console.log(Object.keys(require(process.argv[1]).dependencies).map(n => n + "@latest").join(" "))' "$here/package.json")
  echo '{"name": "llmproxy-agent-clis-latest", "private": true}' >"$dest/package.json"
  # shellcheck disable=SC2086
  (cd "$dest" && npm install --no-audit --no-fund --loglevel=error --save-exact $names >&2)
  echo "$dest/node_modules/.bin"
  exit 0
fi
hash=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)
dest="$cache/$hash"
if [ ! -f "$dest/.complete" ]; then
  rm -rf "$dest" "$dest.partial"
  mkdir -p "$dest.partial"
  cp "$here/package.json" "$here/package-lock.json" "$dest.partial/"
  (cd "$dest.partial" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$dest.partial/.complete"
  mv "$dest.partial" "$dest"
fi
echo "$dest/node_modules/.bin"
