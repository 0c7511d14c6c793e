/* AVX2 + FMA bfloat16 Dense kernels for CPUs without AVX-512 BF16: the same
 * results as vdpbf16ps, bit for bit.  Each bfloat16 pair word is widened to
 * two float32 values (the high half masked, the low half shifted up), whose
 * products are exact; vfmadd adds them in vdpbf16ps's order (odd element
 * first) with one rounding each, and MXCSR's flush-to-zero (set for the sums
 * only, restored before the bias is added) flushes results below FLT_MIN to
 * a zero of their sign as vdpbf16ps does (checked against the instruction).
 * Compiled for that target by the pragma below only.
 *
 * Micro-tile: 4 rows x 16 columns (two ymm of sums per row).  A row tail
 * reads its last row again and stores only the real rows.  On non-x86 builds
 * this file is empty.
 */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include "bgemm_kernels.h"

#define BF2_MR 4
#define FM_MXCSR_FTZ_DAZ 0x8040u

static void avx2_round_rows(const float *X, int64_t ldx, int64_t rows, int64_t n_in, int64_t kp, uint16_t *B) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x = X + r * ldx;
        uint16_t *o = B + r * kp;
        for (int64_t k = 0; k < n_in; k++) o[k] = fm_bf16_from_float(x[k]);
        for (int64_t k = n_in; k < kp; k++) o[k] = 0;
    }
}

/* Keeps the compiler from moving the sums across an MXCSR write. */
#define FM_PIN(v) __asm__ volatile("" : "+x"(v))

static void avx2_tile(const fm_bf16_dense *bd, const uint16_t *B, int64_t r0, int64_t rows, int64_t jb,
                      const float *bias, float *out) {
    const int64_t kp = bd->kp, pairs = kp / 2, n_out = bd->n_out;
    const uint16_t *a[BF2_MR];
    for (int i = 0; i < BF2_MR; i++) a[i] = B + (r0 + i < rows ? r0 + i : rows - 1) * kp;
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    const uint16_t *wb = bd->w + jb * pairs * 32;
    __m256 acc[BF2_MR][2];
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | FM_MXCSR_FTZ_DAZ);
    for (int i = 0; i < BF2_MR; i++) {
        acc[i][0] = _mm256_setzero_ps();
        acc[i][1] = _mm256_setzero_ps();
        FM_PIN(acc[i][0]);
        FM_PIN(acc[i][1]);
    }
    for (int64_t g = 0; g < pairs; g++) {
        const __m256i v0 = _mm256_load_si256((const __m256i *)(wb + g * 32));
        const __m256i v1 = _mm256_load_si256((const __m256i *)(wb + g * 32 + 16));
        const __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16));
        const __m256 o0 = _mm256_castsi256_ps(_mm256_and_si256(v0, hi));
        const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16));
        const __m256 o1 = _mm256_castsi256_ps(_mm256_and_si256(v1, hi));
        for (int i = 0; i < BF2_MR; i++) {
            int32_t word;
            memcpy(&word, a[i] + 2 * g, 4);
            const __m256i av = _mm256_set1_epi32(word);
            const __m256 ae = _mm256_castsi256_ps(_mm256_slli_epi32(av, 16));
            const __m256 ao = _mm256_castsi256_ps(_mm256_and_si256(av, hi));
            acc[i][0] = _mm256_fmadd_ps(ae, e0, _mm256_fmadd_ps(ao, o0, acc[i][0]));
            acc[i][1] = _mm256_fmadd_ps(ae, e1, _mm256_fmadd_ps(ao, o1, acc[i][1]));
        }
    }
    for (int i = 0; i < BF2_MR; i++) {
        FM_PIN(acc[i][0]);
        FM_PIN(acc[i][1]);
    }
    _mm_setcsr(csr);
    for (int i = 0; i < BF2_MR; i++) {
        FM_PIN(acc[i][0]);
        FM_PIN(acc[i][1]);
    }
    const int64_t j0 = jb * 16, nc = n_out - j0 < 16 ? n_out - j0 : 16;
    for (int i = 0; i < BF2_MR && r0 + i < rows; i++) {
        float y[16];
        _mm256_storeu_ps(y, acc[i][0]);
        _mm256_storeu_ps(y + 8, acc[i][1]);
        float *o = out + (r0 + i) * n_out + j0;
        if (bias) {
            if (nc == 16) {
                _mm256_storeu_ps(o, _mm256_add_ps(acc[i][0], _mm256_loadu_ps(bias + j0)));
                _mm256_storeu_ps(o + 8, _mm256_add_ps(acc[i][1], _mm256_loadu_ps(bias + j0 + 8)));
            } else {
                for (int64_t c = 0; c < nc; c++) o[c] = y[c] + bias[j0 + c];
            }
        } else {
            memcpy(o, y, (size_t)nc * sizeof(float));
        }
    }
}

static void avx2_gemm(const fm_bf16_dense *bd, const uint16_t *B, int64_t rows, const float *bias, float *out) {
    for (int64_t jb = 0; jb < bd->np / 16; jb++)
        for (int64_t r0 = 0; r0 < rows; r0 += BF2_MR) avx2_tile(bd, B, r0, rows, jb, bias, out);
}

const fm_bf16_kernel_table fm_bf16_table_avx2 = {"avx2", avx2_round_rows, avx2_gemm};
#endif
