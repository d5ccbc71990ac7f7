#!/bin/bash
# Benchmark: file-source -> file-sink (fsync on) for N NDJSON lines of ~100 bytes, through the
# full host (supervisor, child process, acks, commits). Prints records/s; never fails on time.
#   bash bench/file-copy.sh [N] [build dir]
set -euo pipefail
N=${1:-1000000}
B=$(cd "${2:-$(dirname "$0")/../build}" && pwd)
T=$(mktemp -d /tmp/sluice-bench.XXXXXX); trap 'rm -rf "$T"' EXIT
cd "$T"
awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++) printf "{\"event_id\":\"e%09d\",\"event_type\":\"page_view\",\"user_id\":\"u%05d\",\"ts\":\"2026-11-24T10:00:00.000Z\"}\n", i, i % 50000 }' > in.ndjson
cat > p.yaml <<'Y'
pipeline: bench-copy
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: ""}}
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
best=0
for run in 1 2 3; do
  rm -f out.ndjson
  s=$(date +%s%N)
  "$B/host/sluice" run --no-rest p.yaml 2>/dev/null
  e=$(date +%s%N)
  cmp -s in.ndjson out.ndjson || { echo "output differs from input" >&2; exit 1; }
  rate=$(( N * 1000000000 / (e - s) ))
  echo "run $run: $N records in $(( (e - s) / 1000000 )) ms = $rate records/s"
  [ "$rate" -gt "$best" ] && best=$rate
done
echo "file-source -> file-sink: best $best records/s ($(( $(stat -c %s in.ndjson) / N )) bytes/record, fsync on)"
