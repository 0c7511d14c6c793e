/* bfloat16 Dense inference (Keras's "mixed_bfloat16" policy): float32 inputs
 * and float32 master kernels are rounded to bfloat16, products are summed in
 * float32, and the epilogue (bias, then the activation, outside this file)
 * runs in float32.
 *
 * Rounding to bfloat16 (fm_bf16_from_float) is round-to-nearest-even of the
 * float32's top 16 bits, a subnormal becomes a zero of its sign and a NaN
 * stays a (quiet) NaN -- what vcvtne2ps2bf16 computes.  For each row r and
 * output unit j, with a = bf16(X[r, :]) and w = bf16(W[:, j]) (zero past n_in):
 *
 *   acc = 0
 *   for g in 0 .. ceil(n_in / 2) - 1:
 *       acc = ftz(fmaf(a[2g + 1], w[2g + 1], acc))
 *       acc = ftz(fmaf(a[2g],     w[2g],     acc))
 *   out[r, j] = acc + bias[j]
 *
 * where ftz(v) is a zero of v's sign when |v| < FLT_MIN, else v: exactly what
 * one vdpbf16ps lane does per input pair (odd element first, each product
 * exact, one rounding per add, denormal results flushed; checked against the
 * instruction).  Every target follows this order, so every target (and the
 * NumPy reference in tests) gives bit-identical results, and a row's result
 * does not depend on the other rows of its batch.
 *
 * Targets, chosen at run time as the GEMM's are (fm_bf16_target_name()):
 * "avx512bf16" (vdpbf16ps, vcvtne2ps2bf16), "avx2" (FMA on the bfloat16
 * values widened to float32, MXCSR flush-to-zero) and "generic" (portable C).  The
 * kernel is packed once by fm_bf16_dense_create (and again by
 * fm_bf16_dense_update when the float32 master changes), in a layout every
 * target reads.
 */
#ifndef FASTMLP_BGEMM_H
#define FASTMLP_BGEMM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fm_bf16_dense fm_bf16_dense;

/* Rounds W (n_in x n_out float32, row-major) to bfloat16 and packs it.  NULL
 * with *status FM_ERR_ARG (bad sizes) or FM_ERR_NOMEM. */
fm_bf16_dense *fm_bf16_dense_create(const float *W__io, int64_t n_in, int64_t n_out, int *status);
/* Re-packs b from new float32 values of the same shape (FM_OK).  Not while a
 * forward with b runs. */
int fm_bf16_dense_update(fm_bf16_dense *b, const float *W__io);
void fm_bf16_dense_free(fm_bf16_dense *b);
int64_t fm_bf16_dense_n_in(const fm_bf16_dense *b);
int64_t fm_bf16_dense_n_out(const fm_bf16_dense *b);

/* out (rows x n_out, row stride n_out) = the formula above for X (rows x n_in,
 * row stride ldx); bias may be NULL.  Runs on the calling thread; uses its
 * thread-local buffers.  Returns FM_OK or FM_ERR_NOMEM. */
int fm_bf16_dense_forward(const fm_bf16_dense *b, const float *X__bi, int64_t ldx, int64_t rows,
                          const float *bias__o, float *out__bo);

/* Grows the calling thread's buffer for a forward of `rows` rows (FM_OK or
 * FM_ERR_NOMEM); after it, fm_bf16_dense_forward of up to `rows` rows cannot fail. */
int fm_bf16_dense_reserve(const fm_bf16_dense *b, int64_t rows);

/* The rounding alone, as the current target computes it (for tests): the
 * bfloat16 bit patterns of X (rows x n_in) into B (rows x n_in). */
void fm_bf16_round_rows(const float *X__bi, int64_t ldx, int64_t rows, int64_t n_in, uint16_t *B__bi);

/* "avx512bf16", "avx2" or "generic". */
const char *fm_bf16_target_name(void);
/* Force a target (tests); 0 on success, -1 when unknown or not runnable here.
 * "auto" restores detection. */
int fm_bf16_set_target(const char *name);

#ifdef __cplusplus
}
#endif
#endif
