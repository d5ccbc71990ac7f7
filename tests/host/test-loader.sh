#!/bin/bash
# The loader refuses broken stages with a clear message and exit code 2, and never crashes.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
B=$BAD_STAGES

# refuse NAME EXPECTED_MESSAGE: a plugin dir holding only that .so makes `sluice plugins` exit 2.
refuse() {
  local d="$T/$1" out rc
  mkdir -p "$d"
  out=$("$SLUICE" plugins --plugin-path "$d" 2>&1); rc=$?
  assert_eq "$rc" 2 "$1: exit code 2"
  assert_contains "$out" "$2" "$1: message"
}

mkdir -p "$T/not-elf" && echo "this is not a library" > "$T/not-elf/notes.so"
refuse not-elf "notes.so: not a shared object (no ELF header)"

mkdir -p "$T/truncated" && head -c 700 "$B/bad-magic.so" > "$T/truncated/cut.so"
refuse truncated "cut.so: not a shared object (truncated ELF file"

mkdir -p "$T/no-entry" && cp "$B/no-entry.so" "$T/no-entry/"
refuse no-entry "no entry point 'sl_stage_entry'"

mkdir -p "$T/bad-magic" && cp "$B/bad-magic.so" "$T/bad-magic/"
refuse bad-magic "wrong magic 0xdeadbeef"

# The host's own minor, from the header it was built with.
MINOR=$(sed -n 's/^#define SL_ABI_MINOR \([0-9]*\).*/\1/p' "$SLUICE_SOURCE_DIR/include/sluice/stage.h")
mkdir -p "$T/bad-major" && cp "$B/bad-major.so" "$T/bad-major/"
refuse bad-major "built for stage ABI 2.0, but this sluice speaks ABI 1.$MINOR (major versions differ)"

mkdir -p "$T/bad-minor" && cp "$B/bad-minor.so" "$T/bad-minor/"
refuse bad-minor "built for stage ABI 1.$((MINOR + 7)), newer than this sluice's ABI 1.$MINOR"

mkdir -p "$T/dup" && cp "$B/dup-a.so" "$B/dup-b.so" "$T/dup/"
refuse dup "duplicate stage name 'dup-stage'"
out=$("$SLUICE" plugins --plugin-path "$T/dup" 2>&1)
assert_contains "$out" "dup-a.so" "duplicate message names the first file"
assert_contains "$out" "dup-b.so" "duplicate message names the second file"

# A pipeline naming a bad .so by path is refused the same way, with the config position.
cat > "$T/p.yaml" <<Y
pipeline: p
stages:
  - {name: in, use: file-source, with: {path: /dev/null}}
  - {name: out, use: $T/bad-major/bad-major.so}
Y
out=$("$SLUICE" validate "$T/p.yaml" 2>&1); rc=$?
assert_eq "$rc" 2 "pipeline with a bad .so path exits 2"
assert_contains "$out" "p.yaml:4:22: stage 'out': " "refusal names file:line:col"
assert_contains "$out" "major versions differ" "refusal says why"

# The good plugins list and describe.
out=$("$SLUICE" plugins 2>&1); rc=$?
assert_eq "$rc" 0 "plugins lists"
assert_contains "$out" "file-source" "file-source listed"
assert_contains "$out" "file-sink" "file-sink listed"
out=$("$SLUICE" plugins describe file-source --json)
echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["name"]=="file-source" and d["kind"]=="source"; assert any(c["key"]=="path" and c["required"] for c in d["config"]), d' \
  || fail "describe --json is not the schema"
ok "describe --json parses and holds the schema"
# A stage loaded by path works next to the found ones.
out=$("$SLUICE" plugins describe tag --plugin-path "$TEST_STAGES" 2>&1)
assert_contains "$out" "value" "describe shows config keys"
echo "all loader checks passed ($CHECKS)"
