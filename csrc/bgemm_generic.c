/* Portable bfloat16 Dense kernels: the fallback on every CPU and the
 * reference the SIMD target must equal bit for bit (bgemm.h gives the
 * formula).  fmaf is exact here too: a product of two bfloat16 values has at
 * most 16 significant bits. */
#include "bgemm_kernels.h"

static void generic_round_rows(const float *X, int64_t ldx, int64_t rows, int64_t n_in, int64_t kp,
                               uint16_t *B) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x = X + r * ldx;
        uint16_t *o = B + r * kp;
        for (int64_t k = 0; k < n_in; k++) o[k] = fm_bf16_from_float(x[k]);
        for (int64_t k = n_in; k < kp; k++) o[k] = 0;
    }
}

/* vdpbf16ps's output flush: a result below FLT_MIN in magnitude becomes a zero of its sign. */
static inline float ftz(float v) { return fabsf(v) < FLT_MIN ? copysignf(0.0f, v) : v; }

static void generic_gemm(const fm_bf16_dense *bd, const uint16_t *B, int64_t rows, const float *bias,
                         float *out) {
    const int64_t kp = bd->kp, n_out = bd->n_out, pairs = kp / 2;
    for (int64_t jb = 0; jb < bd->np / 16; jb++) {
        const uint16_t *wb = bd->w + jb * pairs * 32;
        const int64_t j0 = jb * 16, nc = n_out - j0 < 16 ? n_out - j0 : 16;
        for (int64_t r = 0; r < rows; r++) {
            const uint16_t *a = B + r * kp;
            float acc[16] = {0};
            for (int64_t g = 0; g < pairs; g++) {
                const uint16_t *w = wb + g * 32;
                const float a0 = fm_bf16_to_float(a[2 * g]), a1 = fm_bf16_to_float(a[2 * g + 1]);
                for (int c = 0; c < 16; c++) {
                    float v = ftz(fmaf(a1, fm_bf16_to_float(w[2 * c + 1]), acc[c]));
                    acc[c] = ftz(fmaf(a0, fm_bf16_to_float(w[2 * c]), v));
                }
            }
            float *o = out + r * n_out + j0;
            for (int64_t c = 0; c < nc; c++) o[c] = bias ? acc[c] + bias[j0 + c] : acc[c];
        }
    }
}

const fm_bf16_kernel_table fm_bf16_table_generic = {"generic", generic_round_rows, generic_gemm};
