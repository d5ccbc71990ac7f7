#!/bin/bash
# README command 2: install what is missing, build (normal, ASan+UBSan, TSan), run every test in
# the first two builds and the host and stage suites in the TSan build, and end with one line
# "N passed, N failed" over all three.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }
if ! bash scripts/build.sh --asan; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
passed=0; failed=0
# count BUILD_DIR: adds the meson test results of one build to the totals.
count() {
  local log="$1/meson-logs/testlog.json" p f
  [ -f "$log" ] || { failed=$((failed + 1)); return; }
  p=$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["result"] in ("OK","EXPECTEDFAIL")))' "$log")
  f=$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["result"] not in ("OK","EXPECTEDFAIL","SKIP")))' "$log")
  passed=$((passed + p)); failed=$((failed + f))
}
echo "== tests (release build)"
# The fuzzers build their own ASan+UBSan binaries whatever the build, so they run once, below.
meson test -C build --no-rebuild --print-errorlogs --num-processes 2 --no-suite fuzz "$@"
count build
echo "== tests (ASan + UBSan build)"
# The sanitizer run covers everything except the suites marked slow (benchmark-sized loads).
meson test -C build-asan --no-rebuild --print-errorlogs --num-processes 2 --no-suite slow "$@"
count build-asan
echo "== tests (ThreadSanitizer build: host and stage suites)"
# The in-process suites where threads meet (task threads, acks, status, stages); halt on the
# first race so it fails the test. Its time is printed: keep it small.
tsan_start=$(date +%s)
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" meson test -C build-tsan --no-rebuild --print-errorlogs \
  --num-processes 2 --suite host --suite dedup --suite window-kpi --no-suite slow "$@"
count build-tsan
echo "figure: ThreadSanitizer run $(( $(date +%s) - tsan_start )) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
