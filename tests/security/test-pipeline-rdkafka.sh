#!/bin/bash
# The `rdkafka:` passthrough of kafka-source and kafka-sink:
#  - over REST only an allow-list of harmless tuning keys: every key that runs a command
#    (sasl.kerberos.kinit.cmd must NOT run: its marker file never appears), loads code
#    (plugin.library.paths, ssl.engine.location) or reads files (ssl.*.location, keytab) is 400;
#  - never, not even in the operator's own file: the keys that switch off delivery guarantees.
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
echo '{"n":1}' > data/in.ndjson
sec_start
MARK=$T/kinit-ran
source_with() { # JSON of the rdkafka map
  echo "{\"stages\": [{\"name\": \"in\", \"use\": \"kafka-source\", \"with\": {\"brokers\": \"127.0.0.1:1\", \"topics\": [\"t\"], \"rdkafka\": $1}}, {\"name\": \"out\", \"use\": \"file-sink\", \"with\": {\"path\": \"out.ndjson\"}}]}"
}
sink_with() {
  echo "{\"stages\": [{\"name\": \"in\", \"use\": \"file-source\", \"with\": {\"path\": \"in.ndjson\"}}, {\"name\": \"out\", \"use\": \"kafka-sink\", \"with\": {\"brokers\": \"127.0.0.1:1\", \"topic\": \"t\", \"rdkafka\": $1}}]}"
}
i=0
refused() { # KEY MAP-JSON (source and sink)
  for kind in source sink; do
    i=$((i + 1))
    post_pipeline "k$i" "$("${kind}_with" "$2")"
    [ "$(code)" = 400 ] || fail "rdkafka.$1 on kafka-$kind over REST: expected 400, got $(code): $(cat "$T/body")"
    assert_contains "$(cat "$T/body")" "$1" "rdkafka.$1 on kafka-$kind is refused, naming the key"
  done
}
refused sasl.kerberos.kinit.cmd "{\"sasl.kerberos.kinit.cmd\": \"touch $MARK\", \"security.protocol\": \"SASL_PLAINTEXT\", \"sasl.mechanisms\": \"GSSAPI\", \"sasl.kerberos.min.time.before.relogin\": \"1\"}"
refused plugin.library.paths '{"plugin.library.paths": "/tmp/evil.so"}'
refused ssl.ca.location '{"ssl.ca.location": "/etc/shadow"}'
refused ssl.key.location '{"ssl.key.location": "/etc/shadow"}'
refused ssl.engine.location '{"ssl.engine.location": "/tmp/evil.so"}'
refused sasl.kerberos.keytab '{"sasl.kerberos.keytab": "/etc/krb5.keytab"}'
refused oauthbearer.method '{"sasl.oauthbearer.method": "oidc"}'
for k in enable.auto.commit enable.auto.offset.store acks enable.idempotence isolation.level; do
  refused "$k" "{\"$k\": \"1\"}"
done
sleep 2 # give a kinit that was (wrongly) started time to leave its marker
[ ! -e "$MARK" ] || fail "sasl.kerberos.kinit.cmd ran a command"
ok "sasl.kerberos.kinit.cmd did not run"

# Harmless tuning is allowed over REST.
post_pipeline tuned "$(sink_with '{"linger.ms": "20", "batch.num.messages": "100", "client.id": "x"}')"
assert_eq "$(code)" 201 "allow-listed tuning keys are accepted over REST"
stop_sluice

# The operator's own file: anything but the guarantee keys; those are a config error with
# file:line:column (exit 2), before anything runs.
cat > op.yaml <<Y
pipeline: op
stages:
  - name: in
    use: kafka-source
    with:
      brokers: 127.0.0.1:1
      topics: [t]
      rdkafka:
        fetch.wait.max.ms: "50"
        enable.auto.commit: "true"
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
out=$("$SLUICE" validate op.yaml 2>&1); rc=$?
assert_eq "$rc" 2 "an operator file overriding enable.auto.commit is a config error"
assert_contains "$out" "op.yaml:10:9:" "the error names file:line:column"
assert_contains "$out" "enable.auto.commit" "the error names the key"
sed -i 's/        enable.auto.commit: "true"/        ssl.ca.location: \/etc\/ssl\/certs/' op.yaml
"$SLUICE" validate op.yaml >/dev/null 2>&1 || fail "the operator may set other librdkafka keys: $("$SLUICE" validate op.yaml 2>&1)"
ok "the operator's file may set keys REST pipelines may not"
"$SLUICE" plugins describe kafka-source 2>&1 | grep -q "sasl.kerberos.kinit.cmd" && fail "describe lists a dangerous key as allowed"
"$SLUICE" plugins describe kafka-source 2>&1 | grep -q "linger.ms" || fail "describe does not list the allow-list"
ok "sluice plugins describe shows the allow-list"
