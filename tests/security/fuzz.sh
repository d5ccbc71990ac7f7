#!/bin/sh
# Build one of the host's parser fuzzers with clang + libFuzzer (ASan + UBSan, linked against
# the host's static library) and run it for FUZZ_SECONDS (default 20) from its checked-in corpus.
#   fuzz.sh yaml       the YAML config loader (ytree_load_opts, with and without ${VAR})
#   fuzz.sh rest_json  the REST JSON -> YAML conversion, then loading its output as YAML
# Prints libFuzzer's final stats (stat::number_of_executed_units). Skips (77) without clang.
set -eu
which=${1:?usage: fuzz.sh yaml|rest_json}
src=${SLUICE_SOURCE_DIR:?}
build=${SLUICE_BUILD_DIR:?}
out=$build/tests/security/fuzz
command -v clang >/dev/null 2>&1 || { echo "clang not found: skipping"; exit 77; }
[ -f "$build/host/libsluice_core.a" ] || { echo "no $build/host/libsluice_core.a"; exit 1; }
mkdir -p "$out"
clang -g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/include" -I"$src/host" -I"$src/host/control" -I/usr/include/cjson \
    "$src/tests/security/fuzz_$which.c" "$build/host/libsluice_core.a" \
    $(pkg-config --libs yaml-0.1 libcjson rdkafka libmicrohttpd libpq) -lpthread -ldl -lm -o "$out/fuzz_$which" \
    || { echo "cannot build with libFuzzer: skipping"; exit 77; }
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$src/tests/security/fuzz-corpus/$which"/* "$corpus"/
"$out/fuzz_$which" -max_total_time="${FUZZ_SECONDS:-20}" -max_len=16384 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/$which-" "$corpus" 2>&1 | tail -n 40
