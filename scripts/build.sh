#!/bin/bash
# Builds sluice into build/ (and, with --asan, an ASan+UBSan build into build-asan/ and a
# ThreadSanitizer build, clang, into build-tsan/).
set -euo pipefail
cd "$(dirname "$0")/.."
setup() { # dir, options...
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then meson setup --reconfigure "$dir" "$@" >/dev/null
  else meson setup "$dir" "$@" >/dev/null; fi
  ninja -C "$dir" >/dev/null
}
setup build
if [ "${1:-}" = "--asan" ]; then
  setup build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
  CC=clang setup build-tsan -Dbuildtype=debug -Db_sanitize=thread -Db_lundef=false
fi
if [ -f web/package.json ]; then (cd web && npm run --silent build >/dev/null); fi
