#!/bin/sh
# Build the validator's libFuzzer target with clang (validator.c instrumented, linked against
# the host's static library sluice_core for its JSON accessors) and run it for a bounded time
# (FUZZ_SECONDS, default 20) from the seed corpus, ASan+UBSan; prints executions per run. Skips (77) without clang/libFuzzer.
set -eu
src=${SLUICE_SOURCE_DIR:?}
build=${SLUICE_BUILD_DIR:?}
out=$build/tests/validator/fuzz
command -v clang >/dev/null 2>&1 || { echo "clang not found: skipping"; exit 77; }
[ -f "$build/host/libsluice_core.a" ] || { echo "no $build/host/libsluice_core.a"; exit 1; }
mkdir -p "$out"
clang -g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/include" -I/usr/include/cjson \
    -DFUZZ_SCHEMA="\"$src/pipelines/ecommerce-event.schema.yaml\"" \
    "$src/tests/validator/fuzz_validator.c" "$build/host/libsluice_core.a" \
    $(pkg-config --libs yaml-0.1 libcjson rdkafka) -lpthread -ldl -lm -o "$out/fuzz_validator" \
    || { echo "cannot build with libFuzzer: skipping"; exit 77; }
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$src"/tests/validator/fuzz-corpus/* "$corpus"/
exec "$out/fuzz_validator" -max_total_time="${FUZZ_SECONDS:-20}" -max_len=8192 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/" -dict="$src/tests/validator/fuzz.dict" "$corpus"
