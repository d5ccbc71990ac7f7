/*
 * config.c — pg-sink: parsing the `tables` setting into table specs.
 */
#include "pg-sink.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- parsing `tables` ---------------------------------------------------------------- */

static bool parse_source(column *c, const char *s)
{
    static const struct { const char *name; src_kind kind; } attrs[] = {
        {"$partition", SRC_PARTITION}, {"$offset", SRC_OFFSET}, {"$timestamp", SRC_TIMESTAMP},
        {"$key", SRC_KEY},             {"$topic", SRC_TOPIC},   {"$value", SRC_VALUE},
    };
    if (strncmp(s, "$header.", 8) == 0 && s[8]) {
        c->src = SRC_HEADER;
        c->arg = strdup(s + 8);
        return c->arg != NULL;
    }
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        if (strcmp(s, attrs[i].name) == 0) {
            c->src = attrs[i].kind;
            return true;
        }
    }
    if (s[0] == '$') return false; /* a typo of an attribute, not a field named "$…" */
    c->src = SRC_FIELD;
    c->arg = strdup(s);
    return c->arg != NULL;
}

static bool parse_string_list(const cJSON *j, char ***out, size_t *n)
{
    if (cJSON_IsString(j)) {
        *out = calloc(1, sizeof **out);
        if (!*out || !((*out)[0] = strdup(j->valuestring))) return false;
        *n = 1;
        return true;
    }
    if (!cJSON_IsArray(j)) return false;
    size_t k = (size_t)cJSON_GetArraySize(j);
    *out = calloc(k ? k : 1, sizeof **out);
    if (!*out) return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (!cJSON_IsString(it) || !((*out)[*n] = strdup(it->valuestring))) return false;
        (*n)++;
    }
    return true;
}


/* `restore: {within: 48h, time_column: window_start, max_rows: N}` (every key optional). */
static const char *parse_restore(table_spec *t, const cJSON *j, const sl_api *api)
{
    if (!cJSON_IsObject(j))
        return "restore: expected a map {within, time_column, topic_column, max_rows}";
    t->restore = true;
    t->restore_max_rows = 0; /* no cap: a restore is complete or fails */
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const char *k = it->string;
        if (strcmp(k, "within") == 0) {
            if (cJSON_IsNumber(it) && it->valuedouble > 0) {
                t->restore_within_ms = (int64_t)it->valuedouble;
            } else if (!cJSON_IsString(it) ||
                       api->parse_duration(it->valuestring, &t->restore_within_ms) != SL_OK ||
                       t->restore_within_ms <= 0) {
                return "restore.within: expected a duration (\"15m\", \"48h\")";
            }
        } else if (strcmp(k, "time_column") == 0) {
            if (!cJSON_IsString(it) || !it->valuestring[0])
                return "restore.time_column: expected a column name";
            if (!(t->restore_time_col = strdup(it->valuestring))) return "out of memory";
        } else if (strcmp(k, "topic_column") == 0) {
            if (!cJSON_IsString(it) || !it->valuestring[0])
                return "restore.topic_column: expected a column name";
            if (!(t->restore_topic_col = strdup(it->valuestring))) return "out of memory";
        } else if (strcmp(k, "max_rows") == 0) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 1 || it->valuedouble > 1e9)
                return "restore.max_rows: expected a number from 1 to 1000000000";
            t->restore_max_rows = (int64_t)it->valuedouble;
        } else {
            return "restore: unknown key (expected within, time_column, topic_column, max_rows)";
        }
    }
    if (t->restore_within_ms && !t->restore_time_col) return "restore.within needs time_column";
    return NULL;
}

/* One `tables` entry. Returns NULL on success, else what is wrong (static text). */
const char *parse_spec(table_spec *t, const cJSON *j, const sl_api *api, const char **bad_key)
{
    *bad_key = NULL;
    if (!cJSON_IsObject(j) && !cJSON_IsNull(j)) return "must be a map";
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const char *k = it->string;
        *bad_key = k; /* what an error inside this loop blames */
        if (strcmp(k, "table") == 0 || strcmp(k, "schema") == 0) {
            if (!cJSON_IsString(it) || !it->valuestring[0]) return "table/schema: expected a name";
            char **dst = k[0] == 't' ? &t->table : &t->schema;
            if (!(*dst = strdup(it->valuestring))) return "out of memory";
        } else if (strcmp(k, "conflict") == 0) {
            if (!parse_string_list(it, &t->keys, &t->nkeys) || t->nkeys == 0)
                return "conflict: expected a column name or a list of them";
        } else if (strcmp(k, "on_conflict") == 0) {
            if (!cJSON_IsString(it)) return "on_conflict: expected ignore or update";
            if (strcmp(it->valuestring, "ignore") == 0) t->mode = ON_CONFLICT_IGNORE;
            else if (strcmp(it->valuestring, "update") == 0) t->mode = ON_CONFLICT_UPDATE;
            else return "on_conflict: expected ignore or update";
        } else if (strcmp(k, "columns") == 0) {
            size_t n = (size_t)cJSON_GetArraySize(it);
            if ((!cJSON_IsObject(it) && !cJSON_IsArray(it)) || n == 0)
                return "columns: expected a non-empty map (column: source) or list";
            if (!(t->cols = calloc(n, sizeof *t->cols))) return "out of memory";
            const cJSON *c;
            cJSON_ArrayForEach(c, it) {
                column *col = &t->cols[t->ncols++];
                const char *src;
                if (cJSON_IsArray(it)) { /* list form: column = same-named field */
                    if (!cJSON_IsString(c)) return "columns: list items must be names";
                    col->name = strdup(c->valuestring);
                    src = c->valuestring;
                } else {
                    col->name = strdup(c->string);
                    src = c->string;
                    if (cJSON_IsString(c)) {
                        src = c->valuestring;
                    } else if (cJSON_IsObject(c)) {
                        const cJSON *from = cJSON_GetObjectItemCaseSensitive(c, "from");
                        const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "type");
                        if (cJSON_GetArraySize(c) != (from != NULL) + (type != NULL))
                            return "columns: a column spec has only `from` and `type`";
                        if (from && !cJSON_IsString(from)) return "columns: `from` must be text";
                        if (type && !cJSON_IsString(type)) return "columns: `type` must be text";
                        if (from) src = from->valuestring;
                        /* spliced into CREATE TABLE: a strict grammar, not SQL */
                        if (type && !sql_type_ok(type->valuestring))
                            return "columns: `type` must be a known SQL type name with optional "
                                   "(n[,n]), time zone and [] (e.g. numeric(12,2), text[], "
                                   "timestamp(3) with time zone)";
                        if (type && !(col->cfg_type = strdup(type->valuestring)))
                            return "out of memory";
                    } else if (!cJSON_IsNull(c)) {
                        return "columns: expected `column: source` or `column: {from, type}`";
                    }
                }
                if (!col->name) return "out of memory";
                if (!parse_source(col, src))
                    return "columns: unknown attribute (use $partition, $offset, $timestamp, "
                           "$key, $topic, $value or $header.NAME)";
                if (col->src == SRC_FIELD) t->needs_json = true;
            }
        } else if (strcmp(k, "check_schema") == 0) {
            if (!cJSON_IsString(it) || !it->valuestring[0])
                return "check_schema: expected the path of a validator schema";
            /* read at init: confined to the pipeline file's directory (no absolute path, no
             * "..") so a pipeline created over REST cannot make the sink read other files */
            const char *p = it->valuestring;
            if (p[0] == '/' || !strcmp(p, "..") || !strncmp(p, "../", 3) || strstr(p, "/../") ||
                (strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/..")))
                return "check_schema: a path relative to the pipeline file, without \"..\"";
            if (!(t->check_schema = strdup(it->valuestring))) return "out of memory";
        } else if (strcmp(k, "restore") == 0) {
            const char *e = parse_restore(t, it, api);
            if (e) return e;
        } else {
            return "unknown key (expected table, schema, columns, conflict, on_conflict, "
                   "restore, check_schema)";
        }
    }
    *bad_key = NULL;
    if (!t->table && strcmp(t->topic, "*") == 0) return "the \"*\" entry needs `table`";
    if (!t->table && !(t->table = strdup(t->topic))) return "out of memory";
    if (t->mode == ON_CONFLICT_UPDATE && t->nkeys == 0) return "on_conflict: update needs `conflict`";
    if (t->nkeys && t->mode == ON_CONFLICT_NONE) t->mode = ON_CONFLICT_IGNORE;
    t->auto_cols = t->ncols == 0;
    if (t->auto_cols) t->needs_json = true;
    return NULL;
}

/* Appends "/seg" to a JSON Pointer, escaping '~' and '/' (RFC 6901). */
static void pointer_add(char *p, size_t len, const char *seg)
{
    size_t k = strlen(p);
    if (k + 1 < len) p[k++] = '/';
    for (; *seg && k + 2 < len; seg++) {
        if (*seg == '~' || *seg == '/') {
            p[k++] = '~';
            p[k++] = *seg == '~' ? '0' : '1';
        } else {
            p[k++] = *seg;
        }
    }
    p[k] = 0;
}

/* The `tables` setting (and the settings that go with it) as specs, for init and for the
 * descriptor's check. NULL when fine; else what is wrong (in `why`), with `where` the JSON
 * Pointer of the value to blame. `dir` NULL: check_schema files are not read. The caller frees
 * *specs with free_specs whatever the result. */
const char *parse_tables(const pg_config *cfg, const sl_api *api, const char *dir, table_spec **specs,
                         size_t *nspecs, char *why, size_t whylen, char *where, size_t wherelen)
{
    *specs = NULL;
    *nspecs = 0;
    snprintf(where, wherelen, "/tables");
    cJSON *j = cJSON_Parse(cfg->tables ? cfg->tables : "");
    const char *err = NULL, *topic = NULL, *key = NULL;
    char sub[600] = "";
    if (!cJSON_IsObject(j) || cJSON_GetArraySize(j) == 0) {
        err = "tables: expected a map of topic to table spec";
    } else if (!(*specs = calloc((size_t)cJSON_GetArraySize(j), sizeof **specs))) {
        err = "out of memory";
    } else {
        const cJSON *it;
        cJSON_ArrayForEach(it, j) {
            table_spec *t = &(*specs)[(*nspecs)++];
            topic = it->string;
            if (!(t->topic = strdup(it->string))) err = "out of memory";
            else err = parse_spec(t, it, api, &key);
            if (!err && cfg->create_tables && t->auto_cols)
                err = "create_tables needs the table's `columns` (with their types)";
            if (!err && t->check_schema && dir) {
                /* relative to the pipeline file, like the validator's own `schema` */
                char path[4096];
                if (!dir[0]) snprintf(path, sizeof path, "%s", t->check_schema);
                else snprintf(path, sizeof path, "%s/%s", dir, t->check_schema);
                if (!(t->bounds = schema_bounds_load(path, sub, sizeof sub))) err = sub, key = "check_schema";
            }
            if (err) break;
        }
    }
    if (err && topic) {
        pointer_add(where, wherelen, topic);
        if (key) pointer_add(where, wherelen, key);
        if (key && !strncmp(err, "unknown key", 11))
            snprintf(why, whylen, "tables.%s: unknown key '%s'%s", topic, key, err + 11);
        else
            snprintf(why, whylen, "tables.%s: %s", topic, err);
    } else if (err) {
        snprintf(why, whylen, "%s", err);
    } else if (cfg->store_offsets && (!cfg->offsets_table || !cfg->offsets_table[0])) {
        snprintf(where, wherelen, "/offsets_table");
        snprintf(why, whylen, "offsets_table must name a table");
        err = why;
    }
    cJSON_Delete(j);
    return err ? why : NULL;
}

void free_columns(table_spec *t)
{
    for (size_t c = 0; c < t->ncols; c++) {
        free(t->cols[c].name);
        free(t->cols[c].cfg_type);
        free(t->cols[c].arg);
        free(t->cols[c].sql_type);
        free(t->cols[c].def_expr);
    }
    free(t->cols);
    t->cols = NULL;
    t->ncols = 0;
}

void free_specs(table_spec *specs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        table_spec *t = &specs[i];
        free_columns(t);
        for (size_t k = 0; k < t->nkeys; k++) free(t->keys[k]);
        free(t->keys);
        free(t->topic);
        free(t->schema);
        free(t->table);
        free(t->restore_time_col);
        free(t->restore_topic_col);
        free(t->check_schema);
        schema_bounds_free(t->bounds);
    }
    free(specs);
}
