// simdjson_shim.cc — see simdjson_shim.h. Bench only.
#include "simdjson_shim.h"

#include <simdjson.h>

using namespace simdjson;

namespace {
struct parser_impl {
    ondemand::parser od;
    dom::parser dom;
};
}
struct sj_parser : parser_impl {};

extern "C" sj_parser *SJ(new)(size_t max_doc)
{
    sj_parser *p = new sj_parser;
    if (p->od.allocate(max_doc) || p->dom.allocate(max_doc)) {
        delete p;
        return nullptr;
    }
    return p;
}

extern "C" void SJ(free)(sj_parser *p) { delete p; }
extern "C" const char *SJ(kernel)(void) { return simdjson::builtin_implementation()->name().c_str(); }
extern "C" size_t SJ(padding)(void) { return SIMDJSON_PADDING; }

extern "C" double SJ(ondemand)(sj_parser *p, const char *buf, size_t len)
{
    double sum = 0;
    ondemand::document doc;
    if (p->od.iterate(buf, len, len + SIMDJSON_PADDING).get(doc)) return -1;
    ondemand::object obj;
    if (doc.get_object().get(obj)) return -1;
    for (auto field : obj) {
        std::string_view key;
        if (field.unescaped_key().get(key)) return -1;
        ondemand::value v = field.value();
        ondemand::json_type t;
        if (v.type().get(t)) return -1;
        if (t == ondemand::json_type::string) {
            std::string_view s;
            if (v.get_string().get(s)) return -1;
            sum += (double)s.size();
        } else if (t == ondemand::json_type::number) {
            double d;
            if (v.get_double().get(d)) return -1;
            sum += d;
        } else {
            std::string_view raw;
            raw = v.raw_json_token();
        }
        sum += (double)key.size();
    }
    return sum;
}

extern "C" double SJ(dom)(sj_parser *p, const char *buf, size_t len)
{
    double sum = 0;
    dom::element root;
    if (p->dom.parse(buf, len, false).get(root)) return -1;
    dom::object obj;
    if (root.get_object().get(obj)) return -1;
    for (auto field : obj) {
        dom::element v = field.value;
        if (v.is_string()) sum += (double)std::string_view(v).size();
        else if (v.is_number()) sum += double(v);
        sum += (double)field.key.size();
    }
    return sum;
}
