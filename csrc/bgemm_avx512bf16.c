/* AVX-512 BF16 Dense kernels (vdpbf16ps: per float32 lane, two bfloat16
 * products added one after the other, odd element first; vcvtne2ps2bf16:
 * float32 to bfloat16, round to nearest even), chosen at run time when the CPU
 * has AVX-512 F/BW/VL and BF16.  Compiled for that target by the pragma below
 * only.
 *
 * Micro-tile: 12 rows x 32 columns (2 zmm), 24 accumulators; each input pair
 * of a row is one broadcast 32-bit word.  A row tail reads its last row again
 * and stores only the real rows, a column tail uses masked stores.  On
 * non-x86 builds this file is empty.
 */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")
#include <immintrin.h>
#include "bgemm_kernels.h"

#define BF_MR 12

static void bf16_round_rows(const float *X, int64_t ldx, int64_t rows, int64_t n_in, int64_t kp, uint16_t *B) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x = X + r * ldx;
        uint16_t *o = B + r * kp;
        int64_t k = 0;
        for (; k + 32 <= n_in; k += 32) {
            const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(x + k));
            _mm512_storeu_si512((void *)(o + k), (__m512i)h);
        }
        if (k < kp) {   /* masked tail: lanes past n_in load as 0.0f, which rounds to 0 */
            const int64_t n = n_in - k;
            const __mmask16 m0 = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
            const __mmask16 m1 = (__mmask16)(n >= 32 ? 0xffffu : (n > 16 ? (1u << (n - 16)) - 1u : 0u));
            const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + k + 16),
                                                   _mm512_maskz_loadu_ps(m0, x + k));
            const int64_t w = kp - k;   /* <= 32 values */
            _mm512_mask_storeu_epi16(o + k, (__mmask32)(w >= 32 ? 0xffffffffu : (1u << w) - 1u), (__m512i)h);
        }
    }
}

static inline __attribute__((always_inline)) void bf16_tile(const fm_bf16_dense *bd, const uint16_t *B,
                                                            int64_t r0, int64_t rows, int64_t jb, const int nv,
                                                            const float *bias, float *out) {
    const int64_t kp = bd->kp, pairs = kp / 2, n_out = bd->n_out;
    const uint16_t *a[BF_MR];
    for (int i = 0; i < BF_MR; i++) a[i] = B + (r0 + i < rows ? r0 + i : rows - 1) * kp;
    __m512 acc[BF_MR][2];
    for (int i = 0; i < BF_MR; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
    const uint16_t *w0 = bd->w + jb * pairs * 32, *w1 = w0 + pairs * 32;
    for (int64_t g = 0; g < pairs; g++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)(w0 + g * 32));
        const __m512bh b1 = nv > 1 ? (__m512bh)_mm512_load_si512((const void *)(w1 + g * 32)) : b0;
        for (int i = 0; i < BF_MR; i++) {
            int32_t word;
            memcpy(&word, a[i] + 2 * g, 4);
            const __m512bh av = (__m512bh)_mm512_set1_epi32(word);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
            if (nv > 1) acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
        }
    }
    for (int v = 0; v < nv; v++) {
        const int64_t j0 = (jb + v) * 16;
        const int64_t nc = n_out - j0 < 16 ? n_out - j0 : 16;
        const __mmask16 m = (__mmask16)((1u << nc) - 1u);
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + j0) : _mm512_setzero_ps();
        for (int i = 0; i < BF_MR; i++) {
            if (r0 + i >= rows) break;
            const __m512 y = bias ? _mm512_add_ps(acc[i][v], bv) : acc[i][v];
            _mm512_mask_storeu_ps(out + (r0 + i) * n_out + j0, m, y);
        }
    }
}

static void bf16_gemm(const fm_bf16_dense *bd, const uint16_t *B, int64_t rows, const float *bias, float *out) {
    const int64_t nb = bd->np / 16;
    for (int64_t jb = 0; jb < nb; jb += 2) {
        for (int64_t r0 = 0; r0 < rows; r0 += BF_MR) {
            if (jb + 1 < nb) bf16_tile(bd, B, r0, rows, jb, 2, bias, out);
            else bf16_tile(bd, B, r0, rows, jb, 1, bias, out);
        }
    }
}

const fm_bf16_kernel_table fm_bf16_table_avx512bf16 = {"avx512bf16", bf16_round_rows, bf16_gemm};
#endif
