/* gentest.h — what the sluice-gen test files share: the check macros, the harness that runs
 * sluice-gen and talks HTTP to it (harness.c), an independent reading of the event schema
 * (schema.c), and the subtests (t_model.c, t_service.c, t_push.c), one per meson test. */
#ifndef GENTEST_H
#define GENTEST_H

#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../plugins/common/sl_buf.h"

extern const char *gen_bin;
extern int failures;
extern pid_t children[8];
extern int nchildren;
extern CURL *curl;
extern char tmp_dir[256];

/* Counts and reports a failed check: where, the condition, then the printf-style message. */
#define FAILED_(cond_text, ...)                                                                    \
    do {                                                                                           \
        failures++;                                                                                \
        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, cond_text);                       \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
    } while (0)
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAILED_(#cond, __VA_ARGS__);                                                           \
    } while (0)
/* For checks the rest of a subtest cannot go on without (cond is evaluated once). */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            FAILED_(#cond, __VA_ARGS__);                                                           \
            die();                                                                                 \
        }                                                                                          \
    } while (0)

struct gen {
    pid_t pid;
    int port;
    int out_fd;
};

struct resp {
    long status;
    sl_gbuf body, hdrs;
};

struct rec {
    long long seq, dup_of;
    char cls[16], dest[16], reason[64];
    bool late;
    char *raw; /* the event's bytes exactly as written */
    cJSON *event;
};

/* harness.c */
void kill_children(void);
void die(void);
void on_alarm(int sig);
void sb_add(sl_gbuf *b, const char *s, size_t n);
void sb_free(sl_gbuf *b);
char *read_file(const char *path, size_t *len);
void sleep_ms(int ms);
double jnum(const cJSON *o, const char *k);
const char *jstr(const cJSON *o, const char *k);
pid_t spawn(const char *const *args, int *out_fd);
bool read_out(int fd, sl_gbuf *out, bool line_only, int timeout_ms);
void gen_start(struct gen *g, const char *const *args);
int wait_exit(pid_t pid, int timeout_ms);
void gen_stop(struct gen *g);
size_t on_data(char *p, size_t size, size_t n, void *ud);
void http(int port, const char *method, const char *path, const char *body, size_t body_len, struct resp *r, const char *const *headers);
void http_s(int port, const char *method, const char *path, const char *body, struct resp *r);
const char *header(const struct resp *r, const char *name, char *out, size_t n);
cJSON *json_ok(struct resp *r, const char *what);
struct rec *read_record(const char *path, size_t *n);
void free_record(struct rec *v, size_t n);
void tmp_cleanup(void);
char *tmp_path(const char *name);
cJSON *poll_all(int port, struct resp *r);
/* schema.c */
bool parse_ts(const char *s, long long *ms);
const char *schema_check(const cJSON *e);
/* the subtests */
void t_distribution(void);
void t_determinism(void);
void t_shares(void);
void t_config(void);
void t_poll(void);
void t_overflow(void);
void t_bad_requests(void);
void t_push(void);

#endif
