#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#ifndef SLUICE_PLUGINDIR
#define SLUICE_PLUGINDIR "/usr/local/lib/sluice"
#endif

static char **dirs;
static size_t ndirs;
static sl_plugin **plugins;
static size_t nplugins;
static int scanned;

const char *kind_name(sl_kind k)
{
    return k == SL_KIND_SOURCE ? "source" : k == SL_KIND_TRANSFORM ? "transform"
                                          : k == SL_KIND_SINK ? "sink" : "?";
}

const char *type_name(sl_type t)
{
    static const char *names[] = {"?", "bool", "int", "double", "string", "duration",
                                  "size", "enum", "list", "map", "any", "path"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

void loader_add_dir(const char *dir)
{
    for (size_t i = 0; i < ndirs; i++)
        if (strcmp(dirs[i], dir) == 0) return;
    dirs = xrealloc(dirs, (ndirs + 1) * sizeof *dirs);
    dirs[ndirs++] = xstrdup(dir);
}

void loader_add_default_dirs(void)
{
    const char *env = getenv("SLUICE_PLUGIN_PATH");
    if (env && *env) {
        char *copy = xstrdup(env), *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save))
            loader_add_dir(d);
        free(copy);
    }
    /* The build dir: the executable lives in <build>/host/sluice, plugins in <build>/plugins. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            char *cand = xasprintf("%s/../plugins", exe);
            char *meson_marker = xasprintf("%s/../build.ninja", exe);
            if (access(meson_marker, F_OK) == 0) loader_add_dir(cand);
            free(meson_marker);
            free(cand);
        }
    }
    struct stat st;
    if (stat(SLUICE_PLUGINDIR, &st) == 0) loader_add_dir(SLUICE_PLUGINDIR);
}

static int valid_stage_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_')) return 0;
    return 1;
}

/* What each minor's descriptor must cover, from the header's table. */
typedef struct abi_row {
    size_t desc_size, api_size;
} abi_row;
#define ABI_ROW(minor, desc_last, api_last) [minor] = {SL_SIZE_TO(sl_stage_desc, desc_last), SL_SIZE_TO(sl_api, api_last)},
static const abi_row abi_rows[] = {SL_ABI_TABLE(ABI_ROW)};
#undef ABI_ROW
/* A field appended without its row (or a row without its field) stops the build here. */
_Static_assert(sizeof abi_rows / sizeof abi_rows[0] == SL_ABI_MINOR + 1, "SL_ABI_TABLE needs a row per minor");
#define ABI_LAST(minor, desc_last, api_last)                                                        \
    _Static_assert(minor != SL_ABI_MINOR || (SL_SIZE_TO(sl_stage_desc, desc_last) == sizeof(sl_stage_desc) && \
                                             SL_SIZE_TO(sl_api, api_last) == sizeof(sl_api)),                  \
                   "the last SL_ABI_TABLE row must end where sl_stage_desc and sl_api end");
SL_ABI_TABLE(ABI_LAST)
#undef ABI_LAST

size_t loader_abi_desc_size(unsigned minor) { return minor <= SL_ABI_MINOR ? abi_rows[minor].desc_size : 0; }
size_t loader_abi_api_size(unsigned minor) { return minor <= SL_ABI_MINOR ? abi_rows[minor].api_size : 0; }

/* The version checks read only the fixed header fields, which every descriptor ever built has. */
static const char *check_version(const sl_stage_desc *d, char *why, size_t len)
{
    if (d->magic != SL_STAGE_MAGIC) {
        snprintf(why, len, "wrong magic 0x%08x (expected 0x%08x): not a sluice stage descriptor",
                 d->magic, SL_STAGE_MAGIC);
        return why;
    }
    if (d->abi_major != SL_ABI_MAJOR) {
        snprintf(why, len, "built for stage ABI %u.%u, but this sluice speaks ABI %d.%d (major versions differ)",
                 d->abi_major, d->abi_minor, SL_ABI_MAJOR, SL_ABI_MINOR);
        return why;
    }
    if (d->abi_minor > SL_ABI_MINOR) {
        snprintf(why, len, "built for stage ABI %u.%u, newer than this sluice's ABI %d.%d (upgrade sluice)",
                 d->abi_major, d->abi_minor, SL_ABI_MAJOR, SL_ABI_MINOR);
        return why;
    }
    if (d->struct_size < abi_rows[d->abi_minor].desc_size) {
        snprintf(why, len, "descriptor struct_size %u is smaller than ABI %u.%u requires (%zu)",
                 d->struct_size, d->abi_major, d->abi_minor, abi_rows[d->abi_minor].desc_size);
        return why;
    }
    return NULL;
}

/* A host-owned copy of the descriptor holding only what the stage's minor and struct_size
 * cover; the fields after that (added at later minors) are NULL/0, so the host can read every
 * field of the copy without asking which minor the stage was built for. */
static sl_stage_desc *copy_desc(const sl_stage_desc *d)
{
    size_t n = d->struct_size;
    if (n > abi_rows[d->abi_minor].desc_size) n = abi_rows[d->abi_minor].desc_size;
    sl_stage_desc *c = xcalloc(1, sizeof *c);
    memcpy(c, d, n);
    return c;
}

/* The checks are ordered so each message names the first thing wrong. */
static const char *check_desc(const sl_stage_desc *d, char *why, size_t len)
{
    if (!valid_stage_name(d->name)) {
        snprintf(why, len, "invalid stage name (lowercase letters, digits, '-')");
        return why;
    }
    if (d->kind < SL_KIND_SOURCE || d->kind > SL_KIND_SINK) {
        snprintf(why, len, "stage '%s' has an unknown kind %d", d->name, (int)d->kind);
        return why;
    }
    if (!d->init || (d->kind == SL_KIND_SOURCE ? !d->poll : !d->process)) {
        snprintf(why, len, "stage '%s' lacks its init or %s callback", d->name,
                 d->kind == SL_KIND_SOURCE ? "poll" : "process");
        return why;
    }
    for (const sl_config_entry *e = d->config; e && e->key; e++) {
        if (e->type < SL_T_BOOL || e->type > SL_T_PATH || e->offset >= d->config_size ||
            ((e->type == SL_T_ENUM || (e->flags & SL_CFG_KEYS_LISTED)) && !e->choices) ||
            ((e->flags & SL_CFG_KEYS_LISTED) && e->type != SL_T_MAP)) {
            snprintf(why, len, "stage '%s' has a bad config table entry '%s'", d->name, e->key);
            return why;
        }
    }
    return NULL;
}

/* glibc's dlopen maps a truncated object and then dies of SIGBUS touching the missing pages,
 * so before dlopen we check that the ELF header, the program headers and every loadable
 * segment lie inside the file. Returns NULL if sane, else the reason. */
static const char *elf_problem(int fd)
{
    struct stat st;
    Elf64_Ehdr eh;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return "not a regular file";
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
        return "no ELF header";
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_DYN) return "not a 64-bit ELF shared object";
    uint64_t size = (uint64_t)st.st_size;
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size)
        return "truncated ELF file: program headers missing";
    if (eh.e_shoff && eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize > size)
        return "truncated ELF file: section headers missing";
    for (int i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) != (ssize_t)sizeof ph)
            return "truncated ELF file";
        if ((ph.p_type == PT_LOAD || ph.p_type == PT_DYNAMIC) && ph.p_offset + ph.p_filesz > size)
            return "truncated ELF file: a segment extends past the end";
    }
    return NULL;
}

/* Loads `abs` in a throwaway child first: a constructor that crashes or hangs takes down
 * the probe, not the supervisor. NULL when it loaded, else the reason. Skipped in pipeline
 * children (SLUICE_NO_PLUGIN_PROBE), whose supervisor already probed the same files. */
static const char *probe(const char *abs, char *why, size_t len)
{
    const char *off = getenv("SLUICE_NO_PLUGIN_PROBE");
    if (off && *off == '1') return NULL;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) return NULL; /* cannot probe: load as before */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return NULL;
    }
    if (pid == 0) {
        close(pfd[0]);
        /* Die of the signal itself (no sanitizer report): the parent names it. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        void *h = dlopen(abs, RTLD_NOW | RTLD_LOCAL);
        sl_stage_entry_fn entry;
        *(void **)&entry = h ? dlsym(h, SL_STAGE_ENTRY_SYMBOL) : NULL;
        if (entry) (void)entry();
        ssize_t w = write(pfd[1], "k", 1);
        _exit(w == 1 ? 0 : 1);
    }
    close(pfd[1]);
    struct pollfd pl = {.fd = pfd[0], .events = POLLIN};
    int ready = poll(&pl, 1, 10000);
    char c = 0;
    ssize_t r = ready > 0 ? read(pfd[0], &c, 1) : 0;
    close(pfd[0]);
    if (ready <= 0) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (r == 1 && c == 'k') return NULL;
    if (ready <= 0) snprintf(why, len, "loading it did not finish within 10 s (a constructor hangs?)");
    else if (WIFSIGNALED(status))
        snprintf(why, len, "loading it crashes the process (signal %d, %s): its constructor or entry point is broken",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else snprintf(why, len, "loading it ends the process (exit %d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return why;
}

sl_plugin *loader_load_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open plugin: %s", path, strerror(errno));
        return NULL;
    }
    const char *problem = elf_problem(fd);
    close(fd);
    if (problem) {
        snprintf(err, errlen, "%s: not a shared object (%s)", path, problem);
        return NULL;
    }
    char abs[PATH_MAX];
    if (!realpath(path, abs)) snprintf(abs, sizeof abs, "%s", path);
    char pwhy[512];
    if (probe(abs, pwhy, sizeof pwhy)) {
        snprintf(err, errlen, "%s: refused: %s", path, pwhy);
        return NULL;
    }
    void *h = dlopen(abs, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "%s: cannot load shared object: %s", path, dlerror());
        return NULL;
    }
    sl_stage_entry_fn entry;
    *(void **)&entry = dlsym(h, SL_STAGE_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(err, errlen, "%s: no entry point '%s' (is it a sluice stage? see SL_STAGE_DEFINE)",
                 path, SL_STAGE_ENTRY_SYMBOL);
        dlclose(h);
        return NULL;
    }
    const sl_stage_desc *d = entry();
    char why[512];
    if (!d) {
        snprintf(err, errlen, "%s: entry point returned no descriptor", path);
        dlclose(h);
        return NULL;
    }
    if (check_version(d, why, sizeof why)) {
        snprintf(err, errlen, "%s: refused: %s", path, why);
        dlclose(h);
        return NULL;
    }
    sl_stage_desc *copy = copy_desc(d);
    if (check_desc(copy, why, sizeof why)) {
        snprintf(err, errlen, "%s: refused: %s", path, why);
        free(copy);
        dlclose(h);
        return NULL;
    }
    sl_plugin *p = xcalloc(1, sizeof *p);
    p->desc = copy;
    p->path = xstrdup(abs);
    p->handle = h;
    return p;
}

static void plugin_free(sl_plugin *p)
{
    free((void *)p->desc);
    free(p->path);
    free(p);
}

static int register_plugin(sl_plugin *p, char *err, size_t errlen, int dir_rank, int *ranks)
{
    for (size_t i = 0; i < nplugins; i++) {
        if (strcmp(plugins[i]->desc->name, p->desc->name) != 0) continue;
        if (strcmp(plugins[i]->path, p->path) == 0) return 0; /* same file via two dirs */
        if (ranks && ranks[i] != dir_rank) return 0; /* an earlier dir shadows a later one */
        snprintf(err, errlen, "duplicate stage name '%s': %s and %s", p->desc->name,
                 plugins[i]->path, p->path);
        return -1;
    }
    plugins = xrealloc(plugins, (nplugins + 1) * sizeof *plugins);
    plugins[nplugins++] = p;
    return 1;
}

static int has_so_suffix(const char *n)
{
    size_t l = strlen(n);
    return l > 3 && strcmp(n + l - 3, ".so") == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Collects DIR/NAME.so and DIR/SUB/NAME.so, sorted so the order (and so any duplicate message) does not
 * depend on the file system. */
static void collect(const char *dir, int depth, char ***out, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth == 0) {
            collect(p, 1, out, n);
        } else if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && has_so_suffix(e->d_name)) {
            *out = xrealloc(*out, (*n + 1) * sizeof **out);
            (*out)[(*n)++] = p;
            continue;
        }
        free(p);
    }
    closedir(d);
}

int loader_scan(char *err, size_t errlen)
{
    if (scanned) return 0;
    scanned = 1;
    int *ranks = NULL;
    int rc = 0;
    for (size_t di = 0; di < ndirs && rc == 0; di++) {
        char **files = NULL;
        size_t nf = 0;
        collect(dirs[di], 0, &files, &nf);
        if (nf) qsort(files, nf, sizeof *files, cmp_str); /* qsort(NULL, 0) is undefined */
        for (size_t i = 0; i < nf; i++) {
            if (rc == 0) {
                sl_plugin *p = loader_load_file(files[i], err, errlen);
                if (!p) {
                    rc = -1;
                } else {
                    size_t before = nplugins;
                    int r = register_plugin(p, err, errlen, (int)di, ranks);
                    if (r < 0) rc = -1;
                    if (nplugins > before) {
                        ranks = xrealloc(ranks, nplugins * sizeof *ranks);
                        ranks[nplugins - 1] = (int)di;
                    } else {
                        /* Shadowed or refused: the handle stays open (dlclose of a library
                         * that may share state is not worth the risk); free the record. */
                        plugin_free(p);
                    }
                }
            }
            free(files[i]);
        }
        free(files);
    }
    free(ranks);
    return rc;
}

const sl_plugin *loader_find(const char *use, char *err, size_t errlen)
{
    if (strchr(use, '/')) {
        char abs[PATH_MAX];
        if (realpath(use, abs))
            for (size_t i = 0; i < nplugins; i++)
                if (strcmp(plugins[i]->path, abs) == 0) return plugins[i];
        sl_plugin *p = loader_load_file(use, err, errlen);
        if (!p) return NULL;
        for (size_t i = 0; i < nplugins; i++)
            if (strcmp(plugins[i]->desc->name, p->desc->name) == 0) {
                snprintf(err, errlen, "duplicate stage name '%s': %s and %s", p->desc->name,
                         plugins[i]->path, p->path);
                plugin_free(p);
                return NULL;
            }
        plugins = xrealloc(plugins, (nplugins + 1) * sizeof *plugins);
        plugins[nplugins++] = p;
        return p;
    }
    for (size_t i = 0; i < nplugins; i++)
        if (strcmp(plugins[i]->desc->name, use) == 0) return plugins[i];
    /* Suggest the closest known name. */
    const char *best = NULL;
    int bestd = 3;
    for (size_t i = 0; i < nplugins; i++) {
        int dd = sl_edit_distance(use, plugins[i]->desc->name);
        if (dd < bestd) { bestd = dd; best = plugins[i]->desc->name; }
    }
    if (best)
        snprintf(err, errlen, "unknown stage '%s' (did you mean '%s'?)", use, best);
    else
        snprintf(err, errlen, "unknown stage '%s' (searched %zu plugin dirs; see `sluice plugins`)", use, ndirs);
    return NULL;
}

size_t loader_count(void) { return nplugins; }
const sl_plugin *loader_at(size_t i) { return i < nplugins ? plugins[i] : NULL; }

size_t loader_dir_count(void) { return ndirs; }
const char *loader_dir_at(size_t i) { return i < ndirs ? dirs[i] : NULL; }
