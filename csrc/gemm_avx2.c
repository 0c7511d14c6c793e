/* AVX2 + FMA GEMM kernels (ymm registers), chosen at run time on CPUs with
 * AVX2 and FMA but no AVX-512.  Compiled for that target by the pragma below
 * only.
 *
 *   float32: micro-tile 6 rows x 16 columns (2 ymm), 12 accumulators
 *   float64: micro-tile 6 rows x 8 columns (2 ymm), 12 accumulators
 *   small path: column blocks of up to 2 ymm, 6-8 rows; partial vectors use
 *   vmaskmov loads / stores.
 * On non-x86 builds this file is empty.
 */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include "gemm_kernels.h"

/* Lane masks: lanes [0, n) all ones. */
static inline __m256i fm_avx2_mask32(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256i fm_avx2_mask64(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

/* ---- float32 ---- */
#define FMT_T float
#define FMT_V __m256
#define FMT_VL 8
#define FMT_ZERO() _mm256_setzero_ps()
#define FMT_SET1(x) _mm256_set1_ps(x)
#define FMT_LOAD(p) _mm256_loadu_ps(p)
#define FMT_LOADN(p, n) _mm256_maskload_ps((p), fm_avx2_mask32(n))
#define FMT_STORE(p, v) _mm256_storeu_ps((p), (v))
#define FMT_STOREN(p, v, n) _mm256_maskstore_ps((p), fm_avx2_mask32(n), (v))
#define FMT_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define FMT_MUL(a, b) _mm256_mul_ps((a), (b))
#define FMT_MR 6
#define FMT_NV 2
#define FMT_MC 144
#define FMT_KC 256
#define FMT_NC 4096
#define FMT_SNV 2
#define FMT_SR(nv) ((nv) >= 2 ? 6 : 8)
#define FMT_NAME(x) fm_avx2_f32_##x
#include "gemm_template.h"

/* ---- float64 ---- */
#define FMT_T double
#define FMT_V __m256d
#define FMT_VL 4
#define FMT_ZERO() _mm256_setzero_pd()
#define FMT_SET1(x) _mm256_set1_pd(x)
#define FMT_LOAD(p) _mm256_loadu_pd(p)
#define FMT_LOADN(p, n) _mm256_maskload_pd((p), fm_avx2_mask64(n))
#define FMT_STORE(p, v) _mm256_storeu_pd((p), (v))
#define FMT_STOREN(p, v, n) _mm256_maskstore_pd((p), fm_avx2_mask64(n), (v))
#define FMT_FMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define FMT_MUL(a, b) _mm256_mul_pd((a), (b))
#define FMT_MR 6
#define FMT_NV 2
#define FMT_MC 96
#define FMT_KC 256
#define FMT_NC 2048
#define FMT_SNV 2
#define FMT_SR(nv) ((nv) >= 2 ? 6 : 8)
#define FMT_NAME(x) fm_avx2_f64_##x
#include "gemm_template.h"

const fm_gemm_kernel_table fm_gemm_table_avx2 = {
    "avx2",
    fm_avx2_f32_packed, fm_avx2_f32_small,
    fm_avx2_f64_packed, fm_avx2_f64_small,
    8, 384 * 1024,
};
#endif
