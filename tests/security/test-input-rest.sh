#!/bin/bash
# Hostile JSON bodies on the REST API (issue 10): duplicate keys, NUL, invalid UTF-8, lone
# surrogates, trailing bytes and non-finite numbers are a 400 whose message gives the reason,
# and nothing is created. (A duplicate "name" or a name cut short at a NUL used to create a
# connector under the first or shortened name.) Loopback only, bounded.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T" || exit 1
mkdir pdir
cat > host.yaml <<Y
rest: {listen: "127.0.0.1:0", token: s3cret, pipeline_dir: pdir}
Y
start_sluice log.txt -c host.yaml
TOKEN=s3cret
stages='{"stages":[{"name":"in","use":"file-source","with":{"path":"/dev/null"}},{"name":"out","use":"file-sink","with":{"path":"/dev/null"}}]}'
bad() { # BODY REASON WHAT
    expect 400 POST /connectors "$1" "$3 is 400"
    assert_contains "$(jget 'd["message"]')" "$2" "$3: the message gives the reason"
}
bad "{\"name\":\"a\",\"name\":\"b\",\"config\":$stages}" 'duplicate key "name"' "a duplicate name"
bad "{\"name\":\"c\",\"config\":$stages,\"config\":{}}" 'duplicate key "config"' "a duplicate config"
bad "{\"name\":\"ok\\u0000../../etc\",\"config\":$stages}" 'string contains NUL' "a NUL in the name"
bad "{\"name\":\"d\\ud800\",\"config\":$stages}" 'lone high surrogate' "a lone surrogate"
bad "{\"name\":\"e\",\"config\":$stages} {\"name\":\"f\"}" 'trailing bytes' "trailing bytes"
bad "{\"name\":\"g\",\"config\":{\"batch_size\":1e999,\"stages\":[]}}" 'not finite' "a non-finite number"
bad "$(printf '{"name":"h\xc0\xaf","config":{}}')" 'invalid UTF-8' "invalid UTF-8"
expect 400 PUT /connector-plugins/file-sink/config/validate '{"path":"/tmp/x","path":"/etc/passwd"}' "a duplicate key in validate is 400"
expect 200 GET /connectors "list connectors"
assert_eq "$(cat "$T/body")" "[]" "nothing was created"
[ -z "$(ls pdir)" ] || fail "files in the pipeline directory: $(ls pdir)"
ok "nothing was stored"
stop_sluice
echo "$CHECKS checks passed"
