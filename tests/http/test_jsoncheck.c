/* The strict JSON check (host/jsoncheck.c): every refusal with its reason, what must pass, and
 * that a 20,000-key object and 100,000 nested arrays stay linear (counted, not timed: the
 * check's own bound is enforced by the key table; here we only make sure it finishes and is
 * right). Exit 0 when every case holds. */
#include "jsoncheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void expect(const char *name, const char *in, size_t len, const char *reason)
{
    char why[200];
    int rc = sl_json_check(in, len, 0, why, sizeof why);
    if (!reason && rc != 0) {
        printf("FAIL %s: refused: %s\n", name, why);
        failures++;
    } else if (reason && rc == 0) {
        printf("FAIL %s: accepted, expected \"%s\"\n", name, reason);
        failures++;
    } else if (reason && !strstr(why, reason)) {
        printf("FAIL %s: reason \"%s\", expected \"%s\"\n", name, why, reason);
        failures++;
    } else {
        printf("ok   %s%s%s\n", name, reason ? ": " : "", reason ? why : "");
    }
}

#define OK(name, s) expect(name, s, sizeof(s) - 1, NULL)
#define BAD(name, s, r) expect(name, s, sizeof(s) - 1, r)

int main(void)
{
    OK("object", "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"x\"}}");
    OK("whitespace around", " \r\n\t{\"a\":1}\n ");
    OK("scalars", "\"text\"");
    OK("numbers", "[0,-0,1.5,-2e10,3E+2,4e-2,1.79769313486231e308,1e-400]");
    BAD("largest double", "[1.7976931348623157e308]", "too close to the largest double");
    OK("escapes", "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"]");
    OK("utf8", "[\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"]");
    OK("same key in different objects", "{\"a\":{\"a\":1},\"b\":{\"a\":2}}");
    OK("sibling objects reuse keys", "[{\"a\":1,\"b\":2},{\"a\":1,\"b\":2}]");
    OK("empty containers", "{\"a\":{},\"b\":[]}");

    BAD("NUL escape in value", "{\"event_type\":\"purchase\\u0000x\"}", "string contains NUL (\\u0000)");
    BAD("NUL escape in key", "{\"a\\u0000\":1}", "string contains NUL (\\u0000)");
    BAD("raw NUL in string", "{\"a\":\"x\0y\"}", "string contains a NUL byte");
    BAD("raw NUL outside", "{\"a\":1}\0", "NUL byte outside a string");
    BAD("control outside", "{\"a\":\x0b 1}", "control byte 0x0b outside a string");
    BAD("control in string", "[\"a\x01\"]", "control byte 0x01 in a string");
    BAD("overlong 2", "[\"\xc0\xaf\"]", "overlong");
    BAD("overlong 3", "[\"\xe0\x80\xaf\"]", "overlong");
    BAD("overlong 4", "[\"\xf0\x80\x80\xaf\"]", "overlong");
    BAD("encoded surrogate", "[\"\xed\xa0\x80\"]", "encoded surrogate");
    BAD("above U+10FFFF", "[\"\xf4\x90\x80\x80\"]", "above U+10FFFF");
    BAD("truncated", "[\"\xe2\x82\"]", "truncated");
    BAD("truncated at end", "[\"\xe2", "truncated");
    BAD("stray continuation", "[\"\x80\"]", "unexpected continuation byte 0x80");
    BAD("0xff", "[\"\xff\"]", "never appears in UTF-8");
    BAD("lone high surrogate", "[\"\\ud800\"]", "lone high surrogate");
    BAD("high then non-low", "[\"\\ud800\\u0041\"]", "lone high surrogate");
    BAD("lone low surrogate", "[\"\\udc00\"]", "lone low surrogate");
    BAD("duplicate key", "{\"a\":1,\"b\":2,\"a\":3}", "duplicate key \"a\"");
    BAD("duplicate via escape", "{\"a\":1,\"\\u0061\":3}", "duplicate key");
    BAD("deep duplicate", "{\"x\":[{\"y\":{\"k\":1,\"k\":2}}]}", "duplicate key \"k\"");
    BAD("trailing", "{\"a\":1} x", "trailing bytes");
    BAD("two values", "{} {}", "trailing bytes");
    BAD("overflow", "[1e999]", "not finite");
    BAD("deep overflow", "{\"a\":{\"b\":[[{\"c\":-2e308}]]}}", "not finite");
    BAD("overflow by digits", "[1797693134862315799999999999999999999999e270]", "not finite");
    BAD("NaN", "[NaN]", "NaN and Infinity");
    BAD("Infinity", "{\"a\":Infinity}", "NaN and Infinity");
    BAD("leading zero", "[01]", "leading zero");
    BAD("long number", "[1.00000000000000000000000000000000000000000000000000000000000000001]", "longer than");
    BAD("empty", "", "empty input");
    BAD("only space", "  ", "empty input");
    BAD("unterminated", "{\"a\":\"x", "unterminated string");
    BAD("bad escape", "[\"\\x\"]", "invalid escape");
    BAD("trailing comma", "[1,]", "expected a value");
    BAD("object trailing comma", "{\"a\":1,}", "expected a string key");
    BAD("single quotes", "{'a':1}", "expected a string key");
    BAD("missing colon", "{\"a\" 1}", "expected ':'");
    BAD("unclosed", "[1,2", "expected ',' or ']'");

    /* Depth: 128 passes, 129 does not, and 100,000 is refused quickly without recursion. */
    size_t deep = 100000;
    char *d = malloc(2 * deep + 1);
    memset(d, '[', deep);
    memset(d + deep, ']', deep);
    expect("depth 128", d + deep - 128, 256, NULL);
    expect("depth 129", d + deep - 129, 258, "nesting deeper than 128");
    expect("depth 100000", d, 2 * deep, "nesting deeper than 128");
    free(d);

    /* 20,000 distinct keys pass; the same with one duplicate at the end is caught. */
    size_t nk = 20000, cap = nk * 24 + 64, o = 0;
    char *big = malloc(cap);
    big[o++] = '{';
    for (size_t k = 0; k < nk; k++)
        o += (size_t)snprintf(big + o, cap - o, "%s\"key%zu\":%zu", k ? "," : "", k, k);
    big[o++] = '}';
    expect("20000 keys", big, o, NULL);
    o--;
    o += (size_t)snprintf(big + o, cap - o, ",\"key17\":0}");
    expect("20000 keys + duplicate", big, o, "duplicate key \"key17\"");
    free(big);

    if (failures)
        printf("%d case(s) failed\n", failures);
    return failures ? 1 : 0;
}
