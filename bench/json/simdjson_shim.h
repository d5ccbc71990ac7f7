/* simdjson_shim.h — the C face of simdjson (C++) for bench_json: parse one document and visit
 * every value, the On-Demand way and the DOM way. */
#ifndef SIMDJSON_SHIM_H
#define SIMDJSON_SHIM_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
/* The shim is compiled twice: for the baseline x86-64 (simdjson's On-Demand then runs its
 * portable "fallback" kernel, chosen at compile time) and with -march=native (SJ_NATIVE: the
 * AVX2/AVX-512 kernels), as sj_* and sjn_*. */
#ifdef SJ_NATIVE
#define SJ(x) sjn_##x
#else
#define SJ(x) sj_##x
#endif
typedef struct sj_parser sj_parser;
sj_parser *SJ(new)(size_t max_doc);
void SJ(free)(sj_parser *p);
/* Visits every member of the object in buf[0..len) (buf padded as simdjson wants): returns a
 * checksum of what it read (string lengths + numbers), or -1 on error. */
double SJ(ondemand)(sj_parser *p, const char *buf, size_t len);
double SJ(dom)(sj_parser *p, const char *buf, size_t len);
size_t SJ(padding)(void);
const char *SJ(kernel)(void);
#ifdef __cplusplus
}
#endif
#endif
