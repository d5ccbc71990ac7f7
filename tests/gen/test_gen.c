/*
 * Tests for tools/sluice-gen over real HTTP on loopback.
 *
 *   test-gen PATH/TO/sluice-gen SUBTEST
 *
 * Each subtest starts its own sluice-gen on a free port (--listen 127.0.0.1:0), talks to it with
 * libcurl, stops it with SIGTERM and checks it exits 0. Statistical checks use fixed seeds, so a
 * run either always passes or always fails; nothing asserts on time. An alarm bounds every run.
 */
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

static const char *gen_bin;
static int failures;
static pid_t children[8];
static int nchildren;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)
/* For checks the rest of a subtest cannot go on without (cond is evaluated once). */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            die();                                                                                 \
        }                                                                                          \
    } while (0)

static void die(void);

static void kill_children(void)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0)
            kill(children[i], SIGKILL);
}

static void die(void)
{
    kill_children();
    fprintf(stderr, "test aborted after %d failure(s)\n", failures);
    exit(1);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: test took too long (watchdog)\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    kill_children();
    _exit(1);
}

/* ---- small helpers ------------------------------------------------------------------------ */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_free(struct sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct sbuf b = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sb_add(&b, buf, n);
    fclose(f);
    if (!b.p)
        sb_add(&b, "", 0);
    if (len)
        *len = b.len;
    return b.p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- running sluice-gen ------------------------------------------------------------------- */

struct gen {
    pid_t pid;
    int port;
    int out_fd;
};

static pid_t spawn(const char *const *args, int *out_fd)
{
    const char *argv[40];
    int n = 0;
    argv[n++] = gen_bin;
    for (int i = 0; args[i] && n < 38; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        execv(gen_bin, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    if (pid > 0 && nchildren < 8)
        children[nchildren++] = pid;
    return pid;
}

/* Reads from fd until EOF, a newline (when line_only) or the deadline. */
static bool read_out(int fd, struct sbuf *out, bool line_only, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, 100);
        if (r == 0) {
            waited += 100;
            continue;
        }
        char buf[4096];
        ssize_t n = read(fd, buf, line_only ? 1 : sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return !line_only;
        sb_add(out, buf, (size_t)n);
        if (line_only && buf[0] == '\n')
            return true;
    }
    return false;
}

/* Starts sluice-gen on a free loopback port with the given extra arguments. */
static void gen_start(struct gen *g, const char *const *args)
{
    const char *all[40] = {"--listen", "127.0.0.1:0"};
    int n = 2;
    for (int i = 0; args && args[i] && n < 38; i++)
        all[n++] = args[i];
    all[n] = NULL;
    g->pid = spawn(all, &g->out_fd);
    REQUIRE(g->pid > 0, "fork failed");
    struct sbuf line = {0};
    bool ok = read_out(g->out_fd, &line, true, 10000);
    const char *colon = line.p ? strrchr(line.p, ':') : NULL;
    REQUIRE(ok && colon && strstr(line.p, "listening on http://127.0.0.1:"),
            "no 'listening on' line from sluice-gen, got \"%s\"", line.p ? line.p : "");
    g->port = atoi(colon + 1);
    sb_free(&line);
    REQUIRE(g->port > 0, "bad port");
}

/* Waits for a child to exit (bounded); returns its exit status or -1. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            for (int i = 0; i < nchildren; i++)
                if (children[i] == pid)
                    children[i] = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    return -1;
}

/* SIGTERM must stop sluice-gen cleanly with exit status 0. */
static void gen_stop(struct gen *g)
{
    kill(g->pid, SIGTERM);
    int rc = wait_exit(g->pid, 15000);
    CHECK(rc == 0, "sluice-gen exit status %d after SIGTERM", rc);
    close(g->out_fd);
}

/* ---- HTTP client -------------------------------------------------------------------------- */

struct resp {
    long status;
    struct sbuf body, hdrs;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    sb_add(ud, p, size * n);
    return size * n;
}

static CURL *curl;

/* One request to sluice-gen; body may be NULL. Extra headers are "Name: value" strings. */
static void http(int port, const char *method, const char *path, const char *body, size_t body_len,
                 struct resp *r, const char *const *headers)
{
    sb_free(&r->body);
    sb_free(&r->hdrs);
    sb_add(&r->body, "", 0);
    r->status = 0;
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r->hdrs);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    struct curl_slist *hl = NULL;
    for (int i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip for big bodies */
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hl);
    CURLcode cc = curl_easy_perform(curl);
    curl_slist_free_all(hl);
    REQUIRE(cc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
}

static void http_s(int port, const char *method, const char *path, const char *body,
                   struct resp *r)
{
    http(port, method, path, body, body ? strlen(body) : 0, r, NULL);
}

/* Value of a response header (case-insensitive name), copied into out; NULL when absent. */
static const char *header(const struct resp *r, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = r->hdrs.p; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(out, n, "%.*s", (int)(ll - (size_t)(v - p)), v);
            return out;
        }
        p = eol ? eol + 2 : p + ll;
    }
    return NULL;
}

static cJSON *json_ok(struct resp *r, const char *what)
{
    cJSON *j = cJSON_Parse(r->body.p);
    REQUIRE(r->status == 200 && j, "%s: HTTP %ld %s", what, r->status, r->body.p);
    return j;
}

/* ---- an independent reading of pipelines/ecommerce-event.schema.yaml ---------------------- */

static bool parse_ts(const char *s, long long *ms)
{
    static regex_t re;
    static bool ready;
    if (!ready) {
        regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?"
                     "(Z|[+-][0-9]{2}:[0-9]{2})$", REG_EXTENDED | REG_NOSUB);
        ready = true;
    }
    if (regexec(&re, s, 0, NULL, 0))
        return false;
    struct tm tm = {0};
    int frac = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return false;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    const char *dot = strchr(s, '.');
    if (dot)
        for (int i = 1; i <= 3; i++)
            frac = frac * 10 + (dot[i] >= '0' && dot[i] <= '9' ? dot[i] - '0' : 0);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    long long secs = (long long)timegm(&tm);
    const char *z = s + strlen(s) - 1;
    if (*z != 'Z') {
        const char *off = s + strlen(s) - 6;
        int oh = atoi(off + 1), om = atoi(off + 4);
        secs -= (off[0] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
    }
    *ms = secs * 1000 + frac;
    return true;
}

static const cJSON *field(const cJSON *e, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, k);
    return cJSON_IsNull(v) ? NULL : v;
}

static void trim_case(const char *s, char *out, size_t n, int (*conv)(int))
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= n)
        len = n - 1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)conv((unsigned char)s[i]);
    out[len] = '\0';
}

/* NULL when the event satisfies the schema, else the first rule it breaks. */
static const char *schema_check(const cJSON *e)
{
    static const char *const types[] = {"page_view", "add_to_cart", "purchase", "payment_failed",
                                        "refund"};
    if (!cJSON_IsObject(e))
        return "not an object";
    const cJSON *v = field(e, "event_id");
    if (!cJSON_IsString(v))
        return "event_id";
    size_t idlen = strlen(v->valuestring);
    if (idlen < 1 || idlen > 64)
        return "event_id length";
    v = field(e, "event_type");
    if (!cJSON_IsString(v))
        return "event_type";
    char type[32];
    trim_case(v->valuestring, type, sizeof type, tolower);
    int t = 0;
    while (t < 5 && strcmp(type, types[t]))
        t++;
    if (t == 5)
        return "event_type enum";
    if (!cJSON_IsString(field(e, "user_id")))
        return "user_id";
    if ((v = field(e, "session_id")) && !cJSON_IsString(v))
        return "session_id";
    v = field(e, "product_id");
    if (v ? !cJSON_IsString(v) : t != 0)
        return "product_id";
    v = field(e, "quantity");
    if (v && !(cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= 1))
        return "quantity";
    v = field(e, "amount");
    if (v ? !(cJSON_IsNumber(v) && v->valuedouble >= 0) : t >= 2)
        return "amount";
    if ((v = field(e, "currency"))) {
        char cur[16];
        if (!cJSON_IsString(v))
            return "currency";
        trim_case(v->valuestring, cur, sizeof cur, toupper);
        if (strlen(cur) != 3 || strspn(cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
            return "currency pattern";
    }
    if ((v = field(e, "payment_method")) && !cJSON_IsString(v))
        return "payment_method";
    long long ms;
    v = field(e, "ts");
    if (!cJSON_IsString(v) || !parse_ts(v->valuestring, &ms))
        return "ts";
    return NULL;
}

/* ---- record file -------------------------------------------------------------------------- */

struct rec {
    long long seq, dup_of;
    char cls[16], dest[16], reason[64];
    bool late;
    char *raw; /* the event's bytes exactly as written */
    cJSON *event;
};

/* Parses every line of a --record file. */
static struct rec *read_record(const char *path, size_t *n)
{
    char *text = read_file(path, NULL);
    REQUIRE(text, "cannot read %s", path);
    size_t cap = 1024, count = 0;
    struct rec *v = calloc(cap, sizeof *v);
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        REQUIRE(nl, "record line without newline");
        *nl = '\0';
        cJSON *j = cJSON_Parse(line);
        REQUIRE(j, "record line is not JSON: %.200s", line);
        if (count == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        struct rec *r = &v[count++];
        memset(r, 0, sizeof *r);
        r->seq = (long long)jnum(j, "seq");
        r->dup_of = cJSON_GetObjectItem(j, "dup_of") ? (long long)jnum(j, "dup_of") : 0;
        snprintf(r->cls, sizeof r->cls, "%s", jstr(j, "class") ? jstr(j, "class") : "");
        snprintf(r->dest, sizeof r->dest, "%s", jstr(j, "dest") ? jstr(j, "dest") : "");
        snprintf(r->reason, sizeof r->reason, "%s", jstr(j, "reason") ? jstr(j, "reason") : "");
        r->late = cJSON_IsTrue(cJSON_GetObjectItem(j, "late"));
        const char *ev = strstr(line, ",\"event\":");
        REQUIRE(ev && line[strlen(line) - 1] == '}', "record line without event");
        ev += 9;
        r->raw = strndup(ev, strlen(ev) - 1);
        r->event = cJSON_DetachItemFromObject(j, "event");
        cJSON_Delete(j);
    }
    free(text);
    *n = count;
    return v;
}

static void free_record(struct rec *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].raw);
        cJSON_Delete(v[i].event);
    }
    free(v);
}

static char tmp_dir[256];

/* Removes the subtest's temporary files (one flat directory). */
static void tmp_cleanup(void)
{
    if (!tmp_dir[0])
        return;
    DIR *d = opendir(tmp_dir);
    struct dirent *de;
    char p[600];
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", tmp_dir, de->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(tmp_dir);
}

static char *tmp_path(const char *name)
{
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/sluice-gen-test-XXXXXX");
        REQUIRE(mkdtemp(tmp_dir), "mkdtemp: %s", strerror(errno));
        atexit(tmp_cleanup);
    }
    const char *dir = tmp_dir;
    char *p = malloc(512);
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

/* Drains /gen/events with one request (max large enough) and returns the parsed array. */
static cJSON *poll_all(int port, struct resp *r)
{
    http_s(port, "GET", "/gen/events?max=10000000", NULL, r);
    cJSON *a = json_ok(r, "GET /gen/events");
    REQUIRE(cJSON_IsArray(a), "events is not an array");
    return a;
}

/* ---- subtests ----------------------------------------------------------------------------- */

static const char *const type_names[] = {"page_view", "add_to_cart", "purchase", "payment_failed",
                                         "refund"};

/* Emits n events, polls them back and checks the type mix against the expected percents. */
static void check_mix(int port, const double *mix, int n)
{
    struct resp r = {0};
    http_s(port, "GET", "/gen/stats", NULL, &r);
    cJSON *before = json_ok(&r, "stats");
    char body[64];
    snprintf(body, sizeof body, "{\"count\":%d}", n);
    http_s(port, "POST", "/gen/emit", body, &r);
    cJSON *j = json_ok(&r, "emit");
    CHECK(jnum(j, "emitted") == n && jnum(j, "queued") == n, "emit answer %s", r.body.p);
    cJSON_Delete(j);
    http_s(port, "GET", "/gen/stats", NULL, &r);
    cJSON *stats = json_ok(&r, "stats");
    cJSON *a = poll_all(port, &r);
    REQUIRE(cJSON_GetArraySize(a) == n, "polled %d events, want %d", cJSON_GetArraySize(a), n);

    double count[5] = {0};
    int bad = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        const char *why = schema_check(e);
        if (why && bad++ < 3)
            CHECK(!why, "generated event breaks the schema (%s): %s", why, cJSON_PrintUnformatted(e));
        const char *t = jstr(e, "event_type");
        for (int i = 0; i < 5; i++)
            if (t && !strcmp(t, type_names[i]))
                count[i]++;
    }
    CHECK(bad == 0, "%d of %d events break the schema", bad, n);
    /* Chi-square with 4 degrees of freedom; 18.47 is the p = 0.001 critical value. */
    double chi2 = 0;
    const cJSON *by_type = cJSON_GetObjectItem(stats, "by_type");
    for (int i = 0; i < 5; i++) {
        double expect = n * mix[i] / 100, share = 100 * count[i] / n;
        if (expect > 0)
            chi2 += (count[i] - expect) * (count[i] - expect) / expect;
        else
            CHECK(count[i] == 0, "%s has weight 0 but appeared %.0f times", type_names[i], count[i]);
        CHECK(fabs(share - mix[i]) <= 1.0, "%s: %.2f%%, want %.0f%% +- 1", type_names[i], share,
              mix[i]);
        double stat = jnum(by_type, type_names[i]) -
                      jnum(cJSON_GetObjectItem(before, "by_type"), type_names[i]);
        CHECK(stat == count[i], "stats by_type.%s grew by %g, counted %.0f", type_names[i], stat,
              count[i]);
        printf("  %-15s %6.0f  %6.2f%% (want %g%%)\n", type_names[i], count[i], share, mix[i]);
    }
    printf("  chi-square %.2f (4 df, p=0.001 critical 18.47)\n", chi2);
    CHECK(chi2 < 18.47, "chi-square %.2f too large", chi2);
    cJSON_Delete(a);
    cJSON_Delete(stats);
    cJSON_Delete(before);
    sb_free(&r.body);
    sb_free(&r.hdrs);
}

static void t_distribution(void)
{
    struct gen g;
    const char *args[] = {"--stopped", "--seed", "20240501", "--buffer", "200000", "--config",
                          "{\"invalid_pct\":0,\"duplicate_pct\":0,\"late_pct\":0}", NULL};
    gen_start(&g, args);
    const double def[5] = {30, 25, 35, 8, 2};
    check_mix(g.port, def, 100000);

    struct resp r = {0};
    http_s(g.port, "PUT", "/gen/config",
           "{\"mix\":{\"page_view\":10,\"add_to_cart\":0,\"purchase\":60,\"payment_failed\":20,"
           "\"refund\":10}}", &r);
    CHECK(r.status == 200, "PUT mix: %ld %s", r.status, r.body.p);
    const double other[5] = {10, 0, 60, 20, 10};
    check_mix(g.port, other, 100000);
    sb_free(&r.body);
    sb_free(&r.hdrs);
    gen_stop(&g);
}

static void t_determinism(void)
{
    char *recs[3];
    struct sbuf bodies[3] = {{0}};
    struct sbuf again = {0};
    const char *seeds[3] = {"42", "42", "43"};
    for (int run = 0; run < 3; run++) {
        char name[32];
        snprintf(name, sizeof name, "det%d.ndjson", run);
        recs[run] = tmp_path(name);
        const char *args[] = {"--stopped", "--seed", seeds[run], "--fixed-clock", "1714557600000",
                              "--record", recs[run], "--config",
                              "{\"invalid_pct\":10,\"duplicate_pct\":10,\"late_pct\":10,"
                              "\"rate\":200}", NULL};
        struct gen g;
        gen_start(&g, args);
        struct resp r = {0};
        http_s(g.port, "POST", "/gen/emit", "{\"count\":3000,\"echo\":true}", &r);
        CHECK(r.status == 200, "emit: %ld", r.status);
        sb_add(&bodies[run], r.body.p, r.body.len);
        http_s(g.port, "GET", "/gen/event", NULL, &r);
        CHECK(r.status == 200, "event: %ld", r.status);
        sb_add(&bodies[run], r.body.p, r.body.len);
        if (run == 0) {
            /* Setting the seed again restarts the same sequence, clock included. */
            http_s(g.port, "PUT", "/gen/config", "{\"seed\":42}", &r);
            CHECK(r.status == 200, "PUT seed: %ld %s", r.status, r.body.p);
            http_s(g.port, "POST", "/gen/emit", "{\"count\":3000,\"echo\":true}", &r);
            sb_add(&again, r.body.p, r.body.len);
            http_s(g.port, "GET", "/gen/event", NULL, &r);
            sb_add(&again, r.body.p, r.body.len);
        }
        sb_free(&r.body);
        sb_free(&r.hdrs);
        gen_stop(&g);
    }
    CHECK(bodies[0].len > 100000, "echo body only %zu bytes", bodies[0].len);
    CHECK(bodies[0].len == bodies[1].len && !memcmp(bodies[0].p, bodies[1].p, bodies[0].len),
          "same seed, different events");
    CHECK(again.len == bodies[0].len && !memcmp(again.p, bodies[0].p, again.len),
          "PUT seed did not restart the sequence");
    CHECK(bodies[0].len != bodies[2].len || memcmp(bodies[0].p, bodies[2].p, bodies[0].len),
          "different seeds, same events");
    size_t l0, l1;
    char *f0 = read_file(recs[0], &l0), *f1 = read_file(recs[1], &l1);
    /* Run 0 recorded twice as much (it replayed); its first half must equal run 1's record
     * byte for byte (seq numbers count per process). */
    CHECK(f0 && f1 && l1 > 0 && l0 > l1 && !memcmp(f0, f1, l1), "record files differ");
    /* The fixed clock starts at the given time: the first on-time event carries it. */
    /* The fixed clock starts at 10:00:00 and advances 5 ms per event (rate 200). */
    CHECK(strstr(bodies[0].p, "\"ts\":\"2024-05-01T10:00:00.0") &&
              strstr(bodies[0].p, "\"ts\":\"2024-05-01T10:00:14.9"),
          "fixed clock not used: %.300s", bodies[0].p);
    printf("  3000+1 events, %zu bytes, identical across runs with seed 42\n", bodies[0].len);
    free(f0);
    free(f1);
    for (int i = 0; i < 3; i++) {
        sb_free(&bodies[i]);
        free(recs[i]);
    }
    sb_free(&again);
}

static void t_shares(void)
{
    char *rec = tmp_path("shares.ndjson");
    const long long t0 = 1714557600000LL;
    const int n = 100000;
    const char *args[] = {"--stopped", "--seed", "99", "--fixed-clock", "1714557600000",
                          "--buffer", "200000", "--record", rec, "--config",
                          "{\"rate\":1000,\"invalid_pct\":10,\"duplicate_pct\":5,\"late_pct\":20,"
                          "\"late_by\":\"30s\"}", NULL};
    struct gen g;
    gen_start(&g, args);
    struct resp r = {0};
    char body[64];
    snprintf(body, sizeof body, "{\"count\":%d}", n);
    http_s(g.port, "POST", "/gen/emit", body, &r);
    CHECK(r.status == 200, "emit: %ld", r.status);
    http_s(g.port, "GET", "/gen/stats", NULL, &r);
    cJSON *stats = json_ok(&r, "stats");
    gen_stop(&g);

    size_t nr;
    struct rec *v = read_record(rec, &nr);
    REQUIRE(nr == (size_t)n, "record has %zu lines, want %d", nr, n);
    long valid = 0, invalid = 0, dup = 0, late = 0, kinds[8] = {0};
    static const char *const kind_names[] = {"missing_field", "wrong_type", "bad_ts",
                                             "negative_amount", "bad_quantity", "bad_event_type",
                                             "bad_currency", "bad_event_id"};
    int errs = 0;
    for (size_t i = 0; i < nr && errs < 5; i++) {
        const struct rec *x = &v[i];
        const char *why = schema_check(x->event);
        /* At rate 1000 the fixed clock advances 1 ms per event: event seq s happens at
         * t0 + s - 1, so lateness can be checked exactly. */
        long long now = t0 + x->seq - 1, ts = 0;
        const char *tss = jstr(x->event, "ts");
        bool has_ts = tss && parse_ts(tss, &ts);
        if (x->seq != (long long)i + 1)
            { errs++; CHECK(false, "seq %lld at line %zu", x->seq, i + 1); }
        if (!strcmp(x->cls, "valid")) {
            valid++;
            late += x->late;
            if (why)
                { errs++; CHECK(!why, "valid event breaks the schema (%s): %s", why, x->raw); }
            if (!x->late && !(has_ts && ts == now))
                { errs++; CHECK(false, "on-time event %lld: ts %s, now %lld", x->seq, tss, now); }
            if (x->late && !(has_ts && ts < now && ts >= now - 30000))
                { errs++; CHECK(false, "late event %lld: ts %s not within 30 s before %lld", x->seq,
                              tss, now); }
        } else if (!strcmp(x->cls, "invalid")) {
            invalid++;
            if (!why)
                { errs++; CHECK(why, "invalid event (%s) passes the schema: %s", x->reason, x->raw); }
            for (int k = 0; k < 8; k++)
                if (!strncmp(x->reason, kind_names[k], strlen(kind_names[k])))
                    kinds[k]++;
        } else if (!strcmp(x->cls, "duplicate")) {
            dup++;
            /* An exact re-send of an earlier valid event. */
            const struct rec *o = x->dup_of >= 1 && x->dup_of < x->seq ? &v[x->dup_of - 1] : NULL;
            if (!o || strcmp(o->cls, "valid") || strcmp(o->raw, x->raw))
                { errs++; CHECK(false, "duplicate %lld is not a copy of valid event %lld", x->seq,
                              x->dup_of); }
        } else {
            { errs++; CHECK(false, "unknown class %s", x->cls); }
        }
    }
    CHECK(errs == 0, "%d bad records", errs);
    double pct_inv = 100.0 * invalid / n, pct_dup = 100.0 * dup / n, pct_late = 100.0 * late / n;
    printf("  valid %ld (late %ld = %.2f%%), invalid %ld = %.2f%%, duplicates %ld = %.2f%%\n",
           valid, late, pct_late, invalid, pct_inv, dup, pct_dup);
    CHECK(fabs(pct_inv - 10) <= 1, "invalid share %.2f%%, want 10 +- 1", pct_inv);
    CHECK(fabs(pct_dup - 5) <= 1, "duplicate share %.2f%%, want 5 +- 1", pct_dup);
    CHECK(fabs(pct_late - 20) <= 1, "late share %.2f%%, want 20 +- 1", pct_late);
    for (int k = 0; k < 8; k++) {
        printf("  invalid kind %-16s %ld\n", kind_names[k], kinds[k]);
        /* Kinds are drawn uniformly: each about 1/8 of the invalid ones. */
        CHECK(fabs((double)kinds[k] / (double)invalid - 0.125) < 0.02, "kind %s: %ld of %ld",
              kind_names[k], kinds[k], invalid);
    }
    CHECK(jnum(stats, "invalid") == invalid && jnum(stats, "duplicates") == dup &&
              jnum(stats, "late") == late && jnum(stats, "generated") == n,
          "stats disagree with the record");
    cJSON_Delete(stats);
    free_record(v, nr);
    free(rec);
    sb_free(&r.body);
    sb_free(&r.hdrs);
}

/* A PUT that must fail with 400 naming `want_field` (NULL: no field) and change nothing. */
static void bad_put(int port, const char *body, const char *want_field)
{
    struct resp r = {0};
    http_s(port, "GET", "/gen/config", NULL, &r);
    char *before = strdup(r.body.p);
    http_s(port, "PUT", "/gen/config", body, &r);
    cJSON *j = cJSON_Parse(r.body.p);
    const char *f = j ? jstr(j, "field") : NULL;
    CHECK(r.status == 400, "PUT %s: HTTP %ld, want 400", body, r.status);
    CHECK(j && jstr(j, "error"), "PUT %s: no JSON error: %s", body, r.body.p);
    CHECK(want_field ? f && !strcmp(f, want_field) : !f, "PUT %s: field %s, want %s", body,
          f ? f : "(none)", want_field ? want_field : "(none)");
    char ct[128];
    CHECK(header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "application/json"),
          "error without JSON content type");
    http_s(port, "GET", "/gen/config", NULL, &r);
    CHECK(!strcmp(before, r.body.p), "failed PUT %s changed the config", body);
    cJSON_Delete(j);
    free(before);
    sb_free(&r.body);
    sb_free(&r.hdrs);
}

static void t_config(void)
{
    struct gen g;
    const char *args[] = {"--stopped", "--seed", "7", NULL};
    gen_start(&g, args);
    struct resp r = {0};
    http_s(g.port, "GET", "/gen/config", NULL, &r);
    cJSON *c = json_ok(&r, "GET config");
    const cJSON *mix = cJSON_GetObjectItem(c, "mix");
    CHECK(jnum(mix, "page_view") == 30 && jnum(mix, "add_to_cart") == 25 &&
              jnum(mix, "purchase") == 35 && jnum(mix, "payment_failed") == 8 &&
              jnum(mix, "refund") == 2, "default mix: %s", r.body.p);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(c, "running")) && jnum(c, "seed") == 7,
          "config: %s", r.body.p);
    static const char *const keys[] = {"rate", "invalid_pct", "duplicate_pct", "late_pct",
                                       "late_by", "users", "products"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        CHECK(!isnan(jnum(c, keys[i])), "config has no %s", keys[i]);
    /* GET's output is a valid PUT body. */
    char *all = strdup(r.body.p);
    http_s(g.port, "PUT", "/gen/config", all, &r);
    CHECK(r.status == 200 && !strcmp(r.body.p, all), "round trip: %ld %s", r.status, r.body.p);
    free(all);
    cJSON_Delete(c);

    http_s(g.port, "PUT", "/gen/config",
           "{\"rate\":250,\"late_by\":\"90s\",\"users\":50,\"products\":20,\"invalid_pct\":0,"
           "\"duplicate_pct\":0,\"mix\":{\"page_view\":33.5,\"add_to_cart\":16.5,"
           "\"purchase\":50}}", &r);
    c = json_ok(&r, "PUT config");
    mix = cJSON_GetObjectItem(c, "mix");
    CHECK(jnum(c, "rate") == 250 && jnum(c, "late_by") == 90000 && jnum(c, "users") == 50 &&
              jnum(mix, "page_view") == 33.5 && jnum(mix, "refund") == 0,
          "PUT result: %s", r.body.p);
    cJSON_Delete(c);
    /* Durations mean what they mean in a pipeline file: a bare number is milliseconds, and
     * the host's compound form is accepted. */
    http_s(g.port, "PUT", "/gen/config", "{\"late_by\":1500}", &r);
    c = json_ok(&r, "PUT late_by 1500");
    CHECK(jnum(c, "late_by") == 1500, "a bare late_by is milliseconds: %s", r.body.p);
    cJSON_Delete(c);
    http_s(g.port, "PUT", "/gen/config", "{\"late_by\":\"1h30m\"}", &r);
    c = json_ok(&r, "PUT late_by 1h30m");
    CHECK(jnum(c, "late_by") == 5400000, "late_by 1h30m: %s", r.body.p);
    cJSON_Delete(c);
    http_s(g.port, "PUT", "/gen/config", "{\"late_by\":\"90s\"}", &r);
    cJSON_Delete(json_ok(&r, "PUT late_by back"));
    /* The new populations are used: ids stay within 50 users and 20 products. */
    http_s(g.port, "POST", "/gen/emit", "{\"count\":500,\"echo\":true}", &r);
    c = json_ok(&r, "emit");
    const cJSON *e;
    int outside = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "events"))
    {
        const char *u = jstr(e, "user_id"), *p = jstr(e, "product_id");
        outside += !u || atoi(u + 2) < 1 || atoi(u + 2) > 50;
        outside += p && (atoi(p + 2) < 1 || atoi(p + 2) > 20);
        outside += !strcmp(jstr(e, "event_type"), "refund");
    }
    CHECK(outside == 0, "%d events outside users=50/products=20/no refunds", outside);
    cJSON_Delete(c);

    bad_put(g.port, "{\"mix\":{\"page_view\":30,\"add_to_cart\":25,\"purchase\":35,"
                    "\"payment_failed\":8,\"refund\":1}}", "mix");
    bad_put(g.port, "{\"mix\":{\"page_view\":100,\"checkout\":0}}", "mix");
    bad_put(g.port, "{\"mix\":{\"page_view\":110,\"purchase\":-10}}", "mix");
    bad_put(g.port, "{\"mix\":[30,25,35,8,2]}", "mix");
    bad_put(g.port, "{\"rate\":-1}", "rate");
    bad_put(g.port, "{\"rate\":\"fast\"}", "rate");
    bad_put(g.port, "{\"rate\":1e9}", "rate");
    bad_put(g.port, "{\"running\":\"yes\"}", "running");
    bad_put(g.port, "{\"invalid_pct\":101}", "invalid_pct");
    bad_put(g.port, "{\"duplicate_pct\":-0.5}", "duplicate_pct");
    bad_put(g.port, "{\"late_pct\":null}", "late_pct");
    bad_put(g.port, "{\"invalid_pct\":50,\"duplicate_pct\":30,\"late_pct\":30}", "invalid_pct");
    bad_put(g.port, "{\"late_by\":0}", "late_by");
    bad_put(g.port, "{\"late_by\":\"soon\"}", "late_by");
    bad_put(g.port, "{\"users\":0}", "users");
    bad_put(g.port, "{\"products\":1.5}", "products");
    bad_put(g.port, "{\"seed\":-1}", "seed");
    bad_put(g.port, "{\"seed\":1e300}", "seed");
    bad_put(g.port, "{\"rate\":10,\"colour\":\"blue\"}", "colour");
    bad_put(g.port, "[1,2]", NULL);
    bad_put(g.port, "{\"rate\":", NULL);
    bad_put(g.port, "", NULL);

    /* running=false stops the clock; running=true starts it. */
    http_s(g.port, "GET", "/gen/stats", NULL, &r);
    c = json_ok(&r, "stats");
    double gen0 = jnum(c, "generated");
    cJSON_Delete(c);
    sleep_ms(300);
    http_s(g.port, "GET", "/gen/stats", NULL, &r);
    c = json_ok(&r, "stats");
    CHECK(jnum(c, "generated") == gen0, "stopped generator made events");
    cJSON_Delete(c);
    http_s(g.port, "PUT", "/gen/config", "{\"running\":true,\"rate\":1000}", &r);
    CHECK(r.status == 200, "start: %ld", r.status);
    double now = gen0;
    for (int i = 0; i < 250 && now == gen0; i++) { /* bounded wait, not a timing assertion */
        sleep_ms(20);
        http_s(g.port, "GET", "/gen/stats", NULL, &r);
        c = json_ok(&r, "stats");
        now = jnum(c, "generated");
        cJSON_Delete(c);
    }
    CHECK(now > gen0, "running=true generated nothing");
    sb_free(&r.body);
    sb_free(&r.hdrs);
    gen_stop(&g);
}

static void t_poll(void)
{
    char *rec = tmp_path("poll.ndjson");
    const char *args[] = {"--seed", "5", "--rate", "5000", "--buffer", "1000000", "--record", rec,
                          NULL};
    struct gen g;
    gen_start(&g, args);
    struct resp r = {0};
    struct sbuf polled = {0}, direct = {0};
    long npolled = 0, polls = 0;
    static const char *const paths[] = {"/gen/events?max=1", "/gen/events?max=7",
                                        "/gen/events?max=500", "/gen/events",
                                        "/gen/events?max=0&format=json"};
    /* Poll while the clock runs, mixing in emits and single events. */
    for (int i = 0; i < 40; i++) {
        http_s(g.port, "GET", paths[i % 5], NULL, &r);
        cJSON *a = json_ok(&r, "poll");
        REQUIRE(cJSON_IsArray(a), "not an array");
        char rem[32];
        CHECK(header(&r, "X-Gen-Remaining", rem, sizeof rem), "no X-Gen-Remaining");
        if (i % 5 == 0)
            CHECK(cJSON_GetArraySize(a) <= 1, "max=1 returned %d", cJSON_GetArraySize(a));
        if (i % 5 == 4)
            CHECK(cJSON_GetArraySize(a) == 0, "max=0 returned %d", cJSON_GetArraySize(a));
        const cJSON *e;
        cJSON_ArrayForEach(e, a)
        {
            char *s = cJSON_PrintUnformatted(e);
            sb_add(&polled, s, strlen(s));
            sb_add(&polled, "\n", 1);
            free(s);
            npolled++;
        }
        cJSON_Delete(a);
        polls++;
        if (i % 8 == 3) {
            http_s(g.port, "POST", "/gen/emit", "{\"count\":100}", &r);
            CHECK(r.status == 200, "emit %ld", r.status);
        }
        if (i % 8 == 5) {
            http_s(g.port, "GET", "/gen/event", NULL, &r);
            cJSON *e1 = json_ok(&r, "event");
            char *s = cJSON_PrintUnformatted(e1);
            sb_add(&direct, s, strlen(s));
            sb_add(&direct, "\n", 1);
            free(s);
            cJSON_Delete(e1);
        }
        sleep_ms(40);
    }
    http_s(g.port, "PUT", "/gen/config", "{\"running\":false}", &r);
    CHECK(r.status == 200, "stop: %ld", r.status);
    /* Drain what is left, NDJSON this time. */
    http_s(g.port, "GET", "/gen/events?format=ndjson", NULL, &r);
    char ct[128], rem[32];
    CHECK(r.status == 200 && header(&r, "Content-Type", ct, sizeof ct) &&
              strstr(ct, "application/x-ndjson"), "ndjson poll: %ld", r.status);
    for (char *line = r.body.p, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        cJSON *e = cJSON_Parse(line);
        REQUIRE(e, "bad ndjson line %.100s", line);
        char *s = cJSON_PrintUnformatted(e);
        sb_add(&polled, s, strlen(s));
        sb_add(&polled, "\n", 1);
        free(s);
        cJSON_Delete(e);
        npolled++;
    }
    polls++;
    http_s(g.port, "GET", "/gen/events", NULL, &r);
    CHECK(!strcmp(r.body.p, "[]") && header(&r, "X-Gen-Remaining", rem, sizeof rem) &&
              !strcmp(rem, "0"), "buffer not empty after drain: %.100s", r.body.p);
    polls++;
    http_s(g.port, "GET", "/gen/stats", NULL, &r);
    cJSON *stats = json_ok(&r, "stats");
    gen_stop(&g);

    /* What the polls returned is exactly the record's buffered events, in order. */
    size_t nr;
    struct rec *v = read_record(rec, &nr);
    struct sbuf want = {0}, want_direct = {0};
    long nbuf = 0;
    for (size_t i = 0; i < nr; i++) {
        char *s = cJSON_PrintUnformatted(v[i].event);
        struct sbuf *dst = !strcmp(v[i].dest, "buffer") ? &want : &want_direct;
        nbuf += dst == &want;
        CHECK(!strcmp(v[i].dest, "buffer") || !strcmp(v[i].dest, "response"), "dest %s",
              v[i].dest);
        sb_add(dst, s, strlen(s));
        sb_add(dst, "\n", 1);
        free(s);
    }
    printf("  %ld events polled in %ld polls; record has %zu lines (%ld buffered)\n", npolled,
           polls, nr, nbuf);
    CHECK(npolled > 1000, "only %ld events polled", npolled);
    CHECK(npolled == nbuf, "polled %ld events, record buffered %ld", npolled, nbuf);
    CHECK(polled.len == want.len && !memcmp(polled.p, want.p, want.len),
          "polled events differ from the record (lost, repeated or reordered)");
    CHECK(direct.len == want_direct.len && !memcmp(direct.p, want_direct.p, direct.len),
          "GET /gen/event answers differ from the record");
    CHECK(jnum(stats, "polled") == npolled && jnum(stats, "dropped") == 0 &&
              jnum(stats, "polls") == polls && jnum(stats, "generated") == (double)nr,
          "stats: %s", r.body.p);
    cJSON_Delete(stats);
    free_record(v, nr);
    sb_free(&want);
    sb_free(&want_direct);
    sb_free(&polled);
    sb_free(&direct);
    sb_free(&r.body);
    sb_free(&r.hdrs);
    free(rec);
}

static void t_overflow(void)
{
    char *rec = tmp_path("overflow.ndjson");
    const char *args[] = {"--stopped", "--seed", "11", "--buffer", "100", "--record", rec, NULL};
    struct gen g;
    gen_start(&g, args);
    struct resp r = {0};
    http_s(g.port, "POST", "/gen/emit", "{\"count\":250}", &r);
    cJSON *j = json_ok(&r, "emit");
    CHECK(jnum(j, "emitted") == 250 && jnum(j, "queued") == 100 && jnum(j, "dropped") == 150,
          "emit into a full buffer: %s", r.body.p);
    cJSON_Delete(j);
    http_s(g.port, "GET", "/gen/stats", NULL, &r);
    j = json_ok(&r, "stats");
    CHECK(jnum(j, "dropped") == 150 && jnum(j, "buffered") == 100 &&
              jnum(j, "buffer_capacity") == 100, "stats: %s", r.body.p);
    cJSON_Delete(j);
    cJSON *a = poll_all(g.port, &r);
    int n = cJSON_GetArraySize(a);
    http_s(g.port, "POST", "/gen/emit", "{\"count\":10}", &r);
    j = json_ok(&r, "emit");
    CHECK(jnum(j, "queued") == 10 && jnum(j, "dropped") == 0, "after drain: %s", r.body.p);
    cJSON_Delete(j);
    gen_stop(&g);

    size_t nr;
    struct rec *v = read_record(rec, &nr);
    REQUIRE(nr == 260, "record has %zu lines", nr);
    CHECK(n == 100, "polled %d, want the 100 buffered", n);
    /* The oldest 100 were kept (overflow drops the newest), and the record says which. */
    for (size_t i = 0; i < 250 && n == 100; i++) {
        const char *want = i < 100 ? "buffer" : "dropped";
        CHECK(!strcmp(v[i].dest, want), "record %zu dest %s, want %s", i + 1, v[i].dest, want);
        if (i < 100) {
            char *s = cJSON_PrintUnformatted(cJSON_GetArrayItem(a, (int)i));
            char *t = cJSON_PrintUnformatted(v[i].event);
            CHECK(!strcmp(s, t), "polled event %zu differs from the record", i);
            free(s);
            free(t);
        }
    }
    cJSON_Delete(a);
    free_record(v, nr);
    free(rec);
    sb_free(&r.body);
    sb_free(&r.hdrs);
}

/* A request that must get `status` with a JSON error body (and, without an Origin, no CORS). */
static void expect_error(int port, const char *method, const char *path, const char *body,
                         size_t body_len, long status, const char *want_field)
{
    struct resp r = {0};
    http(port, method, path, body, body_len, &r, NULL);
    cJSON *j = cJSON_Parse(r.body.p);
    char v[256];
    CHECK(r.status == status, "%s %s: HTTP %ld, want %ld", method, path, r.status, status);
    CHECK(j && jstr(j, "error"), "%s %s: no JSON error: %.200s", method, path, r.body.p);
    CHECK(!header(&r, "Access-Control-Allow-Origin", v, sizeof v),
          "%s %s: CORS header without an Origin: %s", method, path, v);
    if (want_field) {
        const char *f = j ? jstr(j, "field") : NULL;
        CHECK(f && !strcmp(f, want_field), "%s %s %.60s: field %s, want %s", method, path,
              body ? body : "", f ? f : "(none)", want_field);
    }
    if (status == 405)
        CHECK(header(&r, "Allow", v, sizeof v), "405 without Allow");
    cJSON_Delete(j);
    sb_free(&r.body);
    sb_free(&r.hdrs);
}

static void t_bad_requests(void)
{
    struct gen g;
    const char *args[] = {"--stopped", "--seed", "3", "--cors-origin", "http://127.0.0.1:5173", NULL};
    gen_start(&g, args);
    int p = g.port;
    expect_error(p, "GET", "/nope", NULL, 0, 404, NULL);
    expect_error(p, "GET", "/gen/events/extra", NULL, 0, 404, NULL);
    expect_error(p, "POST", "/gen/event", "{}", 2, 405, NULL);
    expect_error(p, "DELETE", "/gen/config", NULL, 0, 405, NULL);
    expect_error(p, "GET", "/gen/emit", NULL, 0, 405, NULL);
    expect_error(p, "PUT", "/gen/stats", "{}", 2, 405, NULL);
    static const struct { const char *body, *field; } emits[] = {
        {"not json", NULL}, {"[1]", NULL}, {"{\"count\":-1}", "count"},
        {"{\"count\":\"5\"}", "count"}, {"{\"count\":1.5}", "count"},
        {"{\"count\":2000000}", "count"}, {"{\"count\":200000,\"echo\":true}", "count"},
        {"{\"cnt\":5}", "cnt"}, {"{\"echo\":\"yes\"}", "echo"}};
    for (size_t i = 0; i < sizeof emits / sizeof *emits; i++)
        expect_error(p, "POST", "/gen/emit", emits[i].body, strlen(emits[i].body), 400,
                     emits[i].field);
    static const char *const polls[] = {"/gen/events?max=abc", "/gen/events?max=-1",
                                        "/gen/events?max=1.5", "/gen/events?max=",
                                        "/gen/events?format=xml"};
    for (size_t i = 0; i < sizeof polls / sizeof *polls; i++)
        expect_error(p, "GET", polls[i], NULL, 0, 400, NULL);
    /* A body over 1 MiB is refused without being parsed. */
    size_t big = (2u << 20);
    char *huge = malloc(big);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    expect_error(p, "PUT", "/gen/config", huge, big, 413, NULL);
    free(huge);
    /* Raw bytes that are not UTF-8 or JSON. */
    expect_error(p, "PUT", "/gen/config", "\xff\xfe\x00{", 4, 400, NULL);

    /* CORS preflight from a page on another port. */
    struct resp r = {0};
    const char *pre[] = {"Origin: http://127.0.0.1:5173", "Access-Control-Request-Method: PUT",
                         "Access-Control-Request-Headers: content-type", NULL};
    http(p, "OPTIONS", "/gen/config", NULL, 0, &r, pre);
    char v[256];
    CHECK(r.status == 204, "preflight: HTTP %ld", r.status);
    CHECK(header(&r, "Access-Control-Allow-Origin", v, sizeof v) && !strcmp(v, "http://127.0.0.1:5173"),
          "preflight without the configured origin as ACAO");
    CHECK(header(&r, "Access-Control-Allow-Methods", v, sizeof v) && strstr(v, "PUT") &&
              strstr(v, "POST"), "preflight methods: %s", v);
    CHECK(header(&r, "Access-Control-Allow-Headers", v, sizeof v) && strcasestr(v, "content-type"),
          "preflight headers");
    const char *origin[] = {"Origin: http://127.0.0.1:5173", NULL};
    http(p, "GET", "/gen/stats", NULL, 0, &r, origin);
    CHECK(r.status == 200 && header(&r, "Access-Control-Allow-Origin", v, sizeof v) &&
              !strcmp(v, "http://127.0.0.1:5173"), "GET without CORS header");
    /* Still alive and consistent after all that. */
    cJSON *j = json_ok(&r, "stats");
    CHECK(jnum(j, "generated") == 0, "bad requests generated events: %s", r.body.p);
    cJSON_Delete(j);
    http_s(p, "GET", "/", NULL, &r);
    CHECK(r.status == 200 && strstr(r.body.p, "/gen/events"), "index: %ld", r.status);
    sb_free(&r.body);
    sb_free(&r.hdrs);
    gen_stop(&g);
}

/* ---- push mode: a tiny NDJSON receiver standing in for http-source ------------------------ */

struct receiver {
    pthread_mutex_t mu;
    struct sbuf lines; /* every accepted line, normalised, newline-terminated */
    long requests, accepted_lines, max_batch, bad_lines;
    int fail_first; /* answer 503 to this many requests first */
};

struct upload {
    struct sbuf body;
};

static enum MHD_Result rx_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)url, (void)version;
    struct receiver *rx = cls;
    struct upload *u = *con_cls;
    if (!u) {
        *con_cls = calloc(1, sizeof *u);
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*size) {
        sb_add(&u->body, data, *size);
        *size = 0;
        return MHD_YES;
    }
    unsigned status = 200;
    pthread_mutex_lock(&rx->mu);
    rx->requests++;
    if (strcmp(method, "POST"))
        status = 405;
    else if (rx->fail_first > 0) {
        rx->fail_first--;
        status = 503;
    } else {
        long n = 0;
        for (char *line = u->body.p, *nl; line && (nl = strchr(line, '\n')); line = nl + 1) {
            *nl = '\0';
            cJSON *e = cJSON_Parse(line);
            if (!e) {
                rx->bad_lines++;
                continue;
            }
            char *s = cJSON_PrintUnformatted(e);
            sb_add(&rx->lines, s, strlen(s));
            sb_add(&rx->lines, "\n", 1);
            free(s);
            cJSON_Delete(e);
            n++;
        }
        rx->accepted_lines += n;
        if (n > rx->max_batch)
            rx->max_batch = n;
    }
    pthread_mutex_unlock(&rx->mu);
    struct MHD_Response *r = MHD_create_response_from_buffer(2, (void *)"{}",
                                                             MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void rx_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)c, (void)code;
    struct upload *u = *con_cls;
    if (u) {
        sb_free(&u->body);
        free(u);
        *con_cls = NULL;
    }
}

static struct MHD_Daemon *rx_start(struct receiver *rx, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    REQUIRE(fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof sa) && !listen(fd, 16) &&
                !getsockname(fd, (struct sockaddr *)&sa, &sl), "receiver socket: %s",
            strerror(errno));
    *port = ntohs(sa.sin_port);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                                            rx_request, rx, MHD_OPTION_LISTEN_SOCKET, fd,
                                            MHD_OPTION_NOTIFY_COMPLETED, rx_done, NULL,
                                            MHD_OPTION_END);
    REQUIRE(d, "receiver did not start");
    return d;
}

/* Runs sluice-gen in push mode to completion; returns its exit status and stdout. */
static int run_push(const char *const *args, struct sbuf *out)
{
    int fd;
    pid_t pid = spawn(args, &fd);
    REQUIRE(pid > 0, "fork");
    read_out(fd, out, false, 60000);
    close(fd);
    sb_add(out, "", 0);
    return wait_exit(pid, 30000);
}

static void t_push(void)
{
    struct receiver rx = {.mu = PTHREAD_MUTEX_INITIALIZER, .fail_first = 1};
    int port;
    struct MHD_Daemon *d = rx_start(&rx, &port);
    char url[128], *rec = tmp_path("push.ndjson");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ingest", port);

    /* Unpaced: 20,000 events in batches of 700; the first request is refused and retried. */
    const char *args[] = {"--push", url, "--count", "20000", "--batch", "700", "--rate", "0",
                          "--seed", "3", "--record", rec, "--config",
                          "{\"invalid_pct\":5,\"duplicate_pct\":5,\"late_pct\":5}", NULL};
    struct sbuf out = {0};
    int rc = run_push(args, &out);
    printf("  %s", out.p);
    CHECK(rc == 0, "push exit status %d", rc);
    CHECK(strstr(out.p, "sent 20000 events") && strstr(out.p, "events/s") &&
              strstr(out.p, "1 failed requests retried"), "summary: %s", out.p);
    pthread_mutex_lock(&rx.mu);
    CHECK(rx.accepted_lines == 20000 && rx.bad_lines == 0, "receiver got %ld lines (%ld bad)",
          rx.accepted_lines, rx.bad_lines);
    CHECK(rx.max_batch == 700, "largest batch %ld, want 700", rx.max_batch);
    size_t nr;
    struct rec *v = read_record(rec, &nr);
    struct sbuf want = {0};
    size_t not_push = 0;
    for (size_t i = 0; i < nr; i++) {
        char *s = cJSON_PrintUnformatted(v[i].event);
        sb_add(&want, s, strlen(s));
        sb_add(&want, "\n", 1);
        free(s);
        not_push += strcmp(v[i].dest, "push") != 0;
    }
    CHECK(not_push == 0, "%zu records without dest push", not_push);
    CHECK(nr == 20000 && want.len == rx.lines.len && !memcmp(want.p, rx.lines.p, want.len),
          "received events differ from the record (%zu records)", nr);
    free_record(v, nr);
    sb_free(&want);

    /* Paced: at 2000 events/s batches shrink to rate/20 = 100 events. */
    rx.max_batch = rx.accepted_lines = 0;
    const char *paced[] = {"--push", url, "--count", "500", "--rate", "2000", "--seed", "4", NULL};
    sb_free(&out);
    pthread_mutex_unlock(&rx.mu);
    rc = run_push(paced, &out);
    printf("  %s", out.p);
    pthread_mutex_lock(&rx.mu);
    CHECK(rc == 0 && rx.accepted_lines == 500 && rx.max_batch == 100,
          "paced push: rc %d, %ld lines, largest batch %ld", rc, rx.accepted_lines, rx.max_batch);
    rx.accepted_lines = 0;
    pthread_mutex_unlock(&rx.mu);

    /* No --count: runs until SIGTERM, then exits 0 with a summary matching what arrived. */
    const char *endless[] = {"--push", url, "--rate", "400", "--seed", "5", NULL};
    int fd;
    pid_t pid = spawn(endless, &fd);
    REQUIRE(pid > 0, "fork");
    long got = 0;
    for (int i = 0; i < 500 && got < 40; i++) { /* bounded wait for the first batches */
        sleep_ms(20);
        pthread_mutex_lock(&rx.mu);
        got = rx.accepted_lines;
        pthread_mutex_unlock(&rx.mu);
    }
    CHECK(got >= 40, "endless push delivered only %ld events", got);
    kill(pid, SIGTERM);
    sb_free(&out);
    read_out(fd, &out, false, 20000);
    close(fd);
    sb_add(&out, "", 0);
    rc = wait_exit(pid, 20000);
    printf("  %s", out.p);
    char summary[64];
    pthread_mutex_lock(&rx.mu);
    snprintf(summary, sizeof summary, "sent %ld events", rx.accepted_lines);
    pthread_mutex_unlock(&rx.mu);
    CHECK(rc == 0 && strstr(out.p, summary), "after SIGTERM: rc %d, \"%s\", want \"%s\"", rc,
          out.p, summary);
    MHD_stop_daemon(d);

    /* Nobody listening: gives up after the allowed retries with status 1. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ingest", port);
    const char *dead[] = {"--push", url, "--count", "10", "--retries", "1", NULL};
    sb_free(&out);
    rc = run_push(dead, &out);
    CHECK(rc == 1 && strstr(out.p, "sent 0 events"), "dead receiver: rc %d, %s", rc, out.p);
    sb_free(&out);
    sb_free(&rx.lines);
    free(rec);
}

int main(int argc, char **argv)
{
    static const struct { const char *name; void (*fn)(void); } tests[] = {
        {"distribution", t_distribution}, {"determinism", t_determinism}, {"shares", t_shares},
        {"config", t_config},             {"poll", t_poll},               {"overflow", t_overflow},
        {"bad-requests", t_bad_requests}, {"push", t_push}};
    if (argc != 3) {
        fprintf(stderr, "usage: %s SLUICE_GEN SUBTEST\n", argv[0]);
        return 2;
    }
    gen_bin = argv[1];
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm(110);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    bool found = false;
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
        if (strcmp(argv[2], tests[i].name) && strcmp(argv[2], "all"))
            continue;
        found = true;
        printf("== %s\n", tests[i].name);
        fflush(stdout);
        tests[i].fn();
    }
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    if (!found) {
        fprintf(stderr, "unknown subtest %s\n", argv[2]);
        return 2;
    }
    printf("%s: %d failure(s)\n", argv[2], failures);
    return failures ? 1 : 0;
}
