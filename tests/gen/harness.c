/* harness.c — running sluice-gen, its HTTP API, record files and temporary files for the
 * subtests (see gentest.h). */
#include "gentest.h"

const char *gen_bin;
int failures;
pid_t children[8]; /* killed on a failed REQUIRE or the watchdog */
int nchildren;

void kill_children(void)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0)
            kill(children[i], SIGKILL);
}

void die(void)
{
    kill_children();
    fprintf(stderr, "test aborted after %d failure(s)\n", failures);
    exit(1);
}

void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: test took too long (watchdog)\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    kill_children();
    _exit(1);
}

/* ---- small helpers ------------------------------------------------------------------------ */


/* The plugins' growable buffer (plugins/common/sl_buf.h); out of memory ends the test. */
void sb_add(sl_gbuf *b, const char *s, size_t n)
{
    sl_gbuf_put(b, s, n);
    if (b->oom)
        abort();
}

void sb_free(sl_gbuf *b) { sl_gbuf_free(b); }

char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    sl_gbuf b = {0};
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

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- running sluice-gen ------------------------------------------------------------------- */
/* ---- running sluice-gen ------------------------------------------------------------------- */


pid_t spawn(const char *const *args, int *out_fd)
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
bool read_out(int fd, sl_gbuf *out, bool line_only, int timeout_ms)
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
void gen_start(struct gen *g, const char *const *args)
{
    const char *all[40] = {"--listen", "127.0.0.1:0"};
    int n = 2;
    for (int i = 0; args && args[i] && n < 38; i++)
        all[n++] = args[i];
    all[n] = NULL;
    g->pid = spawn(all, &g->out_fd);
    REQUIRE(g->pid > 0, "fork failed");
    sl_gbuf line = {0};
    bool ok = read_out(g->out_fd, &line, true, 10000);
    const char *colon = line.p ? strrchr(line.p, ':') : NULL;
    REQUIRE(ok && colon && strstr(line.p, "listening on http://127.0.0.1:"),
            "no 'listening on' line from sluice-gen, got \"%s\"", line.p ? line.p : "");
    g->port = atoi(colon + 1);
    sb_free(&line);
    REQUIRE(g->port > 0, "bad port");
}

/* Waits for a child to exit (bounded); returns its exit status or -1. */
int wait_exit(pid_t pid, int timeout_ms)
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
void gen_stop(struct gen *g)
{
    kill(g->pid, SIGTERM);
    int rc = wait_exit(g->pid, 15000);
    CHECK(rc == 0, "sluice-gen exit status %d after SIGTERM", rc);
    close(g->out_fd);
}

/* ---- HTTP client -------------------------------------------------------------------------- */


size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    sb_add(ud, p, size * n);
    return size * n;
}

CURL *curl;

/* One request to sluice-gen; body may be NULL. Extra headers are "Name: value" strings. */
void http(int port, const char *method, const char *path, const char *body, size_t body_len,
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

void http_s(int port, const char *method, const char *path, const char *body,
                   struct resp *r)
{
    http(port, method, path, body, body ? strlen(body) : 0, r, NULL);
}

/* Value of a response header (case-insensitive name), copied into out; NULL when absent. */
const char *header(const struct resp *r, const char *name, char *out, size_t n)
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

cJSON *json_ok(struct resp *r, const char *what)
{
    cJSON *j = cJSON_Parse(r->body.p);
    REQUIRE(r->status == 200 && j, "%s: HTTP %ld %s", what, r->status, r->body.p);
    return j;
}

/* ---- record file -------------------------------------------------------------------------- */


/* Parses every line of a --record file. */
struct rec *read_record(const char *path, size_t *n)
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

void free_record(struct rec *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].raw);
        cJSON_Delete(v[i].event);
    }
    free(v);
}

char tmp_dir[256];

/* Removes the subtest's temporary files (one flat directory). */
void tmp_cleanup(void)
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

char *tmp_path(const char *name)
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
cJSON *poll_all(int port, struct resp *r)
{
    http_s(port, "GET", "/gen/events?max=10000000", NULL, r);
    cJSON *a = json_ok(r, "GET /gen/events");
    REQUIRE(cJSON_IsArray(a), "events is not an array");
    return a;
}
