/* Int8 Dense inference: int8 kernels (symmetric, one float32 scale per output
 * unit) times dynamically quantized int8 activations (symmetric, one scale per
 * row, computed at run time), accumulated exactly in int32.
 *
 * For each row r of X (n_in values) and output unit j:
 *
 *   amax_r  = max_k |X[r,k]|
 *   s_r     = amax_r / 127,   q_r[k] = clip(rint(X[r,k] * (127 / amax_r)), -127, 127)
 *   acc     = sum_k q_r[k] * W[k,j]                              (int32, exact)
 *   out[r,j] = ((float)acc * s_r) * w_scale[j] + bias[j]         (float32, in that order)
 *
 * A row whose amax is below FM_Q8_TINY quantizes to zeros (s_r = 0); a row with
 * a NaN or an infinity gets s_r = NaN, so its outputs are NaN.  Every step is
 * exact or one IEEE float32 operation, so every target (and the NumPy
 * reference in tests) gives bit-identical results, and a row's result does
 * not depend on the other rows of its batch.
 *
 * Targets, chosen at run time as the GEMM's are (fm_q8_target_name()):
 * "avx512vnni" (vpdpbusd), "avx2" (vpmaddubsw / vpmaddwd) and "generic"
 * (portable C).  The kernel is packed once, by fm_q8_dense_create, in a layout
 * every target reads.
 */
#ifndef FASTMLP_QGEMM_H
#define FASTMLP_QGEMM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FM_Q8_TINY 1e-30f
/* Inputs per unit up to which the int32 accumulation cannot overflow
 * (255 * 127 * 65536 < 2^31). */
#define FM_Q8_MAX_IN 65536

typedef struct fm_q8_dense fm_q8_dense;

/* Packs W (n_in x n_out, row-major, values in [-127, 127]) and its per-unit
 * scales.  NULL with *status FM_ERR_ARG (bad sizes or a value of -128) or
 * FM_ERR_NOMEM. */
fm_q8_dense *fm_q8_dense_create(const int8_t *W__io, const float *scale__o, int64_t n_in, int64_t n_out,
                                int *status);
/* Re-packs q with new values of the same shape (FM_OK; FM_ERR_ARG for a -128,
 * leaving q as it was).  Not while a forward with q runs. */
int fm_q8_dense_update(fm_q8_dense *q, const int8_t *W__io, const float *scale__o);
void fm_q8_dense_free(fm_q8_dense *q);
int64_t fm_q8_dense_n_in(const fm_q8_dense *q);
int64_t fm_q8_dense_n_out(const fm_q8_dense *q);

/* out (rows x n_out, row stride n_out) = the formula above for X (rows x n_in,
 * row stride ldx); bias may be NULL.  Runs on the calling thread; uses its
 * thread-local buffers.  Returns FM_OK or FM_ERR_NOMEM. */
int fm_q8_dense_forward(const fm_q8_dense *q, const float *X__bi, int64_t ldx, int64_t rows,
                        const float *bias__o, float *out__bo);

/* Grows the calling thread's buffer for a forward of `rows` rows (FM_OK or
 * FM_ERR_NOMEM); after it, fm_q8_dense_forward of up to `rows` rows cannot fail. */
int fm_q8_dense_reserve(const fm_q8_dense *q, int64_t rows);

/* The quantization step alone (for tests): Q (rows x n_in int8) and s (rows). */
void fm_q8_quantize_rows(const float *X__bi, int64_t ldx, int64_t rows, int64_t n_in, int8_t *Q__bi,
                         float *s__b);

/* "avx512vnni", "avx2" or "generic". */
const char *fm_q8_target_name(void);
/* Force a target (tests); 0 on success, -1 when unknown or not runnable here.
 * "auto" restores detection. */
int fm_q8_set_target(const char *name);

#ifdef __cplusplus
}
#endif
#endif
