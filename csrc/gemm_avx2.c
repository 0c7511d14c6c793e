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

/* In-register transposes for packing transposed operands (gemm_template.h):
 * pairs of rows interleaved (unpack), then pairs of pairs, then the 128-bit
 * halves exchanged (permute2f128). */
static inline __attribute__((always_inline)) void fm_avx2_tr8_ps(__m256 r[8]) {
    __m256 t[8];
    __m256d d[8];
    for (int i = 0; i < 8; i += 2) { /* half L of t[i + h]: rows i, i+1 at columns 4L + 2h, +1 */
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) { /* half L of d[i + c]: rows i..i+3 at column 4L + c */
        d[i] = _mm256_unpacklo_pd(_mm256_castps_pd(t[i]), _mm256_castps_pd(t[i + 2]));
        d[i + 1] = _mm256_unpackhi_pd(_mm256_castps_pd(t[i]), _mm256_castps_pd(t[i + 2]));
        d[i + 2] = _mm256_unpacklo_pd(_mm256_castps_pd(t[i + 1]), _mm256_castps_pd(t[i + 3]));
        d[i + 3] = _mm256_unpackhi_pd(_mm256_castps_pd(t[i + 1]), _mm256_castps_pd(t[i + 3]));
    }
    for (int c = 0; c < 4; c++) { /* column 4L + c: half L of d[c], d[4 + c] */
        __m256 a = _mm256_castpd_ps(d[c]), b = _mm256_castpd_ps(d[4 + c]);
        r[c] = _mm256_permute2f128_ps(a, b, 0x20);
        r[4 + c] = _mm256_permute2f128_ps(a, b, 0x31);
    }
}

static inline __attribute__((always_inline)) void fm_avx2_tr4_pd(__m256d r[4]) {
    /* half L of t[c] (t[2 + c]): rows 0, 1 (2, 3) at column 2L + c */
    __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
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
#define FMT_TRANSPOSE(r) fm_avx2_tr8_ps(r)
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
#define FMT_TRANSPOSE(r) fm_avx2_tr4_pd(r)
#include "gemm_template.h"

const fm_gemm_kernel_table fm_gemm_table_avx2 = {
    "avx2",
    fm_avx2_f32_packed, fm_avx2_f32_small,
    fm_avx2_f64_packed, fm_avx2_f64_small,
    8, 384 * 1024,
};
#endif
