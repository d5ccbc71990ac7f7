#!/bin/bash
# The build configures without its tests (meson setup -Dtests=false), as a packager would.
set -u
dir=$(mktemp -d /tmp/sluice-meson.XXXXXX)
trap 'rm -rf "$dir"' EXIT
if ! meson setup "$dir/b" "$SLUICE_SOURCE_DIR" -Dtests=false > "$dir/log" 2>&1; then
  cat "$dir/log"
  echo "FAIL: meson setup -Dtests=false does not configure"
  exit 1
fi
echo "ok: meson setup -Dtests=false configures"
