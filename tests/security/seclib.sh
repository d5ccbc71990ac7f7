# seclib.sh — helpers for the security tests: a supervisor with REST on a free port, a token,
# a pipeline directory and a data directory, all under $T.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
# The token: sent with every call. Configured in the host config and in SLUICE_REST_TOKEN (which
# a supervisor with authentication on by default prefers), so the tests work either way.
TOKEN=sec-$$-token
export SLUICE_REST_TOKEN=$TOKEN
export SLUICE_STATE_DIR=$T/state
mkdir -p "$T/pdir" "$T/data" "$T/state"
# The data directory REST pipelines' files stay in (rest.data_dir in a host config does the same).
export SLUICE_DATA_DIR=$T/data

# sec_start [EXTRA-ARGS...] — sluice run -c $T/host.yaml with REST and a pipeline directory.
sec_start() {
  cat > "$T/host.yaml" <<Y
rest: {listen: "127.0.0.1:0", token: $TOKEN, pipeline_dir: pdir}
Y
  start_sluice "$T/log.txt" -c "$T/host.yaml" "$@"
}

# post_pipeline NAME JSON-CONFIG — POST /connectors; the status code is in $T/code.
post_pipeline() { req POST /connectors "{\"name\": \"$1\", \"config\": $2}" >/dev/null; }

# A minimal file -> file pipeline as JSON, with extra source/sink settings spliced in.
file_pipeline() { # SRC-WITH SINK-WITH
  echo "{\"stages\": [{\"name\": \"in\", \"use\": \"file-source\", \"with\": {$1}}, {\"name\": \"out\", \"use\": \"file-sink\", \"with\": {$2}}]}"
}
