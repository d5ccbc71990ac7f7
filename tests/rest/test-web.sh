#!/bin/bash
# The dashboard's side of the server: static files under /ui/ with content types and no path
# traversal; /api/config, /api/queries; /api/query answers 503 with a reason when the database
# is down and 404 for an unknown query; the data API is read-only.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
mkdir -p www/assets
echo '<!doctype html><title>sluice</title>' > www/index.html
echo 'console.log(1)' > www/assets/app.js
echo 'secret' > outside.txt
ln -s "$T/outside.txt" www/assets/link.txt
: > in.ndjson
cat > p.yaml <<Y
pipeline: p
stages:
  - {name: in, use: file-source, with: {path: $T/in.ndjson, follow: true}}
  - {name: out, use: file-sink, with: {path: $T/out.ndjson}}
Y
cat > host.yaml <<'Y'
rest: {listen: "127.0.0.1:0"}
web:
  root: www
  generator_url: "http://127.0.0.1:7071"
  database: "host=127.0.0.1 port=1 dbname=none user=none"
  queries:
    kpis: {sql: "SELECT $1::int AS n", params: [{name: n, default: "7"}]}
Y
start_sluice log.txt -c host.yaml p.yaml

expect 200 GET /ui/ "GET /ui/ serves index.html"
assert_contains "$(cat "$T/body")" "<title>sluice</title>" "index.html body"
ctype() { curl -s -o /dev/null -w '%{content_type}' "$BASE$1"; }
assert_contains "$(ctype /ui/)" "text/html" "html content type"
expect 200 GET /ui/assets/app.js "asset served"
assert_contains "$(ctype /ui/assets/app.js)" "text/javascript" "js content type"
expect 301 GET /ui "/ui redirects to /ui/"
expect 404 GET /ui/nope.html "missing file is 404"
code_of() { curl -s --path-as-is -o /dev/null -w '%{http_code}' "$BASE$1"; }
assert_eq "$(code_of /ui/../p.yaml)" 404 "no traversal with .."
assert_eq "$(code_of /ui/assets/..%2f..%2fp.yaml)" 404 "no traversal with encoded .."
assert_eq "$(code_of /ui/assets/link.txt)" 404 "no escape through a symlink"
expect 200 GET /api/config "api/config"
assert_eq "$(jget 'd["generator_url"]')" "http://127.0.0.1:7071" "generator url from the host config"
assert_eq "$(jget 'd["auth"]')" True "api/config tells the page that changes need the token"
expect 200 GET /api/queries "api/queries"
assert_eq "$(jget 'd')" '["kpis"]' "query names"
expect 503 GET /api/query/kpis "database down is 503"
assert_contains "$(jget 'd["message"]')" "database unavailable" "503 says why"
expect 404 GET /api/query/nope "unknown query is 404"
expect 405 POST /api/query/kpis '{}' "data API is read-only"
stop_sluice
echo "all web checks passed ($CHECKS)"
