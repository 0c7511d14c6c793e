/* Row-major (C-order) general matrix multiply with run-time CPU dispatch.
 *
 *   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C[M,N]
 *
 * op(X) is X when trans == 0 and X^T when trans != 0.  Leading dimensions are
 * in elements and refer to the stored (untransposed) matrices, as in CBLAS with
 * CblasRowMajor.  When beta == 0, C is written without being read (NaNs in C
 * do not propagate).  No function here allocates on the hot path except the
 * packing buffers, which are thread-local and grow once.
 *
 * All SIMD variants share one signature; fm_gemm_* forward through a table
 * filled once from CPU detection (see fm_gemm_target_name()).
 */
#ifndef FASTMLP_GEMM_H
#define FASTMLP_GEMM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void fm_gemm_f32(int transa, int transb, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc);

void fm_gemm_f64(int transa, int transb, int64_t M, int64_t N, int64_t K,
                 double alpha, const double *A, int64_t lda,
                 const double *B, int64_t ldb,
                 double beta, double *C, int64_t ldc);

/* An epilogue: work done on every finished block of C (all of K summed, alpha
 * and beta applied) while the block is still in cache -- bias + activation in a
 * layer's forward, the activation derivative in its backward.  The kernels call
 * ep->apply(ep, c, ldc, m, n) once per block: c points at the block's first
 * element inside the C given to fm_gemm_ep_*, the block is m x n with row
 * stride ldc, and the blocks cover C exactly once.  Blocks are disjoint and
 * apply may run on several threads at once.  Implementations embed this struct
 * as their first member to carry their own data. */
typedef struct fm_epilogue fm_epilogue;
struct fm_epilogue {
    void (*apply)(const fm_epilogue *ep, void *c, int64_t ldc, int64_t m, int64_t n);
};

/* fm_gemm_* followed by the epilogue ep (NULL: none, as fm_gemm_*). */
void fm_gemm_ep_f32(int transa, int transb, int64_t M, int64_t N, int64_t K,
                    float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb,
                    float beta, float *C, int64_t ldc, const fm_epilogue *ep);

void fm_gemm_ep_f64(int transa, int transb, int64_t M, int64_t N, int64_t K,
                    double alpha, const double *A, int64_t lda,
                    const double *B, int64_t ldb,
                    double beta, double *C, int64_t ldc, const fm_epilogue *ep);

/* Name of the kernel family in use: "avx512", "avx2", "neon" or "generic". */
const char *fm_gemm_target_name(void);

/* Force a target by name (for tests); returns 0 on success, -1 when the name
 * is unknown or this CPU cannot run it.  "auto" restores detection. */
int fm_gemm_set_target(const char *name);

/* Threads used by kernels (OpenMP); 1 when built without OpenMP. */
int fm_get_num_threads(void);
void fm_set_num_threads(int n);
int fm_have_openmp(void);

/* The thread policy's counters since the process started, for diagnostics and
 * tests: out[i] for i < n, FM_STAT_* below (0 past FM_THREAD_STATS). */
#define FM_STAT_JOBS 0            /* calls split over threads */
#define FM_STAT_WORKER_PIECES 1   /* pieces of them run by worker threads */
#define FM_STAT_LATE 2            /* a worker made the caller wait: calls then ran alone a while */
#define FM_STAT_BUSY 3            /* the calling thread did not get its core: calls ran alone a while */
#define FM_STAT_SOLO_CALLS 4      /* calls that could have split but ran alone for those reasons */
#define FM_THREAD_STATS 5
void fm_thread_stats(int64_t *out, int n);

/* The contention guard and busy detector (on by default) make calls run on one
 * thread while other processes keep the cores busy.  Off (0): calls split over
 * every thread allowed, whatever the load -- for tests of the threaded paths. */
void fm_set_thread_guard(int on);

#ifdef __cplusplus
}
#endif
#endif
