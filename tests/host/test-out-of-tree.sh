#!/bin/bash
# The example stage builds out of tree against the installed header with pkg-config, as
# docs/writing-a-stage.md says, and runs in a pipeline.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
meson install -C "$SLUICE_BUILD_DIR" --destdir "$T/root" --no-rebuild >"$T/install.log" 2>&1 \
  || { cat "$T/install.log"; fail "meson install failed"; }
pc=$(find "$T/root" -name sluice.pc | head -1)
[ -n "$pc" ] || fail "sluice.pc not installed"
ok "sluice.pc installed"
prefix=$(sed -n 's/^prefix=//p' "$pc")
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR="$T/root"
cp -r "$SRC/examples/tag-stage" "$T/tag"
make -C "$T/tag" >"$T/make.log" 2>&1 || { cat "$T/make.log"; fail "out-of-tree build failed"; }
ok "tag.so built with pkg-config --cflags sluice"
cflags=$(pkg-config --cflags sluice)
assert_contains "$cflags" "$T/root" "pkg-config --cflags sluice points into the installed tree"
inc=$(echo $cflags | sed "s/^-I//; s/ .*//")
[ -f "$inc/sluice/stage.h" ] || fail "no stage.h under $inc"
ok "the installed header is where pkg-config says"
cd "$T"
printf '{"id":1}\n{"id":2}\n' > in.ndjson
cat > p.yaml <<Y
pipeline: oot
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: ""}}
  - {name: t, use: $T/tag/tag.so, with: {field: via, value: out-of-tree}}
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
"$SLUICE" run p.yaml 2>log.txt || { cat log.txt; fail "pipeline with the out-of-tree stage failed"; }
assert_eq "$(cat out.ndjson)" $'{"id":1,"via":"out-of-tree"}\n{"id":2,"via":"out-of-tree"}' "out-of-tree stage ran"
echo "all out-of-tree checks passed ($CHECKS)"
