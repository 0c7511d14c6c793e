/* AVX-512 optimizer kernels (optim_kernels.h), compiled for that target by the
 * pragma below only and chosen at run time.  On non-x86 builds this file is
 * empty. */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,fma")
#include <immintrin.h>
#include <float.h>
#include "optim_kernels.h"

/* One vector of the Adam rule on the lanes in k (the others are neither read
 * nor written).  m and v as the generic loop (a multiply and an add each, no
 * contraction; the caller flushes subnormals); the update's sqrt and quotient as
 * described in the header. */
static inline __attribute__((always_inline)) void
fm_adam16(float *w, const float *g, float *m, float *v, __mmask16 k, __m512 c1, __m512 c2,
          __m512 alpha, __m512 eps) {
    const __m512 gv = _mm512_maskz_loadu_ps(k, g);
    const __m512 a = _mm512_maskz_loadu_ps(k, m), b = _mm512_maskz_loadu_ps(k, v);
    const __m512 mn = _mm512_add_ps(a, _mm512_mul_ps(_mm512_sub_ps(gv, a), c1));
    const __m512 vn = _mm512_add_ps(b, _mm512_mul_ps(_mm512_sub_ps(_mm512_mul_ps(gv, gv), b), c2));
    _mm512_mask_storeu_ps(m, k, mn);
    _mm512_mask_storeu_ps(v, k, vn);
    const __m512 num = _mm512_mul_ps(mn, alpha);
    /* sqrt(v): s = v / sqrt(v) estimated, then twice s += (v - s*s) * (0.5 / sqrt(v)) */
    const __m512 y = _mm512_rsqrt14_ps(vn), h = _mm512_mul_ps(y, _mm512_set1_ps(0.5f));
    __m512 s = _mm512_mul_ps(vn, y);
    s = _mm512_fmadd_ps(_mm512_fnmadd_ps(s, s, vn), h, s);   /* ~28 bits */
    s = _mm512_fmadd_ps(_mm512_fnmadd_ps(s, s, vn), h, s);   /* rounds as sqrt, but in rare cases */
    const __m512 d = _mm512_add_ps(s, eps);
    /* num / d: r = 1/d estimated and refined once, q = num * r, q += (num - d*q) * r */
    __m512 r = _mm512_rcp14_ps(d);
    r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
    __m512 q = _mm512_mul_ps(num, r);
    q = _mm512_fmadd_ps(_mm512_fnmadd_ps(d, q, num), r, q);
    /* v = 0, subnormal, infinite or NaN: the exact operations */
    const __mmask16 special = k & (_mm512_cmp_ps_mask(vn, _mm512_set1_ps(FLT_MIN), _CMP_NGE_UQ) |
                                   _mm512_cmp_ps_mask(vn, _mm512_set1_ps(FLT_MAX), _CMP_GT_OQ));
    if (special)
        q = _mm512_mask_div_ps(q, special, num, _mm512_add_ps(_mm512_sqrt_ps(vn), eps));
    _mm512_mask_storeu_ps(w, k, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, w), q));
}

static void fm_adam_f32_avx512(float *w, const float *g, float *m, float *v, int64_t n,
                               float one_minus_b1, float one_minus_b2, float alpha, float eps) {
    const __m512 c1 = _mm512_set1_ps(one_minus_b1), c2 = _mm512_set1_ps(one_minus_b2);
    const __m512 va = _mm512_set1_ps(alpha), ve = _mm512_set1_ps(eps);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) fm_adam16(w + i, g + i, m + i, v + i, 0xFFFF, c1, c2, va, ve);
    if (i < n)
        fm_adam16(w + i, g + i, m + i, v + i, (__mmask16)((1u << (n - i)) - 1u), c1, c2, va, ve);
}

const fm_optim_kernel_table fm_optim_table_avx512 = {"avx512", fm_adam_f32_avx512};
#endif
