#!/bin/sh
# Build the transform stage's config-reader libFuzzer target with clang (transform.c and the
# expression library instrumented, linked against the host's static library) and run it for a
# bounded time (FUZZ_SECONDS, default 20) from the seed corpus, ASan+UBSan. Skips (77) without clang.
set -eu
src=${SLUICE_SOURCE_DIR:?}
build=${SLUICE_BUILD_DIR:?}
out=$build/tests/transform/fuzz
command -v clang >/dev/null 2>&1 || { echo "clang not found: skipping"; exit 77; }
[ -f "$build/host/libsluice_core.a" ] || { echo "no $build/host/libsluice_core.a"; exit 1; }
mkdir -p "$out"
c="$src/plugins/common"
clang -g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/include" -I/usr/include/cjson \
    "$src/tests/transform/fuzz_transform.c" "$src/plugins/transform/transform_ops.c" \
    "$c/sl_expr.c" "$c/sl_expr_lex.c" "$c/sl_expr_eval.c" "$build/host/libsluice_core.a" \
    $(pkg-config --libs yaml-0.1 libcjson rdkafka libmicrohttpd libpq) -lpthread -ldl -lm -o "$out/fuzz_transform" \
    || { echo "cannot build with libFuzzer: skipping"; exit 77; }
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$src"/tests/transform/fuzz-corpus/* "$corpus"/
exec "$out/fuzz_transform" -max_total_time="${FUZZ_SECONDS:-20}" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/" -dict="$src/tests/expr/fuzz.dict" "$corpus"
