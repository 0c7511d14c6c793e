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
