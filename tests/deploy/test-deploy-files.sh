#!/bin/bash
# deploy/ cannot be run here (no Docker daemon, no systemd as PID 1), so this checks what can be
# checked without them: every path and script the Dockerfile, the compose file and the systemd
# unit name exists (in the repository, or in the build for what the image copies from the build
# stage), the Dockerfile builds with scripts/deps.sh + scripts/build.sh, the compose file's host
# config lists existing pipelines that `sluice validate` accepts and carries the reference
# dashboard queries unchanged, ports are published on loopback only, and systemd-analyze accepts
# the unit (when installed).
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
D=$SRC/deploy
for f in "$D/docker/Dockerfile" "$D/docker/compose.yaml" "$D/docker/sluice.yaml" "$D/sluice.service"; do
    [ -f "$f" ] || fail "$f missing"
done

python3 - "$SRC" "${SLUICE_BUILD_DIR:?}" >"$T/check.txt" 2>&1 <<'PY' || fail "deploy files: $(cat "$T/check.txt")"
import os, re, sys, yaml
src, build = sys.argv[1], sys.argv[2]
errors = []
def need(cond, msg):
    if not cond:
        errors.append(msg)

# ---- Dockerfile ----
df = open(os.path.join(src, "deploy/docker/Dockerfile")).read()
lines = [l.strip() for l in re.sub(r"\\\n", " ", df).splitlines() if l.strip() and not l.strip().startswith("#")]
stages, copied_to = [], {}
for l in lines:
    op, _, rest = l.partition(" ")
    op = op.upper()
    if op == "FROM":
        m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
        stages.append(m.group(2))
    elif op == "RUN":
        for script in re.findall(r"bash\s+(\S+\.sh)", rest):
            need(os.path.isfile(os.path.join(src, script)), "Dockerfile runs %s, which does not exist" % script)
    elif op == "COPY":
        args = rest.split()
        frm = None
        if args[0].startswith("--from="):
            frm = args.pop(0)[len("--from="):]
        *srcs, dst = args
        for s in srcs:
            if frm is None:
                need(os.path.exists(os.path.join(src, s)), "Dockerfile copies %s, not in the repository" % s)
            else:
                need(frm in stages, "COPY --from=%s: no such stage" % frm)
                need(s.startswith("/src/"), "COPY --from=%s %s: not from the source tree /src" % (frm, s))
                rel = s[len("/src/"):]
                # what the build stage produces: build/ is scripts/build.sh's meson build dir
                local = os.path.join(build, rel[len("build/"):]) if rel.startswith("build/") else os.path.join(src, rel)
                need(os.path.exists(local), "Dockerfile copies %s from the build stage; %s does not exist after a build" % (s, local))
            copied_to[dst] = s
need("bash scripts/deps.sh" in df and "bash scripts/build.sh" in df, "Dockerfile must build with scripts/deps.sh and scripts/build.sh")
# the context filter must not drop what the build needs or what the runtime stage copies
import fnmatch
ign_path = os.path.join(src, "deploy/docker/Dockerfile.dockerignore")
ignored = [l.strip() for l in open(ign_path) if l.strip() and not l.startswith("#")] if os.path.exists(ign_path) else []
context_needs = ["scripts/deps.sh", "scripts/build.sh", "scripts/packages.txt", "meson.build", "host",
                 "plugins", "web/package.json", "web/src"] + [v for v in copied_to.values() if not v.startswith("/")]
for path in context_needs:
    for pat in ignored:
        if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat + "/*") or path.startswith(pat.rstrip("/") + "/"):
            errors.append("Dockerfile.dockerignore pattern %r drops %s, which the build needs" % (pat, path))
cmd = re.search(r'^CMD\s+(\[.*\])', df, re.M)
need(cmd is not None, "Dockerfile has no CMD")
if cmd:
    import json
    argv = json.loads(cmd.group(1))
    if "-c" in argv:
        cfg = argv[argv.index("-c") + 1]
        need(cfg in copied_to, "CMD reads %s, which no COPY puts there" % cfg)
need("build/web/dist" not in df, "web/dist is built in the source tree, not build/")

# ---- compose.yaml ----
cdir = os.path.join(src, "deploy/docker")
c = yaml.safe_load(open(os.path.join(cdir, "compose.yaml")))
svc = c.get("services", {})
for name in ("kafka", "postgres", "generator", "sluice"):
    need(name in svc, "compose: service %s missing" % name)
need(str(svc.get("kafka", {}).get("image", "")).startswith("apache/kafka:"), "compose: kafka must use the official apache/kafka image")
need(str(svc.get("postgres", {}).get("image", "")).startswith("postgres:15"), "compose: postgres must be PostgreSQL 15")
need("KRaft" in open(os.path.join(cdir, "compose.yaml")).read() or "broker,controller" in str(svc.get("kafka")), "compose: kafka not in KRaft mode")
for name, s in svc.items():
    b = s.get("build")
    if b:
        ctx = os.path.normpath(os.path.join(cdir, b.get("context", ".")))
        need(os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))), "compose %s: dockerfile %s missing" % (name, b))
    for v in s.get("volumes", []):
        host = str(v).split(":")[0]
        if host.startswith((".", "/")):
            need(os.path.exists(os.path.normpath(os.path.join(cdir, host))), "compose %s: volume source %s missing" % (name, host))
    for p in s.get("ports", []):
        need(str(p).startswith("127.0.0.1:"), "compose %s: port %s not bound to 127.0.0.1" % (name, p))
    cmdv = s.get("command")
    if isinstance(cmdv, list) and cmdv and cmdv[0] in ("sluice", "sluice-gen"):
        need(("/opt/sluice/bin/" + cmdv[0]) in copied_to, "compose %s runs %s, which the image does not hold" % (name, cmdv[0]))
    for dep in (s.get("depends_on") or {}):
        need(dep in svc, "compose %s depends on unknown service %s" % (name, dep))

# ---- the compose file's host config ----
hc = yaml.safe_load(open(os.path.join(cdir, "sluice.yaml")))
ref = yaml.safe_load(open(os.path.join(src, "pipelines/sluice.yaml")))
for p in hc["pipelines"]:
    need(os.path.isfile(os.path.normpath(os.path.join(cdir, p))), "deploy/docker/sluice.yaml: pipeline %s missing" % p)
need(os.path.normpath(os.path.join(cdir, hc["web"]["root"])) == os.path.normpath(os.path.join(src, "pipelines", ref["web"]["root"])),
     "deploy/docker/sluice.yaml: web.root is not the reference dashboard build")
need({k: v for k, v in hc["web"].items() if k != "root"} == {k: v for k, v in ref["web"].items() if k != "root"},
     "deploy/docker/sluice.yaml: web section differs from pipelines/sluice.yaml (copy it over)")
need("kafka" not in hc, "deploy/docker/sluice.yaml must not start the embedded broker")

# ---- systemd unit ----
u = open(os.path.join(src, "deploy/sluice.service")).read()
for want in ("Restart=on-failure", "User=sluice", "StateDirectory=sluice", "NoNewPrivileges=yes",
             "ProtectSystem=strict", "ExecStart=/usr/local/bin/sluice run"):
    need(want in u, "deploy/sluice.service: %s missing" % want)

if errors:
    print("\n".join(errors))
    sys.exit(1)
print("ok")
PY
ok "Dockerfile, compose.yaml, deploy/docker/sluice.yaml and sluice.service name only what exists"

# The pipelines the compose file runs are valid as they stand.
KAFKA_BROKERS=kafka:9092 PG_DSN="host=postgres user=app dbname=realtime" GEN_URL=http://generator:7070 \
    "$SLUICE" validate "$SRC/pipelines/ecommerce-ingest.yaml" "$SRC/pipelines/ecommerce-analytics.yaml" \
    >"$T/validate.txt" 2>&1 || fail "sluice validate: $(cat "$T/validate.txt")"
ok "the pipelines the compose file runs pass sluice validate"

if command -v systemd-analyze >/dev/null; then
    # verify needs the ExecStart binary to exist: the same unit pointing at this build
    sed "s#/usr/local/bin/sluice#$SLUICE#g" "$D/sluice.service" >"$T/sluice.service"
    (cd "$T" && systemd-analyze verify ./sluice.service) >"$T/verify.txt" 2>&1 || true
    grep -v -e "sluice.service:[0-9]*: Unknown key name" "$T/verify.txt" | grep -i 'sluice.service' >"$T/verify-bad.txt"
    [ -s "$T/verify-bad.txt" ] && fail "systemd-analyze verify: $(cat "$T/verify-bad.txt")"
    ok "systemd-analyze verify accepts deploy/sluice.service"
fi
echo "$CHECKS checks passed"
