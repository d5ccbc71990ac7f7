"""The seed's engine on the reference events: a PySpark Structured Streaming job doing what
pipelines/ecommerce-analytics.yaml does with 1-minute windows only (UC03-UC06).

  Kafka events_raw -> parse (from_json) -> validate (the rules of
  pipelines/ecommerce-event.schema.yaml, as SQL expressions on the parsed fields and the raw
  JSON tokens) -> dropDuplicatesWithinWatermark(event_id, 10 minutes of event time)
  -> foreachBatch: in ONE PostgreSQL transaction, the batch's valid events into events_clean
     (COPY into a temp table + INSERT ... ON CONFLICT (event_id) DO NOTHING) and the batch's
     1-minute KPIs per (window, Kafka partition), aggregated by Spark, added to kpi_1m
     (upsert: events = kpi_1m.events + EXCLUDED.events, ...). Invalid events go to
     events_rejected (stage 'validate').

Usage: spark_job.py BROKERS TOPIC PG_DSN CHECKPOINT_DIR KAFKA_JARS_DIR
Environment: SPARK_SHUFFLE_PARTITIONS (2), SPARK_DRIVER_MEMORY (1g), SPARK_KAFKA_TS (see below).
"""
import glob
import io
import os
import sys

import psycopg2
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

brokers, topic, dsn, checkpoint, jars_dir = sys.argv[1:6]
print("peer-spark: starting", flush=True)
jars = ",".join(sorted(glob.glob(os.path.join(jars_dir, "libs", "*.jar"))))
spark = (SparkSession.builder.master("local[2]").appName("peer-spark")
         .config("spark.jars", jars)
         .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "1g"))
         .config("spark.sql.shuffle.partitions", os.environ.get("SPARK_SHUFFLE_PARTITIONS", "2"))
         .config("spark.ui.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC")
         .getOrCreate())
spark.sparkContext.setLogLevel("WARN")

FIELDS = ["event_id", "event_type", "user_id", "session_id", "product_id", "quantity", "amount",
          "currency", "payment_method", "ts"]
# Every field as text: a JSON number arrives as its digits, an object as its JSON text; the raw
# token is checked where the type matters (a string must be quoted, a number must not be).
schema = StructType([StructField(f, StringType()) for f in FIELDS])

raw = (spark.readStream.format("kafka")
       .option("kafka.bootstrap.servers", brokers)
       .option("subscribe", topic)
       .option("startingOffsets", "earliest")
       .load())
ev = raw.select(F.col("value").cast("string").alias("raw"), F.col("partition").alias("kafka_partition"),
                F.col("offset").alias("kafka_offset"), F.col("topic").alias("kafka_topic"),
                F.unix_millis("timestamp").alias("kafka_ts_ms"))
ev = ev.withColumn("j", F.from_json("raw", schema)).select("*", "j.*").drop("j")


def quoted(f):  # the raw token of field f is a JSON string
    return F.col("raw").rlike('"%s"\\s*:\\s*"' % f)


def number(f):  # the raw token of field f is a JSON number
    return F.col("raw").rlike('"%s"\\s*:\\s*-?[0-9]' % f)


TYPES = ["page_view", "add_to_cart", "purchase", "payment_failed", "refund"]
etype = F.lower(F.trim("event_type"))
q = F.col("quantity")
qn = F.expr("try_cast(quantity AS bigint)")  # ANSI mode (Spark 4's default): a bad cast throws
amount = F.expr("try_cast(amount AS decimal(20,6))")
ts = F.expr("try_to_timestamp(ts, \"yyyy-MM-dd'T'HH:mm:ss[.SSS][.SS][.S]XXX\")")
cur = F.upper(F.trim(F.coalesce(F.col("currency"), F.lit("USD"))))
valid = (
    F.col("event_id").isNotNull() & quoted("event_id") & (F.length("event_id") >= 1) & (F.length("event_id") <= 64)
    & F.col("event_type").isNotNull() & quoted("event_type") & etype.isin(TYPES)
    & F.col("user_id").isNotNull() & quoted("user_id")
    & (F.col("session_id").isNull() | quoted("session_id"))
    & (F.col("product_id").isNotNull() & quoted("product_id") | ~etype.isin(TYPES[1:]))
    & (q.isNull() | number("quantity") & q.rlike("^[0-9]+$") & (qn >= 1) & (qn <= 2147483647))
    & (F.col("amount").isNull() & ~etype.isin(TYPES[2:])
       | F.col("amount").isNotNull() & number("amount") & amount.isNotNull() & (amount >= 0) & (amount <= 9999999999.99))
    & (F.col("currency").isNull() | quoted("currency") & cur.rlike("^[A-Z]{3}$"))
    & (F.col("payment_method").isNull() | quoted("payment_method"))
    & F.col("ts").isNotNull() & quoted("ts") & ts.isNotNull()
)
ev = ev.withColumn("valid", F.coalesce(valid, F.lit(False)))
clean = (ev.where("valid")
         .select("event_id", etype.alias("event_type"), "user_id", "session_id", "product_id",
                 F.coalesce(F.expr("try_cast(quantity AS int)"), F.lit(1)).alias("quantity"),
                 F.expr("try_cast(round(try_cast(amount AS decimal(20,6)), 2) AS decimal(12,2))").alias("amount"), cur.alias("currency"),
                 "payment_method", ts.alias("event_time"), "kafka_partition", "kafka_offset",
                 "kafka_topic", "kafka_ts_ms")
         .withWatermark("event_time", "10 minutes")
         .dropDuplicatesWithinWatermark(["event_id"]))
rejected = ev.where(~F.col("valid")).select("raw", "kafka_topic", "kafka_partition", "kafka_offset")


def copy_text(v):
    if v is None:
        return "\\N"
    s = str(v)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# SPARK_KAFKA_TS=1 (spark.sh's latency phase): also the Kafka message timestamp, into the extra
# column kafka_ts_ms the benchmark adds.
KTS = os.environ.get("SPARK_KAFKA_TS") == "1"
CLEAN_COLS = ["event_id", "event_type", "user_id", "session_id", "product_id", "quantity", "amount",
              "currency", "payment_method", "ts", "kafka_partition", "kafka_offset", "kafka_topic"] + (
                  ["kafka_ts_ms"] if KTS else [])
KPI_SQL = """
INSERT INTO kpi_1m ("window", window_start, window_end, "partition", source_topic, events, page_views,
                    add_to_cart, orders, payment_failed, refunds, gmv, refund_amount, revision)
SELECT '1m', ws, ws + interval '1 minute', p, 'events_raw', e, pv, ac, o, pf, r, g, ra, 1
FROM stg_kpi
ON CONFLICT (window_start, source_topic, "partition") DO UPDATE SET
  events = kpi_1m.events + EXCLUDED.events, page_views = kpi_1m.page_views + EXCLUDED.page_views,
  add_to_cart = kpi_1m.add_to_cart + EXCLUDED.add_to_cart, orders = kpi_1m.orders + EXCLUDED.orders,
  payment_failed = kpi_1m.payment_failed + EXCLUDED.payment_failed,
  refunds = kpi_1m.refunds + EXCLUDED.refunds, gmv = kpi_1m.gmv + EXCLUDED.gmv,
  refund_amount = kpi_1m.refund_amount + EXCLUDED.refund_amount,
  revision = kpi_1m.revision + 1, updated_at = now()
"""
conn = psycopg2.connect(dsn)
with conn.cursor() as c:
    c.execute("SET TIME ZONE 'UTC'")
    c.execute("CREATE TEMP TABLE stg_clean (LIKE events_clean INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    c.execute("CREATE TEMP TABLE stg_kpi (ws timestamptz, p int, e bigint, pv bigint, ac bigint, o bigint,"
              " pf bigint, r bigint, g numeric, ra numeric) ON COMMIT DELETE ROWS")
conn.commit()


def write_batch(df, batch_id):
    df.persist()
    rows = df.collect()
    # 1-minute KPIs of this batch's (deduplicated) events, by Spark
    kpis = (df.groupBy(F.window("event_time", "1 minute").start.alias("ws"), "kafka_partition")
            .agg(F.count("*").alias("e"),
                 F.sum(F.when(F.col("event_type") == "page_view", 1).otherwise(0)).alias("pv"),
                 F.sum(F.when(F.col("event_type") == "add_to_cart", 1).otherwise(0)).alias("ac"),
                 F.sum(F.when(F.col("event_type") == "purchase", 1).otherwise(0)).alias("o"),
                 F.sum(F.when(F.col("event_type") == "payment_failed", 1).otherwise(0)).alias("pf"),
                 F.sum(F.when(F.col("event_type") == "refund", 1).otherwise(0)).alias("r"),
                 F.coalesce(F.sum(F.when(F.col("event_type") == "purchase", F.col("amount"))), F.lit(0)).alias("g"),
                 F.coalesce(F.sum(F.when(F.col("event_type") == "refund", F.col("amount"))), F.lit(0)).alias("ra"))
            .collect())
    df.unpersist()
    buf = io.StringIO()
    for r in rows:
        vals = [r["event_id"], r["event_type"], r["user_id"], r["session_id"], r["product_id"], r["quantity"],
                r["amount"], r["currency"], r["payment_method"], r["event_time"].isoformat() + "+00:00",
                r["kafka_partition"], r["kafka_offset"], r["kafka_topic"]] + ([r["kafka_ts_ms"]] if KTS else [])
        buf.write("\t".join(copy_text(v) for v in vals) + "\n")
    kbuf = io.StringIO()
    for k in kpis:
        kbuf.write("\t".join(copy_text(v) for v in [k["ws"].isoformat() + "+00:00", k["kafka_partition"], k["e"],
                                                    k["pv"], k["ac"], k["o"], k["pf"], k["r"], k["g"], k["ra"]]) + "\n")
    buf.seek(0)
    kbuf.seek(0)
    with conn.cursor() as c:
        c.copy_expert("COPY stg_clean (%s) FROM STDIN" % ", ".join(CLEAN_COLS), buf)
        c.execute("INSERT INTO events_clean (%s) SELECT %s FROM stg_clean ON CONFLICT (event_id) DO NOTHING"
                  % (", ".join(CLEAN_COLS), ", ".join(CLEAN_COLS)))
        c.copy_expert("COPY stg_kpi FROM STDIN", kbuf)
        c.execute(KPI_SQL)
    conn.commit()


rconn = psycopg2.connect(dsn)  # the two queries' batches run on different threads


def write_rejected(df, batch_id):
    rows = df.collect()
    if not rows:
        return
    with rconn.cursor() as c:
        c.executemany("INSERT INTO events_rejected (payload, stage, reason, topic, \"partition\", \"offset\")"
                      " VALUES (%s, 'validate', 'spark: invalid', %s, %s, %s) ON CONFLICT DO NOTHING",
                      [(r["raw"].encode(), r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]) for r in rows])
    rconn.commit()


q1 = (clean.writeStream.foreachBatch(write_batch).outputMode("append")
      .option("checkpointLocation", os.path.join(checkpoint, "clean")).start())
q2 = (rejected.writeStream.foreachBatch(write_rejected)
      .option("checkpointLocation", os.path.join(checkpoint, "rejected")).start())
print("peer-spark: started", flush=True)
spark.streams.awaitAnyTermination()
