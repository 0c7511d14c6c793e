/* AVX-512 GEMM kernels (zmm registers, FMA), chosen at run time when the CPU
 * supports AVX-512 F/DQ/BW/VL.  Compiled for that target by the pragma below
 * only; the rest of the extension stays baseline x86-64.
 *
 *   float32: micro-tile 12 rows x 32 columns (2 zmm), 24 accumulators
 *   float64: micro-tile 12 rows x 16 columns (2 zmm), 24 accumulators
 *   small path: column blocks of up to 4 zmm, 6-8 rows; partial vectors use
 *   masked loads / stores.
 * On non-x86 builds this file is empty.
 */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,fma")
#include <immintrin.h>
#include "gemm_kernels.h"

#ifndef FM_AVX512_F32_MC /* cache blocking, float32 (overridable for tuning) */
#define FM_AVX512_F32_MC 192
#endif
#ifndef FM_AVX512_F32_KC
#define FM_AVX512_F32_KC 384
#endif

#define FM_MASK16(n) ((__mmask16)((1u << (n)) - 1u))
#define FM_MASK8(n) ((__mmask8)((1u << (n)) - 1u))

/* In-register transposes for packing transposed operands (gemm_template.h):
 * pairs of rows interleaved (unpack), then pairs of pairs, then 128-bit lanes
 * gathered across vectors (shuffle_f32x4 / f64x2). */
static inline __attribute__((always_inline)) void fm_avx512_tr16_ps(__m512 r[16]) {
    __m512 t[16];
    __m512d d[16];
    for (int i = 0; i < 16; i += 2) { /* lane L of t[i + h]: rows i, i+1 at columns 4L + 2h, +1 */
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* lane L of d[i + c]: rows i..i+3 at column 4L + c */
        d[i] = _mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2]));
        d[i + 1] = _mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2]));
        d[i + 2] = _mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3]));
        d[i + 3] = _mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3]));
    }
    for (int c = 0; c < 4; c++) { /* column 4L + c: lane L of d[c], d[4 + c], d[8 + c], d[12 + c] */
        __m512 a = _mm512_castpd_ps(d[c]), b = _mm512_castpd_ps(d[4 + c]);
        __m512 e = _mm512_castpd_ps(d[8 + c]), f = _mm512_castpd_ps(d[12 + c]);
        __m512 u0 = _mm512_shuffle_f32x4(a, b, 0x88), u1 = _mm512_shuffle_f32x4(a, b, 0xDD);
        __m512 v0 = _mm512_shuffle_f32x4(e, f, 0x88), v1 = _mm512_shuffle_f32x4(e, f, 0xDD);
        r[c] = _mm512_shuffle_f32x4(u0, v0, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(u1, v1, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(u0, v0, 0xDD);
        r[12 + c] = _mm512_shuffle_f32x4(u1, v1, 0xDD);
    }
}

static inline __attribute__((always_inline)) void fm_avx512_tr8_pd(__m512d r[8]) {
    __m512d t[8];
    for (int i = 0; i < 8; i += 2) { /* lane L of t[i + c]: rows i, i+1 at column 2L + c */
        t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    for (int c = 0; c < 2; c++) { /* column 2L + c: lane L of t[c], t[2 + c], t[4 + c], t[6 + c] */
        __m512d u0 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x88), u1 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xDD);
        __m512d v0 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x88), v1 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xDD);
        r[c] = _mm512_shuffle_f64x2(u0, v0, 0x88);
        r[2 + c] = _mm512_shuffle_f64x2(u1, v1, 0x88);
        r[4 + c] = _mm512_shuffle_f64x2(u0, v0, 0xDD);
        r[6 + c] = _mm512_shuffle_f64x2(u1, v1, 0xDD);
    }
}

/* ---- float32 ---- */
#define FMT_T float
#define FMT_V __m512
#define FMT_VL 16
#define FMT_ZERO() _mm512_setzero_ps()
#define FMT_SET1(x) _mm512_set1_ps(x)
#define FMT_LOAD(p) _mm512_loadu_ps(p)
#define FMT_LOADN(p, n) _mm512_maskz_loadu_ps(FM_MASK16(n), (p))
#define FMT_STORE(p, v) _mm512_storeu_ps((p), (v))
#define FMT_STOREN(p, v, n) _mm512_mask_storeu_ps((p), FM_MASK16(n), (v))
#define FMT_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define FMT_MUL(a, b) _mm512_mul_ps((a), (b))
#define FMT_MR 12
#define FMT_NV 2
#define FMT_MC FM_AVX512_F32_MC
#define FMT_KC FM_AVX512_F32_KC
#define FMT_NC 4096
#define FMT_SNV 4
#define FMT_SR(nv) ((nv) >= 4 ? 6 : 8)
#define FMT_NAME(x) fm_avx512_f32_##x
#define FMT_TRANSPOSE(r) fm_avx512_tr16_ps(r)
#include "gemm_template.h"

/* ---- float64 ---- */
#define FMT_T double
#define FMT_V __m512d
#define FMT_VL 8
#define FMT_ZERO() _mm512_setzero_pd()
#define FMT_SET1(x) _mm512_set1_pd(x)
#define FMT_LOAD(p) _mm512_loadu_pd(p)
#define FMT_LOADN(p, n) _mm512_maskz_loadu_pd(FM_MASK8(n), (p))
#define FMT_STORE(p, v) _mm512_storeu_pd((p), (v))
#define FMT_STOREN(p, v, n) _mm512_mask_storeu_pd((p), FM_MASK8(n), (v))
#define FMT_FMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define FMT_MUL(a, b) _mm512_mul_pd((a), (b))
#define FMT_MR 12
#define FMT_NV 2
#define FMT_MC 96
#define FMT_KC 256
#define FMT_NC 2048
#define FMT_SNV 4
#define FMT_SR(nv) ((nv) >= 4 ? 6 : 8)
#define FMT_NAME(x) fm_avx512_f64_##x
#define FMT_TRANSPOSE(r) fm_avx512_tr8_pd(r)
#include "gemm_template.h"

const fm_gemm_kernel_table fm_gemm_table_avx512 = {
    "avx512",
    fm_avx512_f32_packed, fm_avx512_f32_small,
    fm_avx512_f64_packed, fm_avx512_f64_small,
    /* B up to 256 KB in place: on a Sapphire Rapids core (2 MB L2) 32x784 @
     * 784x64 (B = 200 KB) and 128x784 @ 784x32 run 1.6-1.8x faster in place than
     * packed, while from B = 512 KB on (784x256 @ 256x512, 256x512 @ 512x512,
     * 256x784 @ 784x512) packing is 14-33% faster: re-read in place by every
     * 6-row block, such a B streams from beyond L2.  (1.7 MB was measured on
     * an EPYC.)  Sizes between 256 and 512 KB were not measured. */
    8, 256 * 1024,
};
#endif
