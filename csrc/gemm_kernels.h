/* Internal interface between the GEMM driver (gemm.c) and the per-target
 * kernel files (gemm_avx512.c, gemm_avx2.c, gemm_generic.c).
 *
 * Every target provides, for float32 and float64, the same two entry points
 * (instantiated from gemm_template.h):
 *
 *   packed: BLIS-style cache-blocked GEMM on one thread (packs A into MR-row
 *           panels and B into NR-column panels, then runs the MR x NR
 *           register-blocked micro-kernel);
 *   small:  direct register-blocked loops that read A and B in place, for
 *           shapes where packing costs more than it saves (needs op(B) = B).
 *
 * Both compute C = alpha*op(A)@op(B) + beta*C for a sub-problem with K > 0
 * and alpha != 0 (the driver handles the trivial cases), then, when ep is not
 * NULL, run the epilogue on every block of C once its last K block is done.  They are filled into
 * one table per target; gemm.c picks the table once from CPU detection.
 */
#ifndef FASTMLP_GEMM_KERNELS_H
#define FASTMLP_GEMM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"

typedef void (*fm_gemm_f32_fn)(int ta, int tb, int64_t M, int64_t N, int64_t K,
                               float alpha, const float *A, int64_t lda,
                               const float *B, int64_t ldb,
                               float beta, float *C, int64_t ldc, const fm_epilogue *ep);
typedef void (*fm_gemm_f64_fn)(int ta, int tb, int64_t M, int64_t N, int64_t K,
                               double alpha, const double *A, int64_t lda,
                               const double *B, int64_t ldb,
                               double beta, double *C, int64_t ldc, const fm_epilogue *ep);

typedef struct {
    const char *name;
    fm_gemm_f32_fn packed_f32, small_f32;
    fm_gemm_f64_fn packed_f64, small_f64;
    /* The driver takes the small path (when op(B) = B) for M <= small_max_m,
     * or when B (K*N elements) takes at most small_max_b_bytes: measured per
     * target, it is the size up to which re-reading B in place from cache
     * beats packing it. */
    int64_t small_max_m;
    size_t small_max_b_bytes;
} fm_gemm_kernel_table;

/* Tables, one per target; the SIMD ones exist only on x86. */
extern const fm_gemm_kernel_table fm_gemm_table_generic;
#if defined(__x86_64__) || defined(__i386__)
extern const fm_gemm_kernel_table fm_gemm_table_avx2;
extern const fm_gemm_kernel_table fm_gemm_table_avx512;
#endif

/* Thread-local, 64-byte aligned packing buffer `which` (0: A, 1: B) of at
 * least `bytes` bytes; grows when needed, freed when the thread exits.
 * Returns NULL when memory is exhausted. (Defined in gemm.c.) */
/* A thread-local, 64-byte aligned buffer that grows and is reused: which = 0, 1
 * for GEMM packing, 2 for the engine's inference scratch. */
void *fm_gemm_buffer(int which, size_t bytes);

/* 64-byte-aligned memory that outlives a call (packed weights of the int8 and
 * bf16 kernels); fm_aligned64(0) gives a valid block; free with fm_aligned64_free. */
void *fm_aligned64(size_t bytes);
void fm_aligned64_free(void *p);

/* Threads worth using for `work` multiply-adds: 1 below the size where a
 * parallel region pays off, or inside one; at most fm_get_num_threads(). */
int fm_threads_for_work(double work);

/* `want`, or 1 inside a parallel region or while the contention guard of
 * fm_parallel_pieces() holds (other processes busy on this machine's cores). */
int fm_threads_available(int want);

/* fn(ctx, piece) for every piece in [0, n_pieces) on up to nt threads, pieces
 * handed out dynamically.  The master notes a long wait for a late worker,
 * and fm_threads_available() then answers 1 for a while. */
void fm_parallel_pieces(int nt, int n_pieces, void (*fn)(void *ctx, int piece), void *ctx);

/* Thread splits must start at multiples of these (in rows / columns) so that
 * every target groups rows and columns into tiles exactly as a one-thread run
 * does: results then do not depend on the thread count.  Every MR and every
 * small-path row block divides FM_SPLIT_ALIGN_M; every NR and small-path
 * column block divides FM_SPLIT_ALIGN_N. */
#define FM_SPLIT_ALIGN_M 24
#define FM_SPLIT_ALIGN_N 64

#endif
