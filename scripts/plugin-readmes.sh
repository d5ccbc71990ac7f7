#!/bin/bash
# The config table of every plugins/NAME/README.md is generated from the stage's descriptor
# (`sluice plugins describe NAME --markdown`), between the two "config table" markers.
#   scripts/plugin-readmes.sh --check   exit 1, with a diff, when a README's table and its
#                                       descriptor disagree (tests/cli: plugin-readmes)
#   scripts/plugin-readmes.sh --write   regenerate the tables (after changing a config table)
#   ... MODE plugins/NAME/README.md ... only these (NAME: the directory, the stage's name)
# SLUICE_BIN (default build/host/sluice) and SLUICE_PLUGIN_PATH (default build/plugins) pick the build.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:---check}
export SLUICE_BIN=${SLUICE_BIN:-build/host/sluice}
export SLUICE_PLUGIN_PATH=${SLUICE_PLUGIN_PATH:-build/plugins}
shift || true
if [ $# -eq 0 ]; then # every in-tree stage: a plugins/ folder with a meson.build (not common/)
  for d in plugins/*/; do [ -f "$d/meson.build" ] && set -- "$@" "${d}README.md"; done
fi
exec python3 - "$mode" "$@" <<'PY'
import difflib, os, re, subprocess, sys

BEGIN = ("<!-- config table: generated from the stage's descriptor by `sluice plugins describe {name} --markdown`;"
         " edit the config table in the code, then run scripts/plugin-readmes.sh --write -->")
END = "<!-- end of config table -->"
mode, readmes = sys.argv[1], sys.argv[2:]
bad = 0
for path in readmes:
    name = os.path.basename(os.path.dirname(path))
    if not os.path.isfile(path):
        print(f"{path}: missing: every stage documents its config table in its README"); bad += 1; continue
    r = subprocess.run([os.environ["SLUICE_BIN"], "plugins", "describe", name, "--markdown"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{path}: sluice plugins describe {name} failed: {r.stderr.strip()}"); bad += 1; continue
    block = BEGIN.format(name=name) + "\n" + r.stdout + END + "\n"
    text = open(path).read()
    m = re.search(r"<!-- config table:.*?-->\n.*?" + re.escape(END) + r"\n", text, re.S)
    if not m and mode == "--write":
        # the first hand-written table of the README: its header names key, type and default
        m = re.search(r"^\| key \| type \| default \|.*\n(?:\|.*\n)*", text, re.M)
    if not m:
        print(f"{path}:1: no config table (markers {BEGIN[:20]}... / {END}); run scripts/plugin-readmes.sh --write")
        bad += 1; continue
    if m.group(0) == block: continue
    if mode == "--write":
        open(path, "w").write(text[:m.start()] + block + text[m.end():]); print(f"wrote {path}")
    else:
        line = text[:m.start()].count("\n") + 1
        print(f"{path}:{line}: the config table differs from the descriptor of {name} (- README, + descriptor):")
        sys.stdout.writelines(difflib.unified_diff(m.group(0).splitlines(True), block.splitlines(True), path, name, n=0))
        bad += 1
sys.exit(1 if bad and mode == "--check" else 0)
PY
