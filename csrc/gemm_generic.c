/* Portable GEMM kernels: the fallback on every CPU and the only target on
 * non-x86 machines.  Written with GCC/clang vector extensions (16-byte
 * vectors, which the compiler lowers to SSE2, NEON, ... or to scalars).
 *
 *   float32: micro-tile 4 rows x 8 columns (2 vectors of 4)
 *   float64: micro-tile 4 rows x 4 columns (2 vectors of 2)
 *   small path: column blocks of up to 4 vectors, 6-8 rows.
 */
#include <string.h>
#include "gemm_kernels.h"

typedef float fm_gv4f __attribute__((vector_size(16)));
typedef double fm_gv2d __attribute__((vector_size(16)));

static inline fm_gv4f fm_gv4f_set1(float x) { return (fm_gv4f){x, x, x, x}; }
static inline fm_gv4f fm_gv4f_load(const float *p) { fm_gv4f v; memcpy(&v, p, sizeof v); return v; }
static inline void fm_gv4f_store(float *p, fm_gv4f v) { memcpy(p, &v, sizeof v); }
static inline fm_gv4f fm_gv4f_loadn(const float *p, int n) {
    fm_gv4f v = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) v[i] = p[i];
    return v;
}
static inline void fm_gv4f_storen(float *p, fm_gv4f v, int n) {
    for (int i = 0; i < n; i++) p[i] = v[i];
}

static inline fm_gv2d fm_gv2d_set1(double x) { return (fm_gv2d){x, x}; }
static inline fm_gv2d fm_gv2d_load(const double *p) { fm_gv2d v; memcpy(&v, p, sizeof v); return v; }
static inline void fm_gv2d_store(double *p, fm_gv2d v) { memcpy(p, &v, sizeof v); }
static inline fm_gv2d fm_gv2d_loadn(const double *p, int n) {
    fm_gv2d v = {0, 0};
    for (int i = 0; i < n; i++) v[i] = p[i];
    return v;
}
static inline void fm_gv2d_storen(double *p, fm_gv2d v, int n) {
    for (int i = 0; i < n; i++) p[i] = v[i];
}

/* ---- float32 ---- */
#define FMT_T float
#define FMT_V fm_gv4f
#define FMT_VL 4
#define FMT_ZERO() fm_gv4f_set1(0.0f)
#define FMT_SET1(x) fm_gv4f_set1(x)
#define FMT_LOAD(p) fm_gv4f_load(p)
#define FMT_LOADN(p, n) fm_gv4f_loadn((p), (n))
#define FMT_STORE(p, v) fm_gv4f_store((p), (v))
#define FMT_STOREN(p, v, n) fm_gv4f_storen((p), (v), (n))
#define FMT_FMA(a, b, c) ((a) * (b) + (c))
#define FMT_MUL(a, b) ((a) * (b))
#define FMT_MR 4
#define FMT_NV 2
#define FMT_MC 128
#define FMT_KC 256
#define FMT_NC 2048
#define FMT_SNV 4
#define FMT_SR(nv) ((nv) >= 3 ? 4 : 8)
#define FMT_NAME(x) fm_generic_f32_##x
#include "gemm_template.h"

/* ---- float64 ---- */
#define FMT_T double
#define FMT_V fm_gv2d
#define FMT_VL 2
#define FMT_ZERO() fm_gv2d_set1(0.0)
#define FMT_SET1(x) fm_gv2d_set1(x)
#define FMT_LOAD(p) fm_gv2d_load(p)
#define FMT_LOADN(p, n) fm_gv2d_loadn((p), (n))
#define FMT_STORE(p, v) fm_gv2d_store((p), (v))
#define FMT_STOREN(p, v, n) fm_gv2d_storen((p), (v), (n))
#define FMT_FMA(a, b, c) ((a) * (b) + (c))
#define FMT_MUL(a, b) ((a) * (b))
#define FMT_MR 4
#define FMT_NV 2
#define FMT_MC 128
#define FMT_KC 256
#define FMT_NC 2048
#define FMT_SNV 4
#define FMT_SR(nv) ((nv) >= 3 ? 4 : 8)
#define FMT_NAME(x) fm_generic_f64_##x
#include "gemm_template.h"

const fm_gemm_kernel_table fm_gemm_table_generic = {
    "generic",
    fm_generic_f32_packed, fm_generic_f32_small,
    fm_generic_f64_packed, fm_generic_f64_small,
    2, 0, /* without wide registers packing wins from a few rows on */
};
