#!/bin/bash
# Installs the Debian packages in scripts/packages.txt that are missing (needs root or sudo),
# and the web build's npm packages when web/ exists. Safe to run again: it does nothing when
# everything is there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
missing=()
while read -r pkg; do
  case "$pkg" in ''|'#'*) continue ;; esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < "$here/packages.txt"
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The PostgreSQL package starts a system cluster we do not use; tests start their own.
if [ -f "$here/../web/package.json" ] && [ ! -d "$here/../web/node_modules" ]; then
  echo "deps: npm ci in web/"
  (cd "$here/../web" && npm ci --no-audit --no-fund --loglevel=error)
fi
exit 0
