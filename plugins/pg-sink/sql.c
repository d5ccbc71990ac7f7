/*
 * sql.c — pg-sink: SQL building (identifiers always through PQescapeIdentifier), the catalog,
 * and the classification of server errors.
 */
#include "pg-sink.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- SQL building (identifiers always through PQescapeIdentifier) --------------------- */

bool put_ident(PGconn *conn, buf *b, const char *name)
{
    char *q = PQescapeIdentifier(conn, name, strlen(name));
    if (!q) return false;
    buf_puts(b, q);
    PQfreemem(q);
    return true;
}

bool put_table_name(PGconn *conn, buf *b, const table_spec *t)
{
    if (t->schema) {
        if (!put_ident(conn, b, t->schema)) return false;
        buf_putc(b, '.');
    }
    return put_ident(conn, b, t->table);
}

/* Staging table name: one per spec, in this session's temp schema. */
static void put_staging(buf *b, size_t i) { buf_printf(b, "pg_temp.sluice_stg_%zu", i); }

const column *find_column(const table_spec *t, const char *name)
{
    for (size_t c = 0; c < t->ncols; c++)
        if (strcmp(t->cols[c].name, name) == 0) return &t->cols[c];
    return NULL;
}

static bool is_key(const table_spec *t, const char *name)
{
    for (size_t k = 0; k < t->nkeys; k++)
        if (strcmp(t->keys[k], name) == 0) return true;
    return false;
}

/* CREATE TEMP TABLE for staging, COPY and INSERT … SELECT … ON CONFLICT for spec i. */
bool build_sql(PGconn *conn, const table_spec *t, size_t i, buf *cp, buf *ins, buf *create)
{
    cp->len = ins->len = create->len = 0;
    bool ok = true;

    buf_puts(create, "CREATE TEMP TABLE IF NOT EXISTS ");
    put_staging(create, i);
    buf_puts(create, " (");
    buf_puts(cp, "COPY ");
    put_staging(cp, i);
    buf_puts(cp, " (");
    for (size_t c = 0; c < t->ncols; c++) {
        ok = ok && put_ident(conn, create, t->cols[c].name);
        buf_printf(create, " %s, ", t->cols[c].sql_type);
        ok = ok && put_ident(conn, cp, t->cols[c].name);
        buf_puts(cp, ", ");
    }
    buf_puts(create, SEQ_COLUMN " bigint) ON COMMIT DELETE ROWS");
    buf_puts(cp, SEQ_COLUMN ") FROM STDIN");

    buf_puts(ins, "INSERT INTO ");
    ok = ok && put_table_name(conn, ins, t);
    buf_puts(ins, " (");
    for (size_t c = 0; c < t->ncols; c++) {
        if (c) buf_puts(ins, ", ");
        ok = ok && put_ident(conn, ins, t->cols[c].name);
    }
    buf_puts(ins, ") SELECT ");
    if (t->mode == ON_CONFLICT_UPDATE) {
        /* One statement may not update a row twice: keep the last arrival per key. */
        buf_puts(ins, "DISTINCT ON (");
        for (size_t k = 0; k < t->nkeys; k++) {
            if (k) buf_puts(ins, ", ");
            buf_puts(ins, "s.");
            ok = ok && put_ident(conn, ins, t->keys[k]);
        }
        buf_puts(ins, ") ");
    }
    for (size_t c = 0; c < t->ncols; c++) {
        const column *col = &t->cols[c];
        if (c) buf_puts(ins, ", ");
        /* A missing value takes the column's default rather than overriding it with NULL. */
        if (col->def_expr) buf_puts(ins, "COALESCE(");
        buf_puts(ins, "s.");
        ok = ok && put_ident(conn, ins, col->name);
        if (col->def_expr) buf_printf(ins, ", %s)", col->def_expr);
    }
    buf_puts(ins, " FROM ");
    put_staging(ins, i);
    buf_puts(ins, " s");
    if (t->mode == ON_CONFLICT_UPDATE) {
        buf_puts(ins, " ORDER BY ");
        for (size_t k = 0; k < t->nkeys; k++) {
            buf_puts(ins, "s.");
            ok = ok && put_ident(conn, ins, t->keys[k]);
            buf_puts(ins, ", ");
        }
        buf_puts(ins, "s." SEQ_COLUMN " DESC");
    } else if (t->mode == ON_CONFLICT_IGNORE) {
        buf_puts(ins, " ORDER BY s." SEQ_COLUMN); /* within a flush the first arrival wins */
    }
    if (t->mode != ON_CONFLICT_NONE) {
        buf_puts(ins, " ON CONFLICT");
        if (t->nkeys) {
            buf_puts(ins, " (");
            for (size_t k = 0; k < t->nkeys; k++) {
                if (k) buf_puts(ins, ", ");
                ok = ok && put_ident(conn, ins, t->keys[k]);
            }
            buf_puts(ins, ")");
        }
        size_t nset = 0;
        if (t->mode == ON_CONFLICT_UPDATE) {
            for (size_t c = 0; c < t->ncols; c++) {
                if (is_key(t, t->cols[c].name)) continue;
                buf_puts(ins, nset++ ? ", " : " DO UPDATE SET ");
                ok = ok && put_ident(conn, ins, t->cols[c].name);
                buf_puts(ins, " = EXCLUDED.");
                ok = ok && put_ident(conn, ins, t->cols[c].name);
            }
        }
        if (nset == 0) buf_puts(ins, " DO NOTHING"); /* ignore, or every column is a key */
    }
    return ok && !cp->oom && !ins->oom && !create->oom;
}

/* ---- connection, catalog, errors ----------------------------------------------------- */

/* Transient errors are the server's or the network's (keep the batch, retry later): connection
 * (08), insufficient resources (53), operator intervention (57P*, and 57014 a cancelled or
 * timed-out statement), serialization failure and deadlock (40001, 40P01, 40003 completion
 * unknown), lock not available (55P03) and system errors such as I/O (58). Every other error
 * of a row's statements — a data exception, a constraint, a trigger raising, a permission
 * refused on one table — is the rows' own (WR_DATA: bisect the batch, dead-letter exactly the
 * refused rows); callers outside a row's statements turn it into WR_FATAL. */
wr_result classify(PGconn *conn, const PGresult *res)
{
    if (PQstatus(conn) != CONNECTION_OK) return WR_RETRY;
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!st) return WR_RETRY;
    if (!strncmp(st, "08", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57P", 3) ||
        !strcmp(st, "57014") || !strcmp(st, "40001") || !strcmp(st, "40P01") ||
        !strcmp(st, "40003") || !strcmp(st, "55P03") || !strncmp(st, "58", 2))
        return WR_RETRY;
    return WR_DATA;
}

/* Server and libpq messages span lines; a log line or a dead-letter header wants one. */
void squeeze_spaces(char *s)
{
    char *out = s;
    for (const char *p = s; *p; p++) {
        bool space = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
        if (space && (out == s || out[-1] == ' ')) continue;
        *out++ = space ? ' ' : *p;
    }
    while (out > s && out[-1] == ' ') out--;
    *out = '\0';
}

/* "SQLSTATE: message (detail)" of a failed result, one line. */
void describe_error(pgc *l, const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    if (!msg) msg = PQerrorMessage(l->conn);
    snprintf(l->reason, sizeof l->reason, "%s%s%s%s%s%s", st ? st : "", st ? ": " : "", msg,
             detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
    squeeze_spaces(l->reason);
    utf8_clip(l->reason);
}

/* Runs a command that returns no rows; on failure fills l->reason and says what kind. */
wr_result exec_cmd(pgc *l, const char *sql)
{
    PGresult *res = PQexec(l->conn, sql);
    wr_result r = WR_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        describe_error(l, res);
        r = classify(l->conn, res);
    }
    PQclear(res);
    return r;
}


/* Reads the target's columns (name, type, default). Explicit columns must exist; omitted
 * columns become every insertable column of the table. Task thread only: the specs are
 * read-only once loaded, which they are before any batch reaches the writer. */
wr_result load_catalog(pgc *l, table_spec *t)
{
    buf qname = {0};
    if (!put_table_name(l->conn, &qname, t) || qname.oom) {
        buf_free(&qname);
        return WR_RETRY;
    }
    const char *params[1] = {qname.p};
    PGresult *res = PQexecParams(
        l->conn,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid),"
        " a.attidentity <> '' OR a.attgenerated <> ''"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        1, NULL, params, NULL, NULL, 0);
    buf_free(&qname);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        describe_error(l, res);
        wr_result r = classify(l->conn, res);
        PQclear(res);
        return r == WR_DATA ? WR_FATAL : r;
    }
    int n = PQntuples(res);
    if (n == 0) {
        snprintf(l->reason, sizeof l->reason,
                 "table %s%s%s does not exist (load pipelines/sql/schema.sql, or set "
                 "create_tables: true with typed columns)",
                 t->schema ? t->schema : "", t->schema ? "." : "", t->table);
        PQclear(res);
        return WR_FATAL;
    }
    if (t->auto_cols) {
        free_columns(t);
        if (!(t->cols = calloc((size_t)n, sizeof *t->cols))) {
            PQclear(res);
            return WR_FATAL;
        }
        for (int i = 0; i < n; i++) {
            if (PQgetvalue(res, i, 3)[0] == 't') continue; /* identity / generated */
            column *c = &t->cols[t->ncols++];
            c->src = SRC_FIELD;
            c->name = strdup(PQgetvalue(res, i, 0));
            c->arg = strdup(c->name);
        }
    }
    for (size_t c = 0; c < t->ncols; c++) {
        column *col = &t->cols[c];
        int i = 0;
        while (i < n && strcmp(PQgetvalue(res, i, 0), col->name ? col->name : "") != 0) i++;
        if (i == n || !col->name) {
            snprintf(l->reason, sizeof l->reason, "table %s has no column \"%s\"", t->table,
                     col->name ? col->name : "?");
            PQclear(res);
            return WR_FATAL;
        }
        free(col->sql_type);
        free(col->def_expr);
        col->sql_type = strdup(PQgetvalue(res, i, 1));
        col->def_expr = PQgetisnull(res, i, 2) ? NULL : strdup(PQgetvalue(res, i, 2));
        if (!col->sql_type) {
            PQclear(res);
            return WR_FATAL;
        }
        classify_column(col);
    }
    PQclear(res);
    for (size_t k = 0; k < t->nkeys; k++) {
        if (!find_column(t, t->keys[k])) {
            snprintf(l->reason, sizeof l->reason, "conflict key \"%s\" is not a mapped column of %s",
                     t->keys[k], t->table);
            return WR_FATAL;
        }
    }
    if (t->bounds && schema_bounds_check(t->bounds, t, l->reason, sizeof l->reason))
        return WR_FATAL;
    t->loaded = true;
    return WR_OK;
}

/* create_tables: the configured tables (typed columns, conflict keys as primary key) and the
 * offsets table, IF NOT EXISTS. */
wr_result create_tables(pg_sink *s, pgc *l)
{
    buf sql = {0};
    wr_result r = WR_OK;
    for (size_t i = 0; i < s->nspecs && r == WR_OK; i++) {
        table_spec *t = &s->specs[i];
        sql.len = 0;
        buf_puts(&sql, "CREATE TABLE IF NOT EXISTS ");
        bool ok = put_table_name(l->conn, &sql, t);
        buf_puts(&sql, " (");
        for (size_t c = 0; c < t->ncols; c++) {
            if (c) buf_puts(&sql, ", ");
            ok = ok && put_ident(l->conn, &sql, t->cols[c].name);
            /* The type is configuration (SQL type syntax), never a record's value. */
            buf_printf(&sql, " %s", t->cols[c].cfg_type ? t->cols[c].cfg_type : "text");
        }
        for (size_t k = 0; k < t->nkeys; k++) {
            buf_puts(&sql, k ? ", " : ", PRIMARY KEY (");
            ok = ok && put_ident(l->conn, &sql, t->keys[k]);
        }
        buf_puts(&sql, t->nkeys ? "))" : ")");
        r = ok && !sql.oom ? exec_cmd(l, sql.p) : WR_FATAL;
    }
    if (r == WR_OK && s->store_offsets) {
        sql.len = 0;
        buf_puts(&sql, "CREATE TABLE IF NOT EXISTS ");
        bool ok = put_ident(l->conn, &sql, s->cfg->offsets_table);
        buf_puts(&sql, " (pipeline text NOT NULL, topic text NOT NULL, \"partition\" integer NOT NULL,"
                       " \"offset\" bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
                       " epoch bigint NOT NULL DEFAULT 0,"
                       " PRIMARY KEY (pipeline, topic, \"partition\"))");
        r = ok && !sql.oom ? exec_cmd(l, sql.p) : WR_FATAL;
    }
    buf_free(&sql);
    return r == WR_DATA ? WR_FATAL : r;
}

/* The statements on the offsets table, and a check that it exists (fail now, with advice,
 * rather than at the first flush). */
wr_result prepare_offsets(pg_sink *s, pgc *l)
{
    const char *params[1] = {s->cfg->offsets_table};
    PGresult *res = PQexecParams(l->conn, "SELECT to_regclass(quote_ident($1))", 1, NULL, params,
                                 NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        describe_error(l, res);
        wr_result r = classify(l->conn, res);
        PQclear(res);
        return r == WR_DATA ? WR_FATAL : r;
    }
    bool missing = PQgetisnull(res, 0, 0);
    PQclear(res);
    if (missing) {
        snprintf(l->reason, sizeof l->reason,
                 "table %s does not exist (load pipelines/sql/schema.sql, set create_tables: "
                 "true, or store_offsets: false)",
                 s->cfg->offsets_table);
        return WR_FATAL;
    }
    buf put = {0};
    buf_puts(&put, "INSERT INTO ");
    bool ok = put_ident(l->conn, &put, s->cfg->offsets_table);
    buf_puts(&put, " (pipeline, topic, \"partition\", \"offset\") VALUES ($1, $2, $3, $4)"
                   " ON CONFLICT (pipeline, topic, \"partition\") DO UPDATE"
                   " SET \"offset\" = EXCLUDED.\"offset\", updated_at = now()");
    free(l->offsets_put);
    l->offsets_put = put.p;
    return ok && !put.oom ? WR_OK : WR_FATAL;
}
