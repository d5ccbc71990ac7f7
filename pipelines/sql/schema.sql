-- sluice reference application: the PostgreSQL side (user `app`, database `realtime`).
--
-- Load as the owner of the tables, once the role and database exist:
--   psql -U postgres -c "CREATE ROLE app LOGIN" -c "CREATE DATABASE realtime OWNER app"
--   psql -U app -d realtime -v ON_ERROR_STOP=1 -f pipelines/sql/schema.sql
-- Idempotent: loading it again changes nothing (tables IF NOT EXISTS, views replaced).
-- "window", "partition" and "offset" are SQL keywords, hence quoted.

BEGIN;

-- One row per valid event (validator + dedup upstream; pg-sink inserts with ON CONFLICT DO
-- NOTHING on event_id, so a replay after a crash never doubles a row).
CREATE TABLE IF NOT EXISTS events_clean (
    event_id        text PRIMARY KEY,
    event_type      text NOT NULL,
    user_id         text NOT NULL,
    session_id      text,
    product_id      text,
    quantity        integer CHECK (quantity >= 1),
    amount          numeric(12,2) CHECK (amount >= 0),
    currency        char(3),
    payment_method  text,
    ts              timestamptz NOT NULL,
    kafka_partition integer,
    kafka_offset    bigint,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    kafka_topic     text,                     -- source topic: restore reads per (topic, partition)
    dedup_seen_ms   bigint                    -- dedup's first-seen time of the key (event time, ms)
);
-- Schemas loaded before kafka_topic: the reference application had one source topic, events_raw
-- (a row without a topic is never restored).
ALTER TABLE events_clean ADD COLUMN IF NOT EXISTS kafka_topic text;
UPDATE events_clean SET kafka_topic = 'events_raw' WHERE kafka_topic IS NULL AND kafka_partition IS NOT NULL;
-- Schemas loaded before dedup_seen_ms: rows without it are not restored (dedup's restore cut is
-- made on it), so for one restart after the upgrade dedup forgets the keys of those rows.
ALTER TABLE events_clean ADD COLUMN IF NOT EXISTS dedup_seen_ms bigint;
-- Recent events, by event time and by type (dashboard drill-down, KPI recomputation in SQL).
CREATE INDEX IF NOT EXISTS events_clean_ts_idx ON events_clean (ts DESC);
CREATE INDEX IF NOT EXISTS events_clean_type_ts_idx ON events_clean (event_type, ts);
-- pg-sink's restore for dedup: per (topic, partition), the newest first-seen time and the rows
-- within `within` (dedup's ttl) of it.
DROP INDEX IF EXISTS events_clean_restore_idx;
CREATE INDEX IF NOT EXISTS events_clean_seen_idx ON events_clean (kafka_topic, kafka_partition, dedup_seen_ms);

-- KPIs per tumbling window and source partition — a (source topic, partition) pair: exactly the
-- fields window-kpi emits. One row per (window_start, source_topic, partition), upserted (on_conflict: update) as the window is revised; `final`
-- turns true once the window closed (allowed lateness passed), `revision` counts the updates.
-- The primary key's btree also serves "recent windows" (ORDER BY window_start DESC LIMIT n) by a
-- backward index scan, so no separate index is needed for it.
CREATE TABLE IF NOT EXISTS kpi_1m (
    "window"        text NOT NULL,            -- '1m', '15m', '1h', '24h'
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    "partition"     integer NOT NULL,
    events          bigint NOT NULL DEFAULT 0,
    page_views      bigint NOT NULL DEFAULT 0,
    add_to_cart     bigint NOT NULL DEFAULT 0,
    orders          bigint NOT NULL DEFAULT 0,
    payment_failed  bigint NOT NULL DEFAULT 0,
    refunds         bigint NOT NULL DEFAULT 0,
    gmv             numeric(14,2) NOT NULL DEFAULT 0,
    refund_amount   numeric(14,2) NOT NULL DEFAULT 0,
    avg_order_value numeric(14,2),            -- NULL when no orders
    success_rate    double precision,         -- orders / (orders + payment_failed); NULL if none
    conversion_rate double precision,         -- orders / page_views; NULL if no page views
    distinct_users  bigint,                   -- approximate (window-kpi's estimate)
    users_hll       text,                     -- window-kpi's sketch (base64 registers): restored and merged after a restart
    source_topic    text NOT NULL DEFAULT '', -- the input topic the window aggregates ('': none)
    final           boolean NOT NULL DEFAULT false,
    revision        integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, source_topic, "partition")
);
CREATE TABLE IF NOT EXISTS kpi_15m (LIKE kpi_1m INCLUDING ALL);
CREATE TABLE IF NOT EXISTS kpi_1h  (LIKE kpi_1m INCLUDING ALL);
CREATE TABLE IF NOT EXISTS kpi_24h (LIKE kpi_1m INCLUDING ALL);
-- Schemas loaded before the key included source_topic: partition 0 of two topics overwrote each
-- other's rows. Rows without a topic were the reference application's one topic, events_raw.
DO $$
DECLARE t text; pk text;
BEGIN
    FOREACH t IN ARRAY ARRAY['kpi_1m', 'kpi_15m', 'kpi_1h', 'kpi_24h'] LOOP
        SELECT c.conname INTO pk FROM pg_constraint c
         WHERE c.conrelid = t::regclass AND c.contype = 'p'
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.conrelid
                             AND a.attnum = ANY (c.conkey) AND a.attname = 'source_topic');
        IF pk IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS source_topic text', t);
            EXECUTE format('UPDATE %I SET source_topic = %L WHERE source_topic IS NULL', t, 'events_raw');
            EXECUTE format('ALTER TABLE %I ALTER COLUMN source_topic SET DEFAULT %L, '
                           'ALTER COLUMN source_topic SET NOT NULL', t, '');
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', t, pk);
            EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (window_start, source_topic, "partition")', t);
        END IF;
    END LOOP;
END
$$;

-- kpi_*_total: all (topic, partition)s of a window summed; what the dashboard shows. Ratios are
-- recomputed from the sums (averaging per-partition ratios would be wrong).
-- distinct_users summed over partitions is an UPPER BOUND: a user whose events landed in two
-- partitions is counted twice (events are keyed by event, not by user).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['kpi_1m', 'kpi_15m', 'kpi_1h', 'kpi_24h'] LOOP
        EXECUTE format($v$
            CREATE OR REPLACE VIEW %I AS
            SELECT min("window")          AS "window",
                   window_start,
                   max(window_end)        AS window_end,
                   count(*)::integer      AS partitions,
                   sum(events)::bigint         AS events,
                   sum(page_views)::bigint     AS page_views,
                   sum(add_to_cart)::bigint    AS add_to_cart,
                   sum(orders)::bigint         AS orders,
                   sum(payment_failed)::bigint AS payment_failed,
                   sum(refunds)::bigint        AS refunds,
                   sum(gmv)               AS gmv,
                   sum(refund_amount)     AS refund_amount,
                   round(sum(gmv) / nullif(sum(orders), 0), 2) AS avg_order_value,
                   sum(orders)::double precision
                       / nullif(sum(orders) + sum(payment_failed), 0) AS success_rate,
                   sum(orders)::double precision / nullif(sum(page_views), 0) AS conversion_rate,
                   sum(distinct_users)::bigint AS distinct_users, -- upper bound, see above
                   bool_and(final)        AS final,
                   max(updated_at)        AS updated_at
            FROM %I
            GROUP BY window_start
        $v$, t || '_total', t);
    END LOOP;
END
$$;

-- Rejected events (dead letter): what a pg-sink used as `dead_letter` writes, with the stage that
-- refused the record and why (the headers sluice.error.stage / sluice.error.reason).
CREATE TABLE IF NOT EXISTS events_rejected (
    id          bigserial PRIMARY KEY,
    payload     bytea,                        -- the raw record value, as received (any bytes)
    stage       text,
    reason      text,
    topic       text,
    "partition" integer,
    "offset"    bigint,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
-- Schemas loaded before payload became bytea: text could not hold invalid UTF-8 (the dead
-- letter refused such a record with 22021).
DO $$
BEGIN
    IF (SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema()
          AND table_name = 'events_rejected' AND column_name = 'payload') = 'text' THEN
        ALTER TABLE events_rejected ALTER COLUMN payload TYPE bytea USING convert_to(payload, 'UTF8');
    END IF;
END
$$;
CREATE INDEX IF NOT EXISTS events_rejected_at_idx ON events_rejected (rejected_at DESC);
-- One row per source position: the dead-letter pg-sink writes with ON CONFLICT (topic,
-- "partition", "offset") DO NOTHING, so a record replayed after a crash is not stored twice.
-- (Positions are NULL for sources without them; NULLs never conflict, such rows are all kept.)
CREATE UNIQUE INDEX IF NOT EXISTS events_rejected_source_key
    ON events_rejected (topic, "partition", "offset");

-- Positions stored by pg-sink in the same transaction as the rows: the highest offset written
-- per (pipeline, record topic, partition). `epoch` fences writers: pg-sink bumps it for the source's
-- (pipeline, topic, partition) when the partition is assigned, and every transaction checks,
-- with the row locked, that it is still the epoch it got — so a writer whose partition moved
-- on (a zombie) cannot commit rows or positions after the new owner took over. For KPI records (topic kpi_1m, ...) that is the
-- highest input offset the KPI state covers, per source topic (topic 'kpi_1m|events_raw'); pg-sink hands it back with the KPI rows when
-- partitions are assigned (restore), so window-kpi knows which replayed inputs it has counted.
CREATE TABLE IF NOT EXISTS sluice_offsets (
    pipeline    text NOT NULL,
    topic       text NOT NULL,                -- '' for a source without topics (a file)
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    epoch       bigint NOT NULL DEFAULT 0,    -- owner epoch (see above)
    PRIMARY KEY (pipeline, topic, "partition")
);
ALTER TABLE sluice_offsets ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;

COMMIT;
