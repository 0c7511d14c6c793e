/* Internal interface between the bfloat16 Dense driver (bgemm.c) and its
 * per-target kernel files (bgemm_avx512bf16.c, bgemm_avx2.c, bgemm_generic.c).
 *
 * Packed kernel layout, read by every target: columns in blocks of 16, inputs
 * in pairs; block jb, pair g holds 32 bfloat16 values (64 bytes), W[2g + t][16 jb + c]
 * at index 2c + t (zeros past n_in and n_out) -- one zmm of the pairs vdpbf16ps
 * multiplies.  A rounded input row is kp bfloat16 values (zeros past n_in), so
 * pair g is the 32-bit word g of the row.
 */
#ifndef FASTMLP_BGEMM_KERNELS_H
#define FASTMLP_BGEMM_KERNELS_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bgemm.h"

struct fm_bf16_dense {
    int64_t n_in, n_out;
    int64_t kp, np;           /* n_in rounded up to 2, n_out to 16 */
    uint16_t *w;              /* packed, (np / 16) * (kp / 2) * 32 values, 64-byte aligned */
};

typedef struct {
    const char *name;
    /* B (rows x kp bfloat16) from X (rows x n_in float32, stride ldx) */
    void (*round_rows)(const float *X, int64_t ldx, int64_t rows, int64_t n_in, int64_t kp, uint16_t *B);
    /* out (rows x n_out) from B (rows x kp) */
    void (*gemm)(const fm_bf16_dense *b, const uint16_t *B, int64_t rows, const float *bias, float *out);
} fm_bf16_kernel_table;

extern const fm_bf16_kernel_table fm_bf16_table_generic;
#if defined(__x86_64__) || defined(__i386__)
extern const fm_bf16_kernel_table fm_bf16_table_avx512bf16;
extern const fm_bf16_kernel_table fm_bf16_table_avx2;
#endif

/* float32 -> bfloat16, as vcvtne2ps2bf16: round to nearest even, subnormals to
 * a zero of their sign, NaNs quiet. */
static inline uint16_t fm_bf16_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float fm_bf16_to_float(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
