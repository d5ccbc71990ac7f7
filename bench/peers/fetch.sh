#!/bin/bash
# bench/peers/fetch.sh connect|spark — fetch a peer's jars/venv into the cache (once; later runs
# find it there). Cache: ${SLUICE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/sluice}/peers/…
#   connect: Apache Kafka Connect runtime ($CONNECT_VERSION) + connect-json
#            + Debezium's JDBC sink connector ($DEBEZIUM_VERSION) + PostgreSQL JDBC driver,
#            all from Maven Central (mvn dependency:copy-dependencies).
#   spark:   a Python venv with pyspark ($SPARK_VERSION) from PyPI, and spark-sql-kafka-0-10
#            with its dependencies from Maven Central (passed to Spark as --jars; no Ivy fetch
#            at run time).
# Prints the directory on stdout.
set -eu
CACHE="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}/peers"
CONNECT_VERSION=${CONNECT_VERSION:-4.4.0}  # JsonConverter schema.content (a fixed schema for plain JSON) needs >= 4.2
DEBEZIUM_VERSION=${DEBEZIUM_VERSION:-3.3.1.Final}
PGJDBC_VERSION=${PGJDBC_VERSION:-42.7.8}
SPARK_VERSION=${SPARK_VERSION:-4.0.0}  # 4.0.1: its spark-token-provider-kafka is not served
die() { echo "fetch.sh: $*" >&2; exit 1; }

mvn_fetch() { # DIR DEP-XML…
  local dir=$1; shift
  [ -f "$dir/.complete" ] && return 0
  mkdir -p "$dir"
  local pom; pom=$(mktemp -d "$dir.pom.XXXXXX")
  { echo '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
    echo '<groupId>sluice</groupId><artifactId>peer</artifactId><version>1</version><packaging>pom</packaging><dependencies>'
    printf '%s\n' "$@"
    echo '</dependencies></project>'; } >"$pom/pom.xml"
  # Spark's parent POM names a Google mirror of Central that this machine cannot reach:
  # resolve everything from Maven Central itself.
  cat >"$pom/settings.xml" <<'XML'
<settings><mirrors><mirror><id>central-only</id><mirrorOf>*</mirrorOf>
<url>https://repo.maven.apache.org/maven2</url></mirror></mirrors></settings>
XML
  rm -rf "$dir/libs.tmp"
  (cd "$pom" && mvn -s settings.xml -q -B dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$dir/libs.tmp" >&2) || { rm -rf "$pom"; die "maven fetch failed"; }
  rm -rf "$pom" "$dir/libs"
  mv "$dir/libs.tmp" "$dir/libs"
  touch "$dir/.complete"
}
dep() { echo "<dependency><groupId>$1</groupId><artifactId>$2</artifactId><version>$3</version></dependency>"; }

case "${1:-}" in
connect)
  d="$CACHE/connect-$CONNECT_VERSION-debezium-$DEBEZIUM_VERSION"
  mvn_fetch "$d" "$(dep org.apache.kafka connect-runtime "$CONNECT_VERSION")" \
      "$(dep org.apache.kafka connect-json "$CONNECT_VERSION")" \
      "$(dep org.apache.logging.log4j log4j-slf4j2-impl 2.24.3)" "$(dep org.slf4j slf4j-api 2.0.17)" \
      "$(dep io.debezium debezium-connector-jdbc "$DEBEZIUM_VERSION")" \
      "$(dep org.postgresql postgresql "$PGJDBC_VERSION")"
  echo "$d" ;;
spark)
  d="$CACHE/spark-$SPARK_VERSION"
  mkdir -p "$d"
  if [ ! -f "$d/venv/.complete" ]; then
    python3 -m venv "$d/venv"
    "$d/venv/bin/pip" install -q "pyspark==$SPARK_VERSION" "psycopg2-binary" >&2 || die "pip failed"
    touch "$d/venv/.complete"
  fi
  mvn_fetch "$d/kafka" "$(dep org.apache.spark spark-sql-kafka-0-10_2.13 "$SPARK_VERSION")" \
      "$(dep org.postgresql postgresql "$PGJDBC_VERSION")"
  echo "$d" ;;
*) die "usage: fetch.sh connect|spark" ;;
esac
