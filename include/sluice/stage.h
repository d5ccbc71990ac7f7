/*
 * sluice/stage.h — the one header a sluice stage includes.
 *
 * A stage is a shared object that exports one function, SL_STAGE_ENTRY, returning a
 * const descriptor (sl_stage_desc). The host checks the descriptor's magic, ABI major/minor
 * and size at load time, validates the stage's YAML config against the descriptor's config
 * table, and then drives the stage through its callbacks, handing it a table of host
 * functions (sl_api) to log, count, emit, hold, reject and read JSON fields.
 *
 * Ten-minute tour:
 *   1. Declare a config struct and a table of sl_config_entry describing its fields.
 *   2. Write init/close and, depending on the kind, poll (source) or process (transform, sink).
 *   3. Fill a static const sl_stage_desc with SL_STAGE_DESC_INIT, and return it from
 *      SL_STAGE_ENTRY.
 *   See docs/writing-a-stage.md for a complete example.
 *
 * Records and acknowledgement ("nothing lost"):
 *   Every record that enters a pipeline from a source carries an ack token (rec->ack) tied to
 *   its source position. A position is committed back to the source only when every record at
 *   or before it is finished. A record is finished when nothing references it any more:
 *     - a transform that emits a record (the same one, or a new one with .ack set to the input's
 *       token) passes the reference downstream;
 *     - a transform that does not emit a record drops it: it is finished ("dropped" metric);
 *     - a sink that returns from process without holding a record has made it durable;
 *     - a stage that needs more time (async delivery, buffering until fsync or COMMIT) takes a
 *       reference with api->hold() and gives it back with api->release() once durable;
 *     - api->reject() sends a record to the pipeline's dead-letter sink with a reason; it is
 *       finished once the dead-letter sink has it.
 *   Groups (api->ack_group) let one output record stand for many inputs (window aggregates).
 *
 * Threads: a stage instance's callbacks never run concurrently (one task = one thread, one
 * instance per task). api->release, api->ack_group_*, log and the metric calls are thread-safe and
 * may be called from any thread (a delivery-report thread, say); everything else only from
 * inside a callback of the stage that owns the ctx.
 *
 * Ownership, in one rule: everything the host passes in is borrowed until the callback returns;
 * everything the stage passes to the host is copied by the host before the call returns.
 * Exceptions are stated next to the function.
 */
#ifndef SLUICE_STAGE_H
#define SLUICE_STAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- versioning ---------------------------------------------------------------------- */

#define SL_STAGE_MAGIC 0x534C5354u /* "SLST" */
#define SL_ABI_MAJOR 1             /* incompatible change: the host refuses other majors */
#define SL_ABI_MINOR 8             /* append-only additions: the host refuses newer minors */

/*
 * Every minor, what it added and the sizes of the two versioned structs (bytes on LP64):
 *
 *   minor  sizeof(sl_stage_desc)  sizeof(sl_api)  added
 *   1.0    152                    288             first release (restore, on_restore,
 *                                                 json_set_bool, json_next included)
 *   1.1    152                    288             SL_T_PATH, SL_CFG_OPERATOR_ONLY,
 *                                                 SL_CFG_KEYS_LISTED (no struct grew)
 *   1.2    160                    296             api->watch, sl_stage_desc.on_finished
 *   1.3    160                    320             api->json_remove, json_set_json, set_key
 *   1.4    168                    320             sl_stage_desc.check
 *   1.5    168                    328             api->set_timestamp; batch records are const
 *   1.6    168                    328             flush reason SL_FLUSH_REVOKE (no struct grew)
 *   1.7    168                    392             api->json_string_len, json_int64, json_print,
 *                                                 json_key_init, json_get_key, json_key_is,
 *                                                 json_key_hash, emit_borrowed
 *   1.8    168                    400             api->report_end_offsets
 *
 * The host loads a stage of the same major and an older or equal minor. It reads a
 * descriptor field only when the stage's struct_size covers it (fields a stage's minor does
 * not have read as NULL), and a stage tests for a host function added after its own minor with
 * SL_HAS(api, fn) before calling it. Appending: add the field at the end of its struct, bump
 * SL_ABI_MINOR, add a row here and to SL_ABI_TABLE (the loader's copy of this table: it fails
 * to compile when the last row does not match the structs), and say so in
 * docs/writing-a-stage.md.
 *
 * SL_ABI_TABLE(X) calls X(minor, last field of sl_stage_desc, last field of sl_api) per minor.
 */
#define SL_ABI_TABLE(X)                                                                      \
    X(0, on_restore, json_next)                                                              \
    X(1, on_restore, json_next)                                                              \
    X(2, on_finished, watch)                                                                 \
    X(3, on_finished, set_key)                                                               \
    X(4, check, set_key)                                                                     \
    X(5, check, set_timestamp)                                                               \
    X(6, check, set_timestamp)                                                               \
    X(7, check, emit_borrowed)                                                               \
    X(8, check, report_end_offsets)

/** Bytes of `type` up to and including `field`: what a struct_size must cover to hold it. */
#define SL_SIZE_TO(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/** Does the host's API table have `fn` (added at some minor) and is it set? */
#define SL_HAS(api, fn) ((api)->struct_size >= SL_SIZE_TO(sl_api, fn) && (api)->fn != NULL)

/** Name of the one symbol a stage exports (a function, see sl_stage_entry_fn). */
#define SL_STAGE_ENTRY_SYMBOL "sl_stage_entry"
#define SL_STAGE_ENTRY sl_stage_entry

/* ---- errors -------------------------------------------------------------------------- */

/** The one error enum every callback and host call returns. */
typedef enum sl_err {
    SL_OK = 0,
    SL_RETRY = 1,   /**< transient: the host backs off and calls again with the same batch */
    SL_FATAL = 2,   /**< the pipeline stops; log the reason with api->log before returning */
    SL_ECONFIG = 3, /**< bad configuration (init only): the pipeline does not start, exit 2 */
    SL_ENOMEM = 4,  /**< out of memory: treated as fatal */
    SL_DONE = 5,    /**< source only: input is exhausted; the pipeline drains and ends */
    SL_EINVAL = 6   /**< a host call was given an invalid argument */
} sl_err;

/** Human-readable text for an error code; a static string, never NULL. */
static inline const char *sl_strerror(int err)
{
    switch (err) {
    case SL_OK: return "ok";
    case SL_RETRY: return "transient failure, retry";
    case SL_FATAL: return "fatal error";
    case SL_ECONFIG: return "configuration error";
    case SL_ENOMEM: return "out of memory";
    case SL_DONE: return "end of input";
    case SL_EINVAL: return "invalid argument";
    default: return "unknown error";
    }
}

/* ---- records ------------------------------------------------------------------------- */

typedef struct sl_ctx sl_ctx;   /**< the host's handle of one stage instance; opaque */
typedef struct sl_ack sl_ack;   /**< a reference on one or more source positions; opaque */
typedef struct sl_json sl_json; /**< a node of a record's parsed JSON value; opaque */

/** ABI 1.3: a member name prepared once (api->json_key_init) so lookups compare a hash and a
 *  length per member instead of strings. `name` is borrowed: it must outlive the key. */
typedef struct sl_json_key {
    const char *name;
    size_t len;
    uint64_t hash;
} sl_json_key;

typedef struct sl_header {
    const char *name;  /**< NUL-terminated */
    const void *value;
    size_t value_len;
} sl_header;

/**
 * A record. Stages receive them borrowed (valid until the callback returns) and build their
 * own on the stack to emit (the host copies).
 *
 * Every field of an input record is changed through the API (api->set_topic,
 * api->set_timestamp, api->json_set_*), so the host can keep its caches right; the batch hands
 * them out const. (Stages built before ABI 1.5 changed `timestamp_ms` in place; the host still
 * honours that for them.)
 */
typedef struct sl_record {
    const void *key;
    size_t key_len;
    const void *value; /**< for JSON records see SL_STAGE_JSON_ONLY below */
    size_t value_len;
    const sl_header *headers;
    size_t n_headers;
    int64_t timestamp_ms; /**< ms since the epoch; event time when known, else ingest time */
    const char *topic;    /**< stream name (Kafka topic, or one a stage assigns); may be NULL */
    int32_t partition;    /**< source partition; -1 when none */
    int64_t offset;       /**< source position within the partition, defined by the source */
    sl_ack *ack;          /**< host-set on input records; on emit: the token to anchor to */
} sl_record;

/** A batch: an array of borrowed record pointers. */
typedef struct sl_batch {
    const sl_record *const *recs; /**< const since ABI 1.5 (same layout as before) */
    size_t n;
} sl_batch;

/** A source position, as handed to commit and to the partition callbacks. */
typedef struct sl_position {
    const char *topic;
    int32_t partition;
    int64_t offset; /**< commit: the offset of the last record such that it and every earlier
                         one of the partition are finished; assign: the committed offset, or -1 */
} sl_position;

/* ---- configuration ------------------------------------------------------------------- */

typedef enum sl_type {
    SL_T_BOOL = 1,  /**< int (0/1) */
    SL_T_INT,       /**< int64_t */
    SL_T_DOUBLE,    /**< double */
    SL_T_STRING,    /**< char * (host-owned until close) */
    SL_T_DURATION,  /**< int64_t milliseconds; YAML "500ms", "10s", "5m", "1h", "2d" or a number of ms */
    SL_T_SIZE,      /**< int64_t bytes; YAML "64KiB", "8MiB", "1GiB", "100kB" or a number */
    SL_T_ENUM,      /**< int: index into the '|'-separated `choices` */
    SL_T_LIST,      /**< sl_list of strings; a single scalar is a one-item list */
    SL_T_MAP,       /**< sl_map of string keys to string values (one level, scalars) */
    SL_T_JSON,      /**< char *: any YAML subtree as JSON text (host-owned until close) */
    SL_T_PATH       /**< char *: a file path (ABI 1.1). The host resolves it to an absolute path
                         (relative to the pipeline file's directory; for pipelines created over
                         REST, to the operator's data directory, which it may not leave) */
} sl_type;

typedef struct sl_list {
    const char *const *items;
    size_t n;
} sl_list;

typedef struct sl_map {
    const char *const *keys;
    const char *const *values;
    size_t n;
} sl_map;

/** Flags of a config entry. */
#define SL_CFG_REQUIRED 0x1u /**< the key must be present (a default is then meaningless) */
#define SL_CFG_BOUNDED 0x2u  /**< `min` and `max` apply (INT, DOUBLE, DURATION, SIZE, list length) */
/** ABI 1.1: only the operator's own pipeline files may set this key; a pipeline created over
 *  REST (untrusted) that sets it is refused. For settings that run a command, load code or
 *  reach outside the data directory. */
#define SL_CFG_OPERATOR_ONLY 0x4u
/** ABI 1.1, SL_T_MAP only: `choices` lists the map's keys as "!key|key|...". A "!key" is never
 *  accepted (it would switch a guarantee off); a pipeline created over REST may set only the
 *  plain keys listed (an allow-list); the operator's files may set any other key too. */
#define SL_CFG_KEYS_LISTED 0x8u

/**
 * One row of a stage's config table (the nginx / Fluent Bit way: config is data). The host
 * validates the YAML `with:` map against the table, reports unknown keys, wrong types, values
 * out of bounds and missing required keys with file:line:column, then writes typed values at
 * `offset` into a zeroed struct of desc->config_size bytes and hands it to init.
 * The table ends with an entry whose key is NULL.
 */
typedef struct sl_config_entry {
    const char *key;
    sl_type type;
    unsigned flags;            /**< SL_CFG_* */
    const char *default_value; /**< YAML text parsed like a user value; NULL = no default */
    double min, max;           /**< with SL_CFG_BOUNDED; durations in ms, sizes in bytes */
    const char *choices;       /**< SL_T_ENUM: "earliest|latest" */
    size_t offset;             /**< offsetof(your_config, field) */
    const char *description;   /**< one line, shown by `sluice plugins describe` */
} sl_config_entry;

/*
 * Typed rows (header only, no ABI change): each macro names the setting's key, the config
 * struct and field, and fixes the sl_type; the field's C type is checked at compile time, so a
 * duration stored into an `int`, say, does not build. The rest are named fields:
 *
 *   static const sl_config_entry table[] = {
 *       SL_CFG_STRING("dsn", my_config, dsn, .description = "libpq conninfo"),
 *       SL_CFG_INT("batch_size", my_config, batch_size, .flags = SL_CFG_BOUNDED, .min = 1,
 *                  .max = 1000000, .default_value = "10000", .description = "rows per batch"),
 *       SL_CFG_END,
 *   };
 */
#if defined(__cplusplus)
#define SL_CFG_AT(stype, field, ctype) offsetof(stype, field)
#else
/** offsetof(stype, field), refusing to compile unless the field's type is `ctype`. */
#define SL_CFG_AT(stype, field, ctype)                                                       \
    (offsetof(stype, field) +                                                                \
     0 * sizeof(struct {                                                                     \
         _Static_assert(_Generic(((stype *)0)->field, ctype: 1, default: 0),                 \
                        "config field " #stype "." #field " must have type " #ctype);             \
         int sl_unused;                                                                      \
     }))
#endif
#define SL_CFG_ROW_(key_, sltype, stype, field, ctype, ...)                                  \
    {.key = (key_), .type = (sltype), .offset = SL_CFG_AT(stype, field, ctype), __VA_ARGS__}
#define SL_CFG_BOOL(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_BOOL, stype, field, int, __VA_ARGS__)
#define SL_CFG_INT(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_INT, stype, field, int64_t, __VA_ARGS__)
#define SL_CFG_DOUBLE(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_DOUBLE, stype, field, double, __VA_ARGS__)
#define SL_CFG_STRING(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_STRING, stype, field, char *, __VA_ARGS__)
#define SL_CFG_PATH(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_PATH, stype, field, char *, __VA_ARGS__)
#define SL_CFG_JSON(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_JSON, stype, field, char *, __VA_ARGS__)
#define SL_CFG_DURATION(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_DURATION, stype, field, int64_t, __VA_ARGS__)
#define SL_CFG_SIZE(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_SIZE, stype, field, int64_t, __VA_ARGS__)
#define SL_CFG_ENUM(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_ENUM, stype, field, int, __VA_ARGS__)
#define SL_CFG_LIST(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_LIST, stype, field, sl_list, __VA_ARGS__)
#define SL_CFG_MAP(key, stype, field, ...) SL_CFG_ROW_(key, SL_T_MAP, stype, field, sl_map, __VA_ARGS__)
/** The row that ends a table. */
#define SL_CFG_END {.key = NULL}

/* ---- the host API -------------------------------------------------------------------- */

typedef enum sl_log_level { SL_LOG_DEBUG = 0, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR } sl_log_level;

typedef enum sl_json_type {
    SL_JSON_INVALID = 0, /**< no such node */
    SL_JSON_NULL,
    SL_JSON_BOOL,
    SL_JSON_NUMBER,
    SL_JSON_STRING,
    SL_JSON_ARRAY,
    SL_JSON_OBJECT
} sl_json_type;

/**
 * Functions the host hands to every stage. Append-only: new functions are added at the end
 * and announced by a minor ABI bump; check `struct_size` before using one added after 1.0.
 */
typedef struct sl_api {
    uint32_t struct_size;
    uint32_t abi_minor;

    /* -- logging and metrics (thread-safe) -- */

    /** Log one line: level=… pipeline=… task=… stage=… msg="…". printf-style. */
    void (*log)(sl_ctx *ctx, sl_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    /** Add `n` to the stage's counter `name` (created on first use; name is copied). */
    void (*count)(sl_ctx *ctx, const char *name, uint64_t n);
    /** Record one observation `value` (seconds or bytes) in the stage's histogram `name`. */
    void (*observe)(sl_ctx *ctx, const char *name, double value);

    /* -- records -- */

    /**
     * Send a record downstream (source, transform) — or, from a sink, nowhere (error).
     * `rec` may be an input record of the current batch (forwarded without copying, with any
     * JSON changes made to it) or a record the stage built; the host copies the latter's bytes.
     * The emitted record is anchored to rec->ack (a new reference is taken): an input's token,
     * a held token, a group, or NULL (a source's records always get a fresh token for
     * (partition, offset); NULL from a transform means "not tied to any input").
     * Returns SL_OK or SL_ENOMEM.
     */
    sl_err (*emit)(sl_ctx *ctx, const sl_record *rec);

    /**
     * Keep a record unfinished beyond this callback: returns a new reference the stage owns
     * and gives back with release() (from any thread). Never NULL for an input record.
     */
    sl_ack *(*hold)(sl_ctx *ctx, const sl_record *rec);
    /** Give back a reference from hold() or ack_group(). Thread-safe. */
    void (*release)(sl_ack *ack);

    /**
     * Send `rec` to the pipeline's dead-letter sink with headers sluice.error.stage and
     * sluice.error.reason (reason is copied). The record counts as rejected; it is finished
     * when the dead-letter sink has it. Without a dead-letter sink, or when that sink refuses
     * it, the pipeline's errors.tolerance decides: none (default) stops the pipeline without
     * committing past the record; all drops it (logged, counter errors_dropped).
     * `rec` may also be a record the stage built (after a delayed failure, say): the host
     * copies it and takes its own reference on rec->ack, as emit does, so the stage may
     * release its hold right after this call.
     */
    void (*reject)(sl_ctx *ctx, const sl_record *rec, const char *reason);

    /** A new, empty group the stage owns (release it when done). Thread-safe. */
    sl_ack *(*ack_group)(sl_ctx *ctx);
    /** Add a reference on `member` (an input's rec->ack, a held token or a group) to `group`:
     *  the member stays unfinished until the group is finished. Thread-safe. */
    void (*ack_group_add)(sl_ack *group, sl_ack *member);

    /* -- time -- */

    /** Wall clock, ms since the epoch. */
    int64_t (*now_ms)(sl_ctx *ctx);
    /** Monotonic clock, ms; for intervals and timeouts. */
    int64_t (*monotonic_ms)(sl_ctx *ctx);

    /* -- lazy JSON access: a record's value is parsed at most once per chain -- */

    /**
     * The parsed root of rec->value, parsed on first use and cached on the record, so the next
     * stage of the chain reads the same tree. NULL if the value is not valid JSON; then *err
     * (if not NULL) points to a static reason. Borrowed until the callback returns.
     */
    sl_json *(*json)(sl_ctx *ctx, const sl_record *rec, const char **err);
    /** Member `key` of an object node; NULL if absent or `obj` is not an object. */
    sl_json *(*json_get)(const sl_json *obj, const char *key);
    sl_json_type (*json_type)(const sl_json *node);
    /** A string node's NUL-terminated text, else NULL. */
    const char *(*json_string)(const sl_json *node);
    /** A number node's value (a bool gives 0/1), else NAN. */
    double (*json_number)(const sl_json *node);
    /** Number of items of an array or members of an object. */
    size_t (*json_size)(const sl_json *node);
    /** Item `i` of an array or member `i` of an object (its key via json_key). */
    sl_json *(*json_at)(const sl_json *node, size_t i);
    /** The member name of a node inside an object, else NULL. */
    const char *(*json_key)(const sl_json *node);

    /**
     * Change a member of an input record's JSON object (created if absent). The host
     * re-serialises rec->value lazily, before a stage that reads raw values sees it. `value`
     * is copied. Returns SL_EINVAL when the record has no parsed JSON object.
     */
    sl_err (*json_set_string)(sl_ctx *ctx, const sl_record *rec, const char *key, const char *value);
    sl_err (*json_set_number)(sl_ctx *ctx, const sl_record *rec, const char *key, double value);
    sl_err (*json_set_null)(sl_ctx *ctx, const sl_record *rec, const char *key);

    /** Current bytes of a record's value, re-serialised if its JSON was changed. Borrowed. */
    const void *(*value)(sl_ctx *ctx, const sl_record *rec, size_t *len);

    /* -- record attributes -- */

    /** Set an input record's topic (copied). */
    sl_err (*set_topic)(sl_ctx *ctx, const sl_record *rec, const char *topic);

    /* -- partitions (sources) -- */

    /**
     * A source tells the host which partitions it now owns (or no longer owns). The host calls
     * every stage's on_assign / on_revoke so stateful stages can restore or drop per-partition
     * state; for on_assign, positions carry the committed offset the source resumes after.
     * On revoke the host first drains the chain and commits.
     * On assign, a stage that keeps positions itself (offsets stored in a sink, in the same
     * transaction as its rows) may overwrite parts[i].offset in its on_assign; the source
     * resumes after the offsets it reads back from `parts` when this call returns.
     */
    void (*partitions_assigned)(sl_ctx *ctx, sl_position *parts, size_t n);
    void (*partitions_revoked)(sl_ctx *ctx, const sl_position *parts, size_t n);

    /* -- context -- */

    /** Pipeline name, stage name, task index, and the directory of the pipeline file (for
     *  resolving relative paths in config). Borrowed for the life of the instance. */
    const char *(*pipeline_name)(sl_ctx *ctx);
    const char *(*stage_name)(sl_ctx *ctx);
    int (*task_index)(sl_ctx *ctx);
    const char *(*config_dir)(sl_ctx *ctx);

    /** Parse "10s" / "64KiB" the way the config loader does; SL_EINVAL if malformed. */
    sl_err (*parse_duration)(const char *text, int64_t *ms);
    sl_err (*parse_size)(const char *text, int64_t *bytes);

    /* -- state restore on partition assignment -- */

    /**
     * From a stage's on_assign (typically a sink that keeps durable outputs): hand back state
     * records for the newly assigned partitions — e.g. the KPI rows and events a database holds
     * for them. The host passes them, in chain order, to on_restore of every stage before this
     * one, so stateful stages rebuild per-partition state from what is durable downstream
     * (no stage needs to know which sink holds it). Records are borrowed until return; their
     * partition and offset say which partition and position the state belongs to.
     */
    void (*restore)(sl_ctx *ctx, const sl_record *recs, size_t n);

    /** Like json_set_number, for a boolean member. */
    sl_err (*json_set_bool)(sl_ctx *ctx, const sl_record *rec, const char *key, int value);

    /** The next item of the array or object `node` is in, NULL after the last. Walking a
     *  container with json_at(c, 0) and then json_next is O(n); json_at(c, i) for every i is
     *  O(n^2) (the items are a list). */
    sl_json *(*json_next)(const sl_json *node);

    /* -- ABI 1.2: hearing what became of a record downstream -- */

    /**
     * From process(), on an input record of the batch, before emitting it: from now on the
     * record and every copy a later stage makes of it are anchored to a new token, and when
     * all of them are finished (made durable by a sink, dropped by a later stage, or taken by
     * the dead letter) the host calls this stage's desc->on_finished(self, ctx, cookie,
     * rejected) once, on the task thread, between other callbacks. `rejected` is 1 when any of
     * them went to the dead letter (a sink refused the row, say).
     * This is how an aggregate counts an input only once its pass-through copy is durable:
     * hold the input, watch it, emit it, and add it to the aggregate in on_finished.
     * The input stays unfinished while the copies are out (the new token holds it). Counts as a
     * hold for SL_RETRY (see process). SL_EINVAL (and no callback, ever) when `rec` is not an
     * input record of the current call or the stage has no on_finished.
     * on_finished is never called after close; after on_revoke it is still called for records
     * of the revoked partitions (the stage ignores what it no longer owns).
     */
    sl_err (*watch)(sl_ctx *ctx, const sl_record *rec, void *cookie);

    /* -- ABI 1.3: editing a record beyond scalar members (the transform stage, issue 14) -- */

    /** Remove member `key` from an input record's JSON object. SL_OK also when it was absent;
     *  SL_EINVAL when the record has no parsed JSON object. `key` may be the member's own
     *  json_key (it is not read after the member is freed). */
    sl_err (*json_remove)(sl_ctx *ctx, const sl_record *rec, const char *key);
    /** Like json_set_string, with a deep copy of any node as the value (an object or array too;
     *  `value` may be a node of the same record's tree, even the member being replaced). */
    sl_err (*json_set_json)(sl_ctx *ctx, const sl_record *rec, const char *key, const sl_json *value);
    /** Set an input record's key (copied; len 0 clears it). */
    sl_err (*set_key)(sl_ctx *ctx, const sl_record *rec, const void *key, size_t len);

    /* -- ABI 1.4 - 1.6: test with SL_HAS before calling -- */

    /** ABI 1.5: set an input record's timestamp (ms since the epoch) before emitting it.
     *  SL_EINVAL when `rec` is not an input record of the current batch. */
    sl_err (*set_timestamp)(sl_ctx *ctx, const sl_record *rec, int64_t timestamp_ms);

    /* -- ABI 1.7: JSON reads without the library showing through (issue 13). Nodes carry
     *    their string lengths, exact integers and their keys' hashes from the parse. -- */

    /** A string node's text (NUL-terminated; JSON strings here hold no NUL) and its length in
     *  bytes in *len, else NULL. */
    const char *(*json_string_len)(const sl_json *node, size_t *len);
    /** A number node's value as an int64: SL_OK when it is an integer int64 holds exactly
     *  (integers beyond 2^53 are read from their digits, not through a double); SL_EINVAL for
     *  fractions, out-of-range values and non-numbers. (Printing — json_print, or the value of a
     *  record whose JSON a stage changed — still writes numbers from the double: such an
     *  integer comes out rounded there.) */
    sl_err (*json_int64)(const sl_json *node, int64_t *out);
    /** The compact JSON text of `node` (any subtree), NUL-terminated, *len its length; borrowed
     *  until the callback returns. NULL if it cannot be printed. */
    const char *(*json_print)(sl_ctx *ctx, const sl_json *node, size_t *len);
    /** Prepares `k` for `name` (borrowed: it must outlive k). Call once, at init. */
    void (*json_key_init)(sl_json_key *k, const char *name);
    /** Member `k` of an object node, NULL if absent: one hash compare per member. */
    sl_json *(*json_get_key)(const sl_json *obj, const sl_json_key *k);
    /** Is `node` an object member named `k`? */
    int (*json_key_is)(const sl_json *node, const sl_json_key *k);
    /** A member's key hash (equal to json_key_init's for the same name) and its length in
     *  *len, for a stage's own table of expected names; 0 for a node that is not a member.
     *  Not seeded: do not build tables that untrusted keys fill with it. */
    uint64_t (*json_key_hash)(const sl_json *node, size_t *len);

    /** ABI 1.7. Source only (from other kinds it is emit): like emit, but the host references the
     *  record's key, value, header names and values and topic instead of copying them (the
     *  header array itself is copied). The source keeps those bytes unchanged until its next
     *  poll with max > 0 returns, or its close: the host is done with a poll's records before
     *  it polls for more (a poll with max = 0, made while a stage retries, must not free them). */
    sl_err (*emit_borrowed)(sl_ctx *ctx, const sl_record *rec);

    /* -- ABI 1.8: consumer lag from the source -- */

    /**
     * Source: the end of each partition it reads now (Kafka's high watermark: the offset the
     * next record written will get), so the host can report consumer lag (status, /metrics
     * `sluice_consumer_lag`, autoscaling) without knowing the source. Each call replaces the
     * task's previous report; call it from the task thread (poll) about once a second, with
     * every partition the task owns whose end is known. Positions borrowed until return. A
     * stage that may run on an older host tests SL_HAS(api, report_end_offsets) first.
     */
    void (*report_end_offsets)(sl_ctx *ctx, const sl_position *ends, size_t n);
} sl_api;

/* ---- the descriptor ------------------------------------------------------------------ */

typedef enum sl_kind { SL_KIND_SOURCE = 1, SL_KIND_TRANSFORM = 2, SL_KIND_SINK = 3 } sl_kind;

/** flush's `final` argument: why the host flushes (see sl_stage_desc.flush). */
#define SL_FLUSH_TICK 0   /**< periodic, or the source is idle */
#define SL_FLUSH_END 1    /**< draining: the input ended or the pipeline stops */
#define SL_FLUSH_REVOKE 2 /**< ABI 1.6: draining before partitions are revoked (rebalance) */

/**
 * ABI 1.4: what sl_stage_desc.check works with. The host owns every buffer.
 */
typedef struct sl_check {
    const sl_api *api;      /**< only the calls without a ctx (parse_duration, parse_size) */
    const char *config_dir; /**< what api->config_dir will return (relative paths) */
    char *why;              /**< out: one line, what is wrong */
    size_t why_len;
    char *where;            /**< out, optional: JSON Pointer of the value to blame, relative to
                                 `with:` ("/tables/events/tabel"); "" = the stage as a whole */
    size_t where_len;
} sl_check;

/** Descriptor flags. (0x1 was SL_STAGE_THREAD_SAFE until 1.4: the host never read it, and a
 *  stage instance's callbacks never run concurrently; the bit stays unused.) */
#define SL_STAGE_JSON_ONLY 0x2u   /**< the stage reads records only through api->json*, so the
                                       host need not re-serialise changed JSON before it */
#define SL_STAGE_SINGLE_TASK 0x4u /**< the stage cannot run in more than one task (a file) */

typedef struct sl_stage_desc {
    uint32_t magic;       /**< SL_STAGE_MAGIC */
    uint16_t abi_major;   /**< SL_ABI_MAJOR */
    uint16_t abi_minor;   /**< SL_ABI_MINOR */
    uint32_t struct_size; /**< sizeof(sl_stage_desc) as the stage was compiled */
    uint32_t flags;       /**< SL_STAGE_* */

    const char *name;        /**< "kafka-source": lowercase, digits, '-'; unique */
    const char *version;     /**< the stage's own version, "1.2.0" */
    sl_kind kind;
    const char *description; /**< one line */

    const sl_config_entry *config; /**< the config table, NULL-key terminated; may be NULL */
    size_t config_size;            /**< sizeof the struct the table's offsets point into */

    /**
     * Create an instance. `config` is borrowed for the life of the instance (the host frees it
     * after close). Store your state in *self. On SL_ECONFIG/SL_FATAL, log why; close is not
     * called, so free what you allocated.
     */
    sl_err (*init)(sl_ctx *ctx, const sl_api *api, const void *config, void **self);

    /**
     * Source: produce up to `max` records with api->emit, waiting at most `timeout_ms` when
     * nothing is available. SL_OK (with or without records), SL_RETRY, SL_FATAL, or SL_DONE
     * when the input is exhausted (records emitted in the same call are kept).
     */
    sl_err (*poll)(void *self, sl_ctx *ctx, size_t max, int timeout_ms);

    /**
     * Transform or sink: handle a batch (borrowed until return). See "Records and
     * acknowledgement" above. On SL_RETRY the host discards what this call emitted and the dead
     * letters of the input records it rejected, and calls again with the same batch after a
     * backoff; holding an input record and then returning RETRY stops the pipeline (a retry
     * could finish it twice). While a stage retries, a source with pause/resume is paused and
     * polled with max = 0 (so a Kafka member keeps its place in the group).
     */
    sl_err (*process)(void *self, sl_ctx *ctx, const sl_batch *batch);

    /**
     * Called about every 10 ms and when the source is idle with `final` = SL_FLUSH_TICK (0), and
     * repeatedly while the task drains with a nonzero reason: SL_FLUSH_END (1) when the input
     * ended or the pipeline stops, SL_FLUSH_REVOKE (2, ABI 1.6) before partitions are revoked
     * (a rebalance: the stage goes on with the partitions it keeps, so it should make buffered
     * work durable but not close what belongs to the end of input). Stages built before 1.6
     * get SL_FLUSH_END for both. Make buffered work durable (sinks), emit due aggregates
     * (transforms; what is emitted here travels down the rest of the chain). May be NULL.
     */
    sl_err (*flush)(void *self, sl_ctx *ctx, int final);

    /**
     * Source: persist/commit these positions (see sl_position.offset). Called from the task
     * thread: on an interval between polls, at shutdown, and on revoke, which comes from
     * inside the source's own poll (its rebalance callback calls api->partitions_revoked,
     * which drains and commits before it returns). May be NULL.
     */
    sl_err (*commit)(void *self, sl_ctx *ctx, const sl_position *pos, size_t n);

    /** Free the instance. Called once, after the last other callback. May be NULL. */
    void (*close)(void *self, sl_ctx *ctx);

    /** Optional: stop / restart producing (source) — the host calls these for backpressure
     *  and pause requests. May be NULL. */
    sl_err (*pause)(void *self, sl_ctx *ctx);
    sl_err (*resume)(void *self, sl_ctx *ctx);

    /**
     * Optional, any kind: partitions were assigned to / revoked from this task (see
     * api->partitions_assigned). A stateful stage restores or drops per-partition state here.
     * Positions borrowed until return; on_assign may overwrite parts[i].offset (see
     * api->partitions_assigned). Stages are called in chain order, the source first.
     */
    sl_err (*on_assign)(void *self, sl_ctx *ctx, sl_position *parts, size_t n);
    sl_err (*on_revoke)(void *self, sl_ctx *ctx, const sl_position *parts, size_t n);

    /**
     * Optional: state records handed back by a later stage's api->restore (see there), after
     * on_assign and before any record of the assigned partitions. Take the records you know
     * (by topic or fields) and ignore the rest. Borrowed until return; do not emit here.
     */
    sl_err (*on_restore)(void *self, sl_ctx *ctx, const sl_batch *state);

    /**
     * ABI 1.2, optional: what became of a record this stage passed to api->watch (see there).
     * Runs on the task thread; may hold, release, group, log and count, not emit (what it
     * changes goes out with the stage's next process or flush). SL_FATAL stops the pipeline.
     */
    sl_err (*on_finished)(void *self, sl_ctx *ctx, void *cookie, int rejected);

    /* -- ABI 1.4 - 1.6 -- */

    /**
     * ABI 1.4, optional: semantic checks of a config the table already accepted (nginx's
     * init_conf, PostgreSQL's GUC check hook). The host calls it in `sluice validate`, in
     * REST config validation, before a hot reload replaces a running pipeline, and before
     * init. No instance exists: use only `c`. Return SL_OK, or SL_ECONFIG with c->why set and,
     * when one value is to blame, c->where set to its JSON Pointer inside `with:`
     * ("/tables/events/tabel"), which the host turns into file:line:column.
     */
    sl_err (*check)(const void *config, sl_check *c);
} sl_stage_desc;

/** Fills the versioning header of a descriptor. */
#define SL_STAGE_DESC_INIT                                                                   \
    .magic = SL_STAGE_MAGIC, .abi_major = SL_ABI_MAJOR, .abi_minor = SL_ABI_MINOR,            \
    .struct_size = (uint32_t)sizeof(sl_stage_desc)

/** The entry point a stage exports: returns its descriptor (static storage, never freed). */
typedef const sl_stage_desc *(*sl_stage_entry_fn)(void);

#if defined(__GNUC__)
#define SL_EXPORT __attribute__((visibility("default")))
#else
#define SL_EXPORT
#endif

/** Declares the entry point: `SL_STAGE_DEFINE(my_desc)` at the end of the stage's file. */
#define SL_STAGE_DEFINE(desc)                                                                \
    SL_EXPORT const sl_stage_desc *SL_STAGE_ENTRY(void);                                      \
    SL_EXPORT const sl_stage_desc *SL_STAGE_ENTRY(void) { return &(desc); }

#ifdef __cplusplus
}
#endif
#endif /* SLUICE_STAGE_H */
