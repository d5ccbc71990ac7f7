/* plugin_doc.c — a stage's config table as Markdown, generated from its descriptor: what
 * `sluice plugins describe NAME --markdown` prints and what every plugins/NAME/README.md holds
 * between its "config table" markers (tests/cli/test-plugin-readmes.sh fails when they differ,
 * scripts/plugin-readmes.sh --write regenerates them). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plugin_doc.h"

/* Text in a table cell: a '|' would end the cell. */
static void cell(sl_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i]; i++) {
        if (s[i] == '|') buf_puts(b, "\\|");
        else if (s[i] == '\n') buf_puts(b, " ");
        else buf_put(b, &s[i], 1);
    }
}

static void code(sl_buf *b, const char *s, size_t n)
{
    buf_puts(b, "`");
    cell(b, s, n);
    buf_puts(b, "`");
}

/* A bound in the unit people write it in: 31536000000 ms is 365d, 1073741824 bytes 1GiB. */
static void bound(sl_buf *b, sl_type t, double v)
{
    static const struct { const char *u; double f; } dur[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}},
                                                     size[] = {{"GiB", 1073741824}, {"MiB", 1048576}, {"KiB", 1024}};
    if (v == floor(v) && fabs(v) < 1e15 && v != 0) {
        int n = t == SL_T_DURATION ? 4 : t == SL_T_SIZE ? 3 : 0;
        for (int i = 0; i < n; i++) {
            double f = t == SL_T_DURATION ? dur[i].f : size[i].f;
            if (fmod(v, f) == 0) {
                buf_printf(b, "%lld%s", (long long)(v / f), t == SL_T_DURATION ? dur[i].u : size[i].u);
                return;
            }
        }
        buf_printf(b, "%lld%s", (long long)v, t == SL_T_DURATION ? "ms" : "");
        return;
    }
    if (v == 0) buf_printf(b, "0");
    else buf_printf(b, "%.15g", v);
}

/* The items of a '|'-separated choices string, as `a`, `b` (skip: those starting with '!' or not). */
static void choices(sl_buf *b, const char *c, int bang, const char *sep)
{
    int first = 1;
    while (*c) {
        size_t l = strcspn(c, "|");
        if (bang < 0 || (*c == '!') == bang) {
            if (!first) buf_puts(b, sep);
            first = 0;
            code(b, c + (*c == '!'), l - (*c == '!'));
        }
        c += l;
        if (*c) c++;
    }
}

void plugin_doc_markdown(const sl_stage_desc *d, sl_buf *b)
{
    buf_puts(b, "| key | type | default | description |\n|---|---|---|---|\n");
    for (const sl_config_entry *e = d->config; e && e->key; e++) {
        buf_puts(b, "| ");
        code(b, e->key, strlen(e->key));
        buf_puts(b, " | ");
        if (e->type == SL_T_ENUM) {
            buf_puts(b, "enum: ");
            choices(b, e->choices ? e->choices : "", -1, " \\| ");
        } else {
            buf_puts(b, type_name(e->type));
        }
        if (e->flags & SL_CFG_BOUNDED) {
            buf_puts(b, ", ");
            bound(b, e->type, e->min);
            buf_puts(b, "..");
            bound(b, e->type, e->max);
            if (e->type == SL_T_LIST) buf_puts(b, " items");
        }
        buf_puts(b, " | ");
        if (e->flags & SL_CFG_REQUIRED) buf_puts(b, "required");
        else if (e->default_value) code(b, e->default_value, strlen(e->default_value));
        else buf_puts(b, "—");
        buf_puts(b, " | ");
        if (e->description) cell(b, e->description, strlen(e->description));
        if (e->flags & SL_CFG_OPERATOR_ONLY) buf_puts(b, ". Only in the operator's own files, not over REST");
        if ((e->flags & SL_CFG_KEYS_LISTED) && e->choices) {
            buf_puts(b, ". Never accepted: ");
            choices(b, e->choices, 1, ", ");
            buf_puts(b, ". A pipeline created over REST may set only: ");
            choices(b, e->choices, 0, ", ");
        }
        buf_puts(b, " |\n");
    }
}
