#!/bin/bash
# Pipeline processes die with their supervisor: SIGTERM or SIGKILL the supervisor at a random
# moment of start-up or steady state, and no pipeline process may survive it (an orphan keeps
# consuming; with a restarted supervisor two copies would run). Seeded: SEED=N replays a run.
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
SEED=${SEED:-$(( $(date +%s) % 100000 ))}
ROUNDS=${ROUNDS:-10}
echo "seed $SEED, $ROUNDS rounds (replay with SEED=$SEED)"
RANDOM=$SEED
echo '{"n":1}' > in.ndjson
survivors() { pgrep -f -- "__pipeline $T/" || true; }
gone() { [ -z "$(survivors)" ]; }
for r in $(seq 1 "$ROUNDS"); do
  mkdir "r$r"
  for p in a b; do
    cat > "r$r/$p.yaml" <<Y
pipeline: $p
stages:
  - {name: in, use: file-source, with: {path: $T/in.ndjson, follow: true, offset_file: ""}}
  - {name: out, use: file-sink, with: {path: $T/r$r/$p.out}}
Y
  done
  delay=$(( RANDOM % 1500 ))
  if (( RANDOM % 2 )); then sig=KILL; else sig=TERM; fi # no subshell: it would reseed RANDOM
  "$SLUICE" run --no-rest "r$r" 2>>"$T/log-r$r.txt" &
  sup=$!
  sleep "$(printf '0.%03d' "$delay")"
  kill -"$sig" "$sup" 2>/dev/null
  wait "$sup" 2>/dev/null
  if ! wait_for gone; then
    left=$(survivors)
    kill -KILL $left 2>/dev/null
    fail "round $r (SIG$sig after $delay ms): pipeline processes survived their supervisor: $left"
  fi
  ok "round $r: SIG$sig after $delay ms leaves no pipeline process"
done
! grep -q 'Sanitizer' "$T"/log-r*.txt || fail "sanitizer report in a log"
