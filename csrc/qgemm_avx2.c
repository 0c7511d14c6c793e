/* AVX2 int8 Dense kernels, chosen at run time on CPUs with AVX2 but no
 * AVX-512 VNNI.  Compiled for that target by the pragma below only.
 *
 * vpmaddubsw multiplies unsigned by signed bytes and adds pairs into int16
 * with saturation; with |q| (<= 127) as the unsigned operand and the weight
 * carrying q's sign (vpsignb; weights are in [-127, 127]) a pair is at most
 * 2 * 127 * 127 = 32258, so nothing saturates, and vpmaddwd by ones then adds
 * the pairs into int32 -- exact.
 *
 * Micro-tile: 4 rows x 16 columns (2 ymm), 8 accumulators.  On non-x86 builds
 * this file is empty.
 */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <string.h>
#include "qgemm_kernels.h"

#define AVX2_MR 4

static inline __m256 avx2_loadn(const float *p, int64_t n) {
    if (n >= 8) return _mm256_loadu_ps(p);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(p, m);
}

static void avx2_quantize(const float *X, int64_t ldx, int64_t rows, int64_t n_in, int64_t kp, uint8_t *Q,
                          float *s) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    for (int64_t r = 0; r < rows; r++) {
        const float *x = X + r * ldx;
        uint8_t *q = Q + r * kp;
        __m256 amax = _mm256_setzero_ps();
        int nan = 0;
        for (int64_t k = 0; k < n_in; k += 8) {
            const __m256 v = avx2_loadn(x + k, n_in - k);
            nan |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            amax = _mm256_max_ps(_mm256_and_ps(v, absmask), amax);   /* a NaN lane keeps amax */
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        float inv;
        if (!fm_q8_row_scale(_mm_cvtss_f32(m4), nan != 0, &s[r], &inv)) {
            memset(q, 0, (size_t)kp);
            continue;
        }
        const __m256 vinv = _mm256_set1_ps(inv);
        for (int64_t k = 0; k < n_in; k += 8) {
            const int64_t n = n_in - k < 8 ? n_in - k : 8;
            __m256i i = _mm256_cvtps_epi32(_mm256_mul_ps(avx2_loadn(x + k, n), vinv));
            i = _mm256_min_epi32(_mm256_max_epi32(i, lo), hi);
            const __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
            const __m128i p8 = _mm_packs_epi16(p16, p16);
            if (n == 8) _mm_storel_epi64((__m128i *)(q + k), p8);
            else {
                uint8_t tmp[16];
                _mm_storeu_si128((__m128i *)tmp, p8);
                memcpy(q + k, tmp, (size_t)n);
            }
        }
        for (int64_t k = n_in; k < kp; k++) q[k] = 0;
    }
}

static void avx2_tile(const fm_q8_dense *qd, const uint8_t *Q, const float *s, int64_t r0, int64_t rows,
                      int64_t jb, const float *bias, float *out) {
    const int64_t kp = qd->kp, groups = kp / 4, n_out = qd->n_out;
    const uint8_t *a[AVX2_MR];
    for (int i = 0; i < AVX2_MR; i++) a[i] = Q + (r0 + i < rows ? r0 + i : rows - 1) * kp;
    __m256i acc[AVX2_MR][2];
    for (int i = 0; i < AVX2_MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *w = qd->w + jb * groups * 64;
    for (int64_t g = 0; g < groups; g++) {
        const __m256i b0 = _mm256_load_si256((const __m256i *)(w + g * 64));
        const __m256i b1 = _mm256_load_si256((const __m256i *)(w + g * 64 + 32));
        for (int i = 0; i < AVX2_MR; i++) {
            int32_t word;
            memcpy(&word, a[i] + 4 * g, 4);
            const __m256i av = _mm256_set1_epi32(word);
            const __m256i ua = _mm256_abs_epi8(av);
            const __m256i p0 = _mm256_maddubs_epi16(ua, _mm256_sign_epi8(b0, av));
            const __m256i p1 = _mm256_maddubs_epi16(ua, _mm256_sign_epi8(b1, av));
            acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(p0, ones));
            acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(p1, ones));
        }
    }
    const int64_t j0 = jb * 16;
    for (int v = 0; v < 2; v++) {
        const int64_t jv = j0 + 8 * v;
        if (jv >= n_out) break;
        const int64_t nc = n_out - jv < 8 ? n_out - jv : 8;
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nc), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __m256 ws = _mm256_load_ps(qd->scale + jv);
        const __m256 bv = bias ? _mm256_maskload_ps(bias + jv, m) : _mm256_setzero_ps();
        for (int i = 0; i < AVX2_MR; i++) {
            if (r0 + i >= rows) break;
            __m256 y = _mm256_cvtepi32_ps(acc[i][v]);
            y = _mm256_mul_ps(_mm256_mul_ps(y, _mm256_set1_ps(s[r0 + i])), ws);
            if (bias) y = _mm256_add_ps(y, bv);
            _mm256_maskstore_ps(out + (r0 + i) * n_out + jv, m, y);
        }
    }
}

static void avx2_gemm(const fm_q8_dense *qd, const uint8_t *Q, const float *s, int64_t rows, const float *bias,
                      float *out) {
    for (int64_t jb = 0; jb < qd->np / 16; jb++)
        for (int64_t r0 = 0; r0 < rows; r0 += AVX2_MR) avx2_tile(qd, Q, s, r0, rows, jb, bias, out);
}

const fm_q8_kernel_table fm_q8_table_avx2 = {"avx2", 0, avx2_quantize, avx2_gemm};
#endif
