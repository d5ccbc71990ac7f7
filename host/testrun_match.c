/* testrun_match.c — `sluice test`: collected records as JSON, and matching them against what a
 * case expects (exactly, or a subset of fields). */
#include <math.h>
#include <string.h>

#include "jsoncheck.h"
#include "testrun.h"
#include "util.h"

cJSON *tr_rec_json(const tr_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    if (r->has_key) cJSON_AddItemToObject(o, "key", cJSON_CreateString(r->key));
    else cJSON_AddNullToObject(o, "key");
    /* The value as the next stage would read it: JSON when it is (strictly) JSON, else text. */
    cJSON *v = NULL;
    if (r->value_len && !sl_json_strict(r->value, r->value_len)) v = cJSON_ParseWithLength(r->value, r->value_len);
    cJSON_AddItemToObject(o, "value", v ? v : cJSON_CreateString(r->value));
    cJSON *hd = cJSON_CreateObject();
    for (size_t j = 0; j < r->nh; j++) cJSON_AddItemToObject(hd, r->hname[j], cJSON_CreateString(r->hval[j]));
    cJSON_AddItemToObject(o, "headers", hd);
    cJSON_AddNumberToObject(o, "timestamp", (double)r->timestamp_ms);
    if (r->topic) cJSON_AddStringToObject(o, "topic", r->topic);
    else cJSON_AddNullToObject(o, "topic");
    cJSON_AddNumberToObject(o, "partition", r->partition);
    cJSON_AddNumberToObject(o, "offset", (double)r->offset);
    if (r->stage) cJSON_AddStringToObject(o, "stage", r->stage);
    if (r->reason) cJSON_AddStringToObject(o, "reason", r->reason);
    return o;
}

static int num_eq(double a, double b)
{
    if (a == b) return 1;
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= 1e-9 * m; /* printed with fewer digits than computed (0.833333) */
}

int tr_json_match(const cJSON *e, const cJSON *a, int exact)
{
    if (!e || !a) return e == a;
    if (cJSON_IsNumber(e)) return cJSON_IsNumber(a) && num_eq(e->valuedouble, a->valuedouble);
    if (cJSON_IsString(e)) return cJSON_IsString(a) && !strcmp(e->valuestring, a->valuestring);
    if (cJSON_IsBool(e)) return cJSON_IsBool(a) && cJSON_IsTrue(e) == cJSON_IsTrue(a);
    if (cJSON_IsNull(e)) return cJSON_IsNull(a);
    if (cJSON_IsArray(e)) {
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(e) != cJSON_GetArraySize(a)) return 0;
        for (const cJSON *x = e->child, *y = a->child; x; x = x->next, y = y->next)
            if (!tr_json_match(x, y, exact)) return 0;
        return 1;
    }
    if (cJSON_IsObject(e)) {
        if (!cJSON_IsObject(a)) return 0;
        if (exact && cJSON_GetArraySize(e) != cJSON_GetArraySize(a)) return 0;
        for (const cJSON *x = e->child; x; x = x->next) {
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(a, x->string);
            if (!y || !tr_json_match(x, y, exact)) return 0;
        }
        return 1;
    }
    return 0;
}
