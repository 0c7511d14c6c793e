/* Portable int8 Dense kernels: the fallback on every CPU and the reference
 * the SIMD targets must equal bit for bit.  Quantized rows are signed. */
#include <string.h>
#include "qgemm_kernels.h"

static void generic_quantize(const float *X, int64_t ldx, int64_t rows, int64_t n_in, int64_t kp,
                             uint8_t *Q, float *s) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x = X + r * ldx;
        int8_t *q = (int8_t *)(Q + r * kp);
        float amax = 0;
        int has_nan = 0;
        for (int64_t k = 0; k < n_in; k++) {
            const float a = fabsf(x[k]);
            if (a != a) has_nan = 1;
            else if (a > amax) amax = a;
        }
        float inv;
        if (!fm_q8_row_scale(amax, has_nan, &s[r], &inv)) {
            memset(q, 0, (size_t)kp);
            continue;
        }
        for (int64_t k = 0; k < n_in; k++) {
            float v = nearbyintf(x[k] * inv);
            v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
            q[k] = (int8_t)v;
        }
        for (int64_t k = n_in; k < kp; k++) q[k] = 0;
    }
}

static void generic_gemm(const fm_q8_dense *qd, const uint8_t *Q, const float *s, int64_t rows,
                         const float *bias, float *out) {
    const int64_t kp = qd->kp, n_out = qd->n_out, groups = kp / 4;
    for (int64_t jb = 0; jb < qd->np / 16; jb++) {
        const int8_t *wb = qd->w + jb * groups * 64;
        const int64_t j0 = jb * 16, nc = n_out - j0 < 16 ? n_out - j0 : 16;
        for (int64_t r = 0; r < rows; r++) {
            const int8_t *q = (const int8_t *)(Q + r * kp);
            int32_t acc[16] = {0};
            for (int64_t g = 0; g < groups; g++) {
                const int8_t *w = wb + g * 64;
                const int32_t a0 = q[4 * g], a1 = q[4 * g + 1], a2 = q[4 * g + 2], a3 = q[4 * g + 3];
                for (int c = 0; c < 16; c++)
                    acc[c] += a0 * w[4 * c] + a1 * w[4 * c + 1] + a2 * w[4 * c + 2] + a3 * w[4 * c + 3];
            }
            float *o = out + r * n_out + j0;
            for (int64_t c = 0; c < nc; c++) {
                const float v = ((float)acc[c] * s[r]) * qd->scale[j0 + c];
                o[c] = bias ? v + bias[j0 + c] : v;
            }
        }
    }
}

const fm_q8_kernel_table fm_q8_table_generic = {"generic", 0, generic_quantize, generic_gemm};
