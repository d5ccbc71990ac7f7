/* schema.c — the tests' own reading of pipelines/ecommerce-event.schema.yaml, independent of
 * the validator, to check what sluice-gen emits. */
#include "gentest.h"

/* ---- an independent reading of pipelines/ecommerce-event.schema.yaml ---------------------- */

bool parse_ts(const char *s, long long *ms)
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
const char *schema_check(const cJSON *e)
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
