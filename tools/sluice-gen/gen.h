/* gen.h — sluice-gen's shared definitions: sluice-gen.c (main, push mode, helpers), events.c
 * (the PRNG, the configuration, the events) and service.c (the service and its HTTP API). */
#ifndef SLUICE_GEN_H
#define SLUICE_GEN_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../host/jsoncheck.h" /* the host's strict JSON check, compiled in */
#include "../../plugins/common/sl_buf.h"  /* the one growable buffer */
#include "../../plugins/common/sl_time.h" /* clocks and RFC 3339 formatting */

#define GEN_VERSION "0.1.0"
#define EVENT_MAX 512          /* longest event we write is ~330 bytes */
#define HIST_CAP 256           /* duplicates re-send one of the last HIST_CAP valid events */
#define BODY_MAX (1 << 20)     /* request bodies are small JSON objects */
#define MAX_EMIT 1000000       /* per POST /gen/emit */
#define EMIT_CHUNK 4096        /* events generated per turn of the lock during an emit */
#define MAX_ORIGINS 8          /* --cors-origin */
#define HTTP_CONNECTIONS 128   /* at once, each on its own thread */
#define MAX_ECHO 100000        /* events echoed back by one POST /gen/emit */
#define MAX_RATE 10000000.0
#define MAX_SEED 9007199254740991.0 /* 2^53-1: the largest integer a JSON number holds exactly */

/* ---- sluice-gen.c: logging and small helpers ------------------------------------------- */

void logf_(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_info(...) logf_("info", __VA_ARGS__)
#define log_warn(...) logf_("warn", __VA_ARGS__)
#define log_error(...) logf_("error", __VA_ARGS__)
void *xrealloc(void *p, size_t n);

/* Appending to the plugins' growable buffer (sl_buf.h); out of memory ends the program. */
void sb_add(sl_gbuf *b, const char *s, size_t n);
void sb_adds(sl_gbuf *b, const char *s);
double mono_now(void);

/* ---- events.c: the PRNG, the configuration and the events -------------------------------- */

struct rng {
    uint64_t s[4];
};

enum { T_PAGE_VIEW, T_ADD_TO_CART, T_PURCHASE, T_PAYMENT_FAILED, T_REFUND, T_COUNT };

struct config {
    double rate;    /* events/s made by the clock (server) or pushed (push mode; 0 = unpaced) */
    bool running;   /* the clock generates only while running */
    double mix[T_COUNT]; /* percent of fresh events per type, sums to 100 */
    double invalid_pct, duplicate_pct, late_pct; /* shares of all events, sum <= 100 */
    int64_t late_by_ms; /* a late event's ts is up to this far in the past */
    long users, products;
    uint64_t seed;
};

enum field {
    F_EVENT_ID, F_EVENT_TYPE, F_USER_ID, F_SESSION_ID, F_PRODUCT_ID, F_QUANTITY, F_AMOUNT,
    F_CURRENCY, F_PAYMENT_METHOD, F_TS, F_COUNT
};

#define BIT(f) (1u << (f))

/* The kinds of invalid event; each breaks exactly one rule of the schema. */
enum kind {
    K_MISSING_FIELD, K_WRONG_TYPE, K_BAD_TS, K_NEGATIVE_AMOUNT, K_BAD_QUANTITY, K_BAD_EVENT_TYPE,
    K_BAD_CURRENCY, K_BAD_EVENT_ID, K_COUNT
};

enum cls { C_VALID, C_INVALID, C_DUPLICATE };

struct event {
    unsigned present;          /* BIT(field) for each field written */
    const char *raw[F_COUNT];  /* a JSON token written instead of the field's value (invalid) */
    char rawbuf[128];          /* storage for a raw token built at run time */
    char id[40];
    int type;
    long user, product;
    uint64_t session;
    int quantity;
    long amount_cents;
    const char *currency, *payment_method;
    char ts[80];
};

/* What one call of the generator made. */
struct gen_out {
    char json[EVENT_MAX];
    size_t len;
    int type;
    enum cls cls;
    int kind;          /* enum kind when invalid */
    char reason[64];   /* "missing_field:user_id", ... when invalid */
    bool late;
    uint64_t dup_of;   /* seq of the original when a duplicate */
};

struct hist {
    uint64_t seq;
    int type;
    size_t len;
    char json[EVENT_MAX];
};

struct gen {
    struct config cfg;
    struct rng rng;
    bool fixed;            /* --fixed-clock: event time is virtual, see gen_now_ms */
    int64_t fixed_start_ms;
    uint64_t vclock_us;
    struct hist *hist;     /* ring of the last HIST_CAP valid events */
    size_t hist_n, hist_next;
};

extern const char *const type_names[T_COUNT];
extern const char *const kind_names[K_COUNT];
extern const char *const cls_names[];
extern const struct config config_defaults;

uint64_t mix64(uint64_t x);
bool is_int_in(const cJSON *v, double lo, double hi);
bool config_apply(struct config *cfg, const cJSON *obj, char *err, size_t n, const char **field,
                  bool *reseed);
cJSON *config_json(const struct config *cfg);
void gen_reset(struct gen *g);
void gen_next(struct gen *g, uint64_t seq, struct gen_out *out);

/* ---- service.c: the generator service and its HTTP API ----------------------------------- */

struct stats {
    uint64_t generated, by_type[T_COUNT], valid, invalid, by_kind[K_COUNT], duplicates, late;
    uint64_t dropped, polled, polls, evicted;
};

/* Where an event went; written into the record file as "dest". */
enum dest { D_BUFFER, D_RESPONSE, D_PUSH };

struct app {
    pthread_mutex_t mu;
    struct gen gen;
    struct stats st;
    uint64_t seq;
    struct gen_out scratch;
    /* the bounded buffer /gen/events reads: a ring of malloc'd event strings; ring[ring_head]
     * has cursor sequence number head_seq, the next buffered event gets head_seq + ring_n */
    char **ring;
    size_t *ring_len;
    size_t ring_cap, ring_head, ring_n;
    uint64_t head_seq;
    bool cursor_mode;     /* a cursor reader exists: keep what was read, evict the oldest */
    uint64_t legacy_after; /* cursor mode: what plain /gen/events has handed out */
    uint64_t read_upto;    /* cursor mode: the newest event handed out to any reader */
    atomic_int waiting;    /* requests waiting for mu: a long emit lets them in between chunks */
    const char *origins[MAX_ORIGINS]; /* CORS: the dashboard origins allowed */
    int n_origins;
    FILE *record;
    /* clock pacing: events owed = rate * (now - t0) - done */
    double clock_t0;
    uint64_t clock_done;
    bool stop;
    pthread_cond_t cv;
    double started;
};

const struct gen_out *produce(struct app *a, enum dest want);
void clock_rebase(struct app *a);
void *clock_main(void *arg);
enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                           const char *version, const char *upload, size_t *upload_size, void **con_cls);
void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code);
int listen_on(const char *spec, char *shown, size_t shown_n);
void set_cors_origins(const char *const *origins, int n);
void set_seq_epoch(const char *epoch);

#endif
