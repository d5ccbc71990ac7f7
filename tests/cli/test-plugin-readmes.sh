#!/usr/bin/env bash
# Docs from the code: every plugin README's config table is what `sluice plugins describe NAME
# --markdown` prints, and the check fails (with a diff) the moment one drifts.
. "$(dirname "$0")/../lib/testlib.sh"
CHECK="$SRC/scripts/plugin-readmes.sh"
export SLUICE_BIN SLUICE_PLUGIN_PATH

out=$("$CHECK" --check 2>&1); rc=$?
assert_eq "$rc" 0 "every in-tree README matches its descriptor: $out"
n=$(ls "$SRC"/plugins/*/README.md | wc -l)
[ "$n" -ge 9 ] || fail "expected the READMEs of every in-tree plugin, found $n"
for f in "$SRC"/plugins/*/README.md; do
  name=$(basename "$(dirname "$f")")
  grep -q "sluice plugins describe $name --markdown" "$f" || fail "$f has no generated config table"
done
ok "all $n plugin READMEs carry a generated table"

# A README that says something else than the code fails the check, naming file:line and the row.
mkdir -p "$T/plugins/window-kpi" "$T/plugins/dedup"
sed 's/| `retention` | duration, 0..365d | `48h` |/| `retention` | duration, 0..365d | `24h` |/' \
  "$SRC/plugins/window-kpi/README.md" >"$T/plugins/window-kpi/README.md"
! cmp -s "$T/plugins/window-kpi/README.md" "$SRC/plugins/window-kpi/README.md" || fail "the test did not change the README"
out=$("$CHECK" --check "$T/plugins/window-kpi/README.md" 2>&1); rc=$?
assert_eq "$rc" 1 "a changed default fails the check"
assert_contains "$out" "README.md:" "the failure names the README"
assert_contains "$out" '-| `retention` | duration, 0..365d | `24h` |' "the diff shows the README's row"
assert_contains "$out" '+| `retention` | duration, 0..365d | `48h` |' "and the descriptor's"
# A row missing (a key added to the code, not to the docs)
grep -v '^| `seen_field`' "$SRC/plugins/dedup/README.md" >"$T/plugins/dedup/README.md"
out=$("$CHECK" --check "$T/plugins/dedup/README.md" 2>&1); rc=$?
assert_eq "$rc" 1 "a key missing from the README fails the check"
assert_contains "$out" '+| `seen_field` |' "and shows the missing row"
out=$("$CHECK" --check "$T/plugins/file-sink/README.md" 2>&1); rc=$?
assert_eq "$rc" 1 "a stage without a README fails the check"
assert_contains "$out" "file-sink/README.md: missing" "naming it"
# --write puts it right again
"$CHECK" --write "$T/plugins/dedup/README.md" >/dev/null
assert_file_eq "$T/plugins/dedup/README.md" "$SRC/plugins/dedup/README.md" "--write regenerates the table"
out=$("$SLUICE" plugins describe dedup --markdown)
assert_contains "$out" '| key | type | default | description |' "describe --markdown prints the table header"
assert_contains "$out" '| `ttl` | duration, 1ms..4294967295s | `10m` |' "bounds in the units people write"
echo "all $CHECKS checks passed"
