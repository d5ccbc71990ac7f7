/* hs.h — http-source's shared state: http-source.c (bodies, poll mode, callbacks) and
 * listen.c (the libmicrohttpd server). Private to the plugin. */
#ifndef HS_H
#define HS_H

#include "../common/sl_httpd.h"
#include <sluice/stage.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "../common/sl_buf.h"
#include "../common/sl_time.h"

enum { MODE_POLL = 0, MODE_LISTEN = 1 };
enum { ACK_ACCEPTED = 0, ACK_DURABLE = 1 };

typedef struct hs_config {
    int mode;
    char *url;
    int64_t interval_ms;
    sl_map headers;
    int64_t timeout_ms;
    char *address;
    char *path;
    int64_t max_body;
    char *token;
    int ack;
    int64_t queue_size;
    int64_t ack_timeout_ms;
    char *topic;
    char *cursor;          /* poll: query parameter carrying the last sequence number */
    char *offset_file;     /* poll with cursor: where the committed sequence is kept */
    int64_t max_conn_per_client;
    int64_t max_connections;
    int64_t idle_timeout_ms;
} hs_config;

/* The records of one body: slices of `body` (which the items point into). */
typedef struct items {
    char *body;
    size_t *off, *len; /* one allocation: off[0..n), then len[0..n) */
    char **why;        /* NULL, or per item NULL / why the item is not acceptable JSON */
    size_t n, cap;
} items;

struct hs_conn;

/* One accepted request waiting in the queue (listen mode). */
typedef struct batch {
    struct batch *next;
    items it;
    size_t next_item;
    struct hs_conn *conn; /* durable: the suspended request; NULL once answered */
} batch;

/* Per HTTP request state (MHD's con_cls). */
typedef struct hs_conn {
    struct MHD_Connection *mc;
    sl_body body;        /* see ../common/sl_httpd.h */
    int suspended;
    unsigned status;     /* answer once resumed */
    char reason[240];
    size_t nrecs;
    batch *queued;       /* durable, not yet fully emitted: its batch */
    int seq_known;       /* durable, fully emitted: seq_last is the last record's offset */
    int64_t seq_last;
    int64_t deadline_ms;
    struct hs_conn *next_durable;
} hs_conn;

typedef struct hs {
    const sl_api *api;
    sl_ctx *ctx;
    const hs_config *cfg;
    int64_t seq;    /* next record offset */
    int paused;

    /* poll mode */
    CURL *curl;
    struct curl_slist *req_headers;
    sl_gbuf resp; /* the response body so far */
    int resp_too_large; /* the response passed max_body: the transfer was cut */
    items pending; /* fetched, not yet emitted */
    size_t pending_next;
    int64_t pending_first; /* cursor: sequence number of pending item 0 */
    int64_t next_fetch_ms, backoff_ms;
    /* cursor mode: resume after `after`; the last committed sequence is kept in offset_path */
    char *offset_path;
    int64_t after, committed_seq, written_seq;
    int64_t hdr_first, hdr_oldest; /* X-Seq-First / X-Seq-Oldest of the last response, or -1 */
    char hdr_epoch[40];            /* X-Seq-Epoch of the last response: the stream's identity */
    char epoch[40];                /* the stream the committed sequence number belongs to */
    int fetched_once;

    /* listen mode */
    struct MHD_Daemon *mhd;
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* queue became non-empty / watchdog wake-up */
    batch *head, *tail;      /* guarded by mu */
    size_t queued;           /* records in the queue, guarded by mu */
    hs_conn *durable;        /* suspended durable requests, guarded by mu */
    int64_t committed;       /* guarded by mu */
    pthread_t watchdog;
    int watchdog_started, stopping, draining;
    /* connection trouble is summarised, not logged one line per client (guarded by mu) */
    uint64_t conn_msgs;
    int64_t conn_log_ms;
} hs;

/* http-source.c */
void items_free(items *it);
/* Splits a body into records (see the README). listen != 0: any record that is not acceptable
 * JSON fails the whole body (-1, why set); poll: such records are kept with it->why[i] set. */
int hs_parse_body(char *body, size_t len, int listen, items *out, char *why, size_t whylen);
sl_err hs_emit_item(hs *s, sl_ctx *ctx, const items *it, size_t i, int64_t offset);

/* listen.c */
int hs_start_server(hs *s, sl_ctx *ctx);
sl_err hs_listen_poll(hs *s, sl_ctx *ctx, size_t max, int timeout_ms);
sl_err hs_listen_flush(hs *s, sl_ctx *ctx, int final);
void hs_listen_commit(hs *s, const sl_position *pos, size_t n);
void hs_listen_stop(hs *s);

#endif
