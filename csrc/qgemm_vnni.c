/* AVX-512 VNNI int8 Dense kernels (vpdpbusd: unsigned bytes times signed
 * bytes, four products summed into each int32 lane), chosen at run time when
 * the CPU has AVX-512 F/BW/VL and VNNI.  Compiled for that target by the
 * pragma below only.
 *
 * vpdpbusd wants one operand unsigned: quantized rows are stored as q + 128
 * (1..255), and the kernel subtracts 128 * sum_k W[k, j], precomputed when the
 * kernel is packed, from each sum -- exact in int32.
 *
 * Micro-tile: 8 rows x 32 columns (2 zmm), 16 accumulators; a row tail reads
 * its last row again and stores only the real rows, a column tail uses masked
 * stores.  On non-x86 builds this file is empty.
 */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni")
#include <immintrin.h>
#include <string.h>
#include "qgemm_kernels.h"

#define VNNI_MR 8

static void vnni_quantize(const float *X, int64_t ldx, int64_t rows, int64_t n_in, int64_t kp, uint8_t *Q,
                          float *s) {
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), off = _mm512_set1_epi32(128);
    for (int64_t r = 0; r < rows; r++) {
        const float *x = X + r * ldx;
        uint8_t *q = Q + r * kp;
        __m512 amax = _mm512_setzero_ps();
        __mmask16 nan = 0;
        for (int64_t k = 0; k < n_in; k += 16) {
            const int64_t n = n_in - k < 16 ? n_in - k : 16;
            const __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), x + k);
            nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            amax = _mm512_max_ps(_mm512_abs_ps(v), amax);   /* a NaN lane keeps amax */
        }
        float inv;
        if (!fm_q8_row_scale(_mm512_reduce_max_ps(amax), nan != 0, &s[r], &inv)) {
            memset(q, 128, (size_t)kp);
            continue;
        }
        const __m512 vinv = _mm512_set1_ps(inv);
        for (int64_t k = 0; k < n_in; k += 16) {
            const int64_t n = n_in - k < 16 ? n_in - k : 16;
            const __mmask16 m = (__mmask16)((1u << n) - 1u);
            const __m512 v = _mm512_maskz_loadu_ps(m, x + k);
            __m512i i = _mm512_cvtps_epi32(_mm512_mul_ps(v, vinv));   /* round to nearest even */
            i = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(i, lo), hi), off);
            _mm_mask_storeu_epi8(q + k, m, _mm512_cvtepi32_epi8(i));
        }
        for (int64_t k = n_in; k < kp; k++) q[k] = 128;
    }
}

static inline __attribute__((always_inline)) void vnni_tile(const fm_q8_dense *qd, const uint8_t *Q,
                                                            const float *s, int64_t r0, int64_t rows,
                                                            int64_t jb, const int nv, const float *bias,
                                                            float *out) {
    const int64_t kp = qd->kp, groups = kp / 4, n_out = qd->n_out;
    const uint8_t *a[VNNI_MR];
    for (int i = 0; i < VNNI_MR; i++) a[i] = Q + (r0 + i < rows ? r0 + i : rows - 1) * kp;
    __m512i acc[VNNI_MR][2];
    for (int i = 0; i < VNNI_MR; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_si512();
    const int8_t *w0 = qd->w + jb * groups * 64, *w1 = w0 + groups * 64;
    for (int64_t g = 0; g < groups; g++) {
        const __m512i b0 = _mm512_load_si512((const void *)(w0 + g * 64));
        const __m512i b1 = nv > 1 ? _mm512_load_si512((const void *)(w1 + g * 64)) : b0;
        for (int i = 0; i < VNNI_MR; i++) {
            int32_t word;
            memcpy(&word, a[i] + 4 * g, 4);
            const __m512i av = _mm512_set1_epi32(word);
            acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], av, b0);
            if (nv > 1) acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], av, b1);
        }
    }
    for (int v = 0; v < nv; v++) {
        const int64_t j0 = (jb + v) * 16;
        const int64_t nc = n_out - j0 < 16 ? n_out - j0 : 16;
        const __mmask16 m = (__mmask16)((1u << nc) - 1u);
        const __m512i cs = _mm512_load_si512((const void *)(qd->colsum128 + j0));
        const __m512 ws = _mm512_load_ps(qd->scale + j0);
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + j0) : _mm512_setzero_ps();
        for (int i = 0; i < VNNI_MR; i++) {
            if (r0 + i >= rows) break;
            __m512 y = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][v], cs));
            y = _mm512_mul_ps(_mm512_mul_ps(y, _mm512_set1_ps(s[r0 + i])), ws);
            if (bias) y = _mm512_add_ps(y, bv);
            _mm512_mask_storeu_ps(out + (r0 + i) * n_out + j0, m, y);
        }
    }
}

static void vnni_gemm(const fm_q8_dense *qd, const uint8_t *Q, const float *s, int64_t rows, const float *bias,
                      float *out) {
    const int64_t nb = qd->np / 16;
    for (int64_t jb = 0; jb < nb; jb += 2) {
        for (int64_t r0 = 0; r0 < rows; r0 += VNNI_MR) {
            if (jb + 1 < nb) vnni_tile(qd, Q, s, r0, rows, jb, 2, bias, out);
            else vnni_tile(qd, Q, s, r0, rows, jb, 1, bias, out);
        }
    }
}

const fm_q8_kernel_table fm_q8_table_vnni = {"avx512vnni", 1, vnni_quantize, vnni_gemm};
#endif
