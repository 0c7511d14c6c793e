/* Internal interface between the int8 driver (qgemm.c) and its per-target
 * kernel files (qgemm_vnni.c, qgemm_avx2.c, qgemm_generic.c).
 *
 * Packed kernel layout, read by every target: columns in blocks of 16, inputs
 * in groups of 4; block jb, group g holds 64 bytes, W[4g + t][16 jb + c] at
 * byte 4c + t (zeros past n_in and n_out).  A 16-column block is one zmm, or
 * two ymm, of four-byte groups -- what vpdpbusd and vpmaddubsw multiply.
 */
#ifndef FASTMLP_QGEMM_KERNELS_H
#define FASTMLP_QGEMM_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "qgemm.h"

struct fm_q8_dense {
    int64_t n_in, n_out;
    int64_t kp, np;           /* n_in rounded up to 4, n_out to 16 */
    int8_t *w;                /* packed, (np / 16) * (kp / 4) * 64 bytes, 64-byte aligned */
    int32_t *colsum128;       /* np: 128 * sum_k W[k, j] (what the unsigned offset adds) */
    float *scale;             /* np: per-unit scales (0 past n_out) */
};

/* A target's quantized rows: kp bytes per row; `offset` targets store q + 128
 * (unsigned, as vpdpbusd reads them), the others q (signed); padding encodes
 * q = 0. */
typedef struct {
    const char *name;
    int offset;
    void (*quantize)(const float *X, int64_t ldx, int64_t rows, int64_t n_in, int64_t kp, uint8_t *Q,
                     float *s);
    /* out (rows x n_out) from Q (rows x kp) and s (rows) */
    void (*gemm)(const fm_q8_dense *q, const uint8_t *Q, const float *s, int64_t rows, const float *bias,
                 float *out);
} fm_q8_kernel_table;

extern const fm_q8_kernel_table fm_q8_table_generic;
#if defined(__x86_64__) || defined(__i386__)
extern const fm_q8_kernel_table fm_q8_table_avx2;
extern const fm_q8_kernel_table fm_q8_table_vnni;
#endif

/* A row's scale and inverse from its largest magnitude `amax` (NaNs ignored)
 * and whether it holds a NaN: returns 0 (quantize to zeros, *s = 0 or NaN) or
 * 1 (quantize with *inv).  Shared by every target so they agree bit for bit. */
static inline int fm_q8_row_scale(float amax, int has_nan, float *s, float *inv) {
    if (has_nan || isinf(amax)) { *s = NAN; *inv = 0; return 0; }
    if (!(amax >= FM_Q8_TINY)) { *s = 0; *inv = 0; return 0; }
    *s = amax / 127.0f;
    *inv = 127.0f / amax;
    return 1;
}

#endif
