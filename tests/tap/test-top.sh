#!/bin/bash
# sluice top under tmux: a real host with a small file pipeline; `sluice top` runs in a detached
# tmux session (its own server socket), the screen must show the pipeline and its rates, and
# the pause key must pause the pipeline (checked over REST).
. "$SLUICE_SOURCE_DIR/tests/tap/taplib.sh"
command -v tmux >/dev/null || fail "tmux is not installed (scripts/packages.txt)"
start_flow
A=${BASE#http://}
SOCK="$T/tmux.sock"
TM=(tmux -S "$SOCK" -f /dev/null)
stop_tmux() { "${TM[@]}" kill-server 2>/dev/null; }
trap 'stop_tmux; _cleanup' EXIT

"${TM[@]}" new-session -d -s top -x 120 -y 30 \
  "SLUICE_STATE_DIR='$SLUICE_STATE_DIR' '$SLUICE' top --rest '$A' 2>'$T/top.err'; sleep 30"
TOP_PID=$("${TM[@]}" list-panes -t top -F '#{pane_pid}')
screen() { "${TM[@]}" capture-pane -p -t top; }
screen_has() { screen | grep -q "$1"; }
screen_lacks() { ! screen | grep -q "$1"; }
# A stage line with a rate: "check  validator  <in/s> ..." with a non-zero in/s.
has_rates() { screen | grep -Eq '^ +check +validator +[0-9]+\.[0-9] +[0-9]+\.[0-9]' && screen | grep -Eq 'check +validator +[1-9][0-9]*\.[0-9]'; }
wait_for has_rates || { screen; cat "$T/top.err"; fail "sluice top did not show the pipeline's rates"; }
screen >"$T/screen1.txt"
assert_contains "$(cat "$T/screen1.txt")" "flow" "the screen names the pipeline"
assert_contains "$(cat "$T/screen1.txt")" "RUNNING" "and its state"
grep -Eq '^ +in +file-source' "$T/screen1.txt" || fail "the source stage is missing: $(cat "$T/screen1.txt")"
ok "every stage is listed with its rates"

"${TM[@]}" send-keys -t top p
wait_for state_is flow PAUSED || { screen; fail "the pause key did not pause the pipeline"; }
ok "p paused the pipeline (REST says PAUSED)"
wait_for screen_has PAUSED || { screen; fail "the screen did not show PAUSED"; }
ok "the screen shows PAUSED"
"${TM[@]}" send-keys -t top r
wait_for state_is flow RUNNING || fail "the resume key did not resume the pipeline"
ok "r resumed the pipeline"
"${TM[@]}" send-keys -t top q
wait_for screen_lacks 'sluice top' || { screen; fail "q did not quit"; }
ok "q quits"
[ -s "$T/top.err" ] && fail "sluice top wrote errors: $(cat "$T/top.err")"
stop_tmux
[ -n "$TOP_PID" ] && kill "$TOP_PID" 2>/dev/null
stop_flow
echo "all $CHECKS checks passed"
