/* sup_defs.c — pipeline definitions: the files the supervisor watches, checking a new text
 * under its author's policy, (re)loading, and the REST operations that write definitions. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "sup_int.h"
#include "yamltree.h"

static sup_pipeline *find_by_file(const char *file)
{
    for (size_t i = 0; i < sup.n; i++)
        if (!sup.p[i]->deleting && !strcmp(sup.p[i]->file, file)) return sup.p[i];
    return NULL;
}

/* A definition file's bytes, or NULL. Opened non-blocking and read only when it is a regular
 * file of at most YT_MAX_BYTES: a FIFO dropped into a watched directory must not hang the
 * supervisor. */
static char *read_whole(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)YT_MAX_BYTES) {
        errno = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        close(fd);
        return NULL;
    }
    sl_buf b = {0};
    char chunk[8192];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0 && b.len <= YT_MAX_BYTES) buf_put(&b, chunk, (size_t)r);
    close(fd);
    buf_cstr(&b);
    return b.data ? b.data : xstrdup("");
}

static void sup_pipeline_free(sup_pipeline *p)
{
    free(p->name);
    free(p->file);
    free(p->def);
    sup_status_free(&p->status);
    free(p->trace);
    free(p->reload_error);
    buf_free(&p->line);
    metrics_free(&p->base);
    free(p);
}

void sup_remove_pipeline(sup_pipeline *p)
{
    for (size_t i = 0; i < sup.n; i++)
        if (sup.p[i] == p) {
            memmove(&sup.p[i], &sup.p[i + 1], (sup.n - i - 1) * sizeof *sup.p);
            sup.n--;
            break;
        }
    log_info("pipeline %s removed", p->name);
    sup_pipeline_free(p);
}

static int untrusted_text(int editable, const char *def)
{
    return editable && def && !strncmp(def, SUP_REST_MARKER, strlen(SUP_REST_MARKER));
}

const cfg_policy *sup_rest_policy(void)
{
    static cfg_policy pol;
    pol = sup_policy_for(1, NULL);
    return &pol;
}

/* Fully checks the definition `text` of file `path` under the policy of its author (untrusted:
 * stages only by plugin name, paths confined, no ${VAR}, allow-listed settings only). On
 * success fills name and task bounds. The text checked is the text the child will run. */
static int check_file(const char *path, const char *text, int untrusted, char **name, int *tmin, int *tmax,
                      char *err, size_t errlen)
{
    cfg_policy pol = sup_policy_for(untrusted, text);
    pipeline_cfg *c = pipeline_load_ex(path, &pol, err, errlen);
    if (!c) return -1;
    *name = xstrdup(c->name);
    *tmin = c->tasks_min;
    *tmax = c->tasks_max;
    pipeline_free(c);
    return 0;
}

static int in_pipeline_dir(const char *file)
{
    if (!sup.pipeline_dir) return 0;
    char *tmp = xstrdup(file);
    int r = !strcmp(dirname(tmp), sup.pipeline_dir);
    free(tmp);
    return r;
}

static sup_pipeline *add_pipeline(const char *name, const char *file, char *def, int tmin, int tmax)
{
    sup_pipeline *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(name);
    p->file = xstrdup(file);
    p->def = def;
    p->editable = in_pipeline_dir(file);
    p->untrusted = untrusted_text(p->editable, def);
    p->status_fd = p->ctl_fd = -1;
    p->state = SUP_WAITING;
    p->tasks_min = tmin;
    p->tasks_max = tmax;
    p->tasks = tmin;
    sup.p = xrealloc(sup.p, (sup.n + 1) * sizeof *sup.p);
    sup.p[sup.n++] = p;
    return p;
}

/* A definition changed on disk or over REST: accept it (restart the pipeline) or refuse it
 * (the old one keeps running). `def` is taken over. */
static int apply_change(sup_pipeline *p, char *def, int from_rest, char *err, size_t errlen)
{
    char *name = NULL;
    int tmin, tmax;
    int untrusted = from_rest || untrusted_text(p->editable, def);
    if (check_file(p->file, def, untrusted, &name, &tmin, &tmax, err, errlen)) {
        log_error("pipeline %s: new definition refused, the running one stays: %s", p->name, err);
        sup_set_str(&p->reload_error, err);
        free(def);
        return -1;
    }
    if (strcmp(name, p->name)) {
        snprintf(err, errlen, "%s: renaming pipeline '%s' to '%s' in place is not supported; delete it and create '%s'",
                 p->file, p->name, name, name);
        log_error("pipeline %s: %s", p->name, err);
        sup_set_str(&p->reload_error, err);
        free(name);
        free(def);
        return -1;
    }
    free(name);
    free(p->def);
    p->def = def;
    p->untrusted = untrusted;
    sup_set_str(&p->reload_error, NULL);
    p->tasks_min = tmin;
    p->tasks_max = tmax;
    if (p->tasks < tmin) p->tasks = tmin;
    if (p->tasks > tmax) p->tasks = tmax;
    log_info("pipeline %s: definition changed; restarting it", p->name);
    if (p->state != SUP_STOPPED) sup_request_restart(p);
    return 0;
}

static void delete_pipeline(sup_pipeline *p)
{
    p->deleting = 1;
    if (p->pid > 0) kill(p->pid, SIGTERM);
    else sup_remove_pipeline(p);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The definition files the sources stand for: files as given, directories as their *.yaml /
 * *.yml files in name order, then the pipeline directory. Absolute paths. */
static char **list_files(size_t *count)
{
    char **out = NULL;
    size_t n = 0;
    size_t nsrc = sup.o->nsources + (sup.pipeline_dir ? 1 : 0);
    for (size_t i = 0; i < nsrc; i++) {
        const char *src = i < sup.o->nsources ? sup.o->sources[i] : sup.pipeline_dir;
        struct stat st;
        if (stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(src);
            struct dirent *e;
            size_t first = n;
            while (d && (e = readdir(d))) {
                size_t l = strlen(e->d_name);
                if (e->d_name[0] == '.') continue;
                if ((l > 5 && !strcmp(e->d_name + l - 5, ".yaml")) || (l > 4 && !strcmp(e->d_name + l - 4, ".yml"))) {
                    /* Only regular files (or links to them): a FIFO, socket or device is skipped. */
                    struct stat fst;
                    if (fstatat(dirfd(d), e->d_name, &fst, 0) != 0 || !S_ISREG(fst.st_mode)) {
                        log_warn("%s/%s is not a regular file; skipped", src, e->d_name);
                        continue;
                    }
                    out = xrealloc(out, (n + 1) * sizeof *out);
                    out[n++] = xasprintf("%s/%s", src, e->d_name);
                }
            }
            if (d) closedir(d);
            if (n > first) qsort(out + first, n - first, sizeof *out, cmp_str); /* out may be NULL */
        } else {
            out = xrealloc(out, (n + 1) * sizeof *out);
            out[n++] = xstrdup(src);
        }
    }
    /* Absolute and unique (the pipeline directory may also be a source). */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char abs[PATH_MAX];
        char *a = xstrdup(realpath(out[i], abs) ? abs : out[i]);
        free(out[i]);
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++) dup = !strcmp(out[j], a);
        if (dup) free(a);
        else out[k++] = a;
    }
    *count = k;
    return out;
}

/* Brings the running set in line with the definition files. At start (initial = 1) any bad
 * file fails the whole start; later a bad file is refused and the old definition runs on. */
int sup_reload(int initial)
{
    size_t nf;
    char **files = list_files(&nf);
    int bad = 0;
    char *seen = xcalloc(sup.n + nf + 1, 1);
    for (size_t i = 0; i < nf; i++) {
        char err[4096];
        char *def = read_whole(files[i]);
        if (!def) {
            if (initial) fprintf(stderr, "%s: %s\n", files[i], errno == EINVAL ? "not a regular file" : strerror(errno));
            else log_error("%s: %s", files[i], errno == EINVAL ? "not a regular file" : strerror(errno));
            bad = 1;
            continue;
        }
        sup_pipeline *p = find_by_file(files[i]);
        if (p) {
            for (size_t j = 0; j < sup.n; j++)
                if (sup.p[j] == p) seen[j] = 1;
            if (strcmp(def, p->def)) {
                apply_change(p, def, 0, err, sizeof err);
            } else {
                free(def);
                sup_set_str(&p->reload_error, NULL); /* back to the running definition */
            }
            continue;
        }
        char *name = NULL;
        int tmin, tmax;
        if (check_file(files[i], def, untrusted_text(in_pipeline_dir(files[i]), def), &name, &tmin, &tmax, err,
                       sizeof err)) {
            /* A REST-written file that no longer passes (a stricter policy, an edit by hand) must
             * not keep the supervisor from starting: the REST API is how it gets fixed. */
            int rest_written = untrusted_text(in_pipeline_dir(files[i]), def);
            if (initial && !rest_written) fprintf(stderr, "%s\n", err);
            else log_error("pipeline file refused%s: %s", rest_written ? " (re-create it over REST)" : "", err);
            bad |= !rest_written || !initial;
            free(def);
            continue;
        }
        sup_pipeline *other = sup_find(name);
        if (other) {
            if (initial) fprintf(stderr, "%s: pipeline name '%s' is also used by %s\n", files[i], name, other->file);
            else log_error("%s: pipeline name '%s' is also used by %s; refused", files[i], name, other->file);
            bad = 1;
            free(name);
            free(def);
            continue;
        }
        add_pipeline(name, files[i], def, tmin, tmax);
        seen[sup.n - 1] = 1;
        if (!initial) log_info("pipeline %s added (%s)", name, files[i]);
        free(name);
    }
    /* Definitions whose file is gone are stopped and forgotten. */
    for (size_t j = sup.n; j-- > 0;)
        if (!seen[j] && !sup.p[j]->deleting && !initial) {
            log_info("pipeline %s: %s is gone; stopping it", sup.p[j]->name, sup.p[j]->file);
            delete_pipeline(sup.p[j]);
        }
    free(seen);
    for (size_t i = 0; i < nf; i++) free(files[i]);
    free(files);
    return bad;
}

static int write_file_atomic(const char *path, const char *text, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    if (fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int precheck(const char *name, sup_pipeline **p, char *err, size_t errlen)
{
    if (!cfg_valid_name(name)) {
        snprintf(err, errlen, "pipeline name is invalid: %s", CFG_NAME_RULE);
        return 400;
    }
    if (!sup.pipeline_dir) {
        snprintf(err, errlen, "no pipeline directory is configured (rest.pipeline_dir or --pipeline-dir)");
        return 500;
    }
    for (size_t i = 0; i < sup.n; i++)
        if (sup.p[i]->deleting && !strcmp(sup.p[i]->name, name)) {
            snprintf(err, errlen, "pipeline %s is being deleted; try again shortly", name);
            return 409;
        }
    *p = sup_find(name);
    if (*p && !(*p)->editable) {
        snprintf(err, errlen, "pipeline %s is defined by %s, outside the REST pipeline directory; edit that file "
                 "(it is reloaded on SIGHUP)", name, (*p)->file);
        return 409;
    }
    return 0;
}

/* Checks a new definition of `name` as untrusted text at its final place (so relative paths
 * and messages are the final file's): on success *final is set (caller frees) and 0 is
 * returned, else an HTTP status with err set. Nothing is written. */
static int check_definition(const char *name, const char *yaml, sup_pipeline **p, char **final, int *tmin,
                            int *tmax, char *err, size_t errlen)
{
    int rc = precheck(name, p, err, errlen);
    if (rc) return rc;
    *final = *p ? xstrdup((*p)->file) : xasprintf("%s/%s.yaml", sup.pipeline_dir, name);
    char *pname = NULL;
    if (check_file(*final, yaml, 1, &pname, tmin, tmax, err, errlen)) {
        free(*final);
        return 400;
    }
    rc = strcmp(pname, name) ? 400 : 0;
    if (rc) snprintf(err, errlen, "the definition names pipeline '%s', not '%s'", pname, name);
    free(pname);
    if (rc) free(*final);
    return rc;
}

int sup_check(const char *name, const char *yaml, char *err, size_t errlen)
{
    sup_pipeline *p = NULL;
    char *final;
    int tmin, tmax;
    int rc = check_definition(name, yaml, &p, &final, &tmin, &tmax, err, errlen);
    if (rc) return rc;
    free(final);
    return 0;
}

int sup_put(const char *name, const char *yaml, char *err, size_t errlen)
{
    sup_pipeline *p = NULL;
    char *final;
    int tmin, tmax;
    int rc = check_definition(name, yaml, &p, &final, &tmin, &tmax, err, errlen);
    if (rc) return rc;
    /* Persist what was checked; the child is handed p->def, never the file. */
    char *tmp = xasprintf("%s/.%s.yaml.tmp", sup.pipeline_dir, name);
    int wrote = write_file_atomic(tmp, yaml, err, errlen) == 0;
    if (!wrote || rename(tmp, final) != 0) {
        if (wrote) snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
        unlink(tmp);
        free(tmp);
        free(final);
        return 500;
    }
    free(tmp);
    rc = 200;
    if (p) {
        if (strcmp(p->def, yaml) && apply_change(p, xstrdup(yaml), 1, err, errlen)) rc = 400;
    } else {
        sup_pipeline *np = add_pipeline(name, final, xstrdup(yaml), tmin, tmax);
        np->untrusted = 1; /* whatever its first line says: it came over REST */
        log_info("pipeline %s created over REST (%s)", name, final);
        rc = 201;
    }
    free(final);
    return rc;
}

int sup_delete(sup_pipeline *p, char *err, size_t errlen)
{
    if (!p->editable) {
        snprintf(err, errlen, "pipeline %s is defined by %s, outside the REST pipeline directory; remove that file "
                 "instead", p->name, p->file);
        return 409;
    }
    if (unlink(p->file) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove %s: %s", p->file, strerror(errno));
        return 500;
    }
    log_info("pipeline %s deleted over REST", p->name);
    delete_pipeline(p);
    return 204;
}
