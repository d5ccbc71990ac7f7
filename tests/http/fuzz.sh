#!/bin/sh
# Build the strict JSON check + http-source body parser libFuzzer target with clang (ASan+UBSan,
# the sources compiled in) and run it for a bounded time (FUZZ_SECONDS, default 20) from the
# checked-in corpus. Prints libFuzzer's final stats (executions per run). Skips (77) without
# clang/libFuzzer.
set -eu
src=${SLUICE_SOURCE_DIR:?}
build=${SLUICE_BUILD_DIR:?}
out=$build/tests/http/fuzz
command -v clang >/dev/null 2>&1 || { echo "clang not found: skipping"; exit 77; }
mkdir -p "$out"
clang -g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/include" -I/usr/include/cjson \
    "$src/tests/http/fuzz_jsoncheck.c" "$src/host/jsoncheck.c" \
    "$src/plugins/http-source/http-source.c" "$src/plugins/http-source/listen.c" \
    $(pkg-config --libs libcjson libcurl libmicrohttpd) -lpthread -lm -o "$out/fuzz_jsoncheck" \
    || { echo "cannot build with libFuzzer: skipping"; exit 77; }
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$src"/tests/http/fuzz-corpus/* "$corpus"/
exec "$out/fuzz_jsoncheck" -max_total_time="${FUZZ_SECONDS:-20}" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/" -dict="$src/tests/http/fuzz.dict" "$corpus"
