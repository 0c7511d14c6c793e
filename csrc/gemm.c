/* Placeholder-free simple GEMM: correct i-k-j loops; the dispatching, packed
 * implementation replaces the body of this file. */
#include "gemm.h"
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int g_threads = 0;

int fm_have_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fm_get_num_threads(void) {
#ifdef _OPENMP
    return g_threads > 0 ? g_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

void fm_set_num_threads(int n) { g_threads = n > 0 ? n : 0; }

const char *fm_gemm_target_name(void) { return "generic"; }
int fm_gemm_set_target(const char *name) {
    return (strcmp(name, "generic") == 0 || strcmp(name, "auto") == 0) ? 0 : -1;
}

#define DEFINE_GEMM(NAME, T)                                                        \
void NAME(int ta, int tb, int64_t M, int64_t N, int64_t K, T alpha,                 \
          const T *A, int64_t lda, const T *B, int64_t ldb, T beta, T *C,           \
          int64_t ldc) {                                                            \
    for (int64_t i = 0; i < M; i++) {                                               \
        T *c = C + i * ldc;                                                         \
        if (beta == (T)0) memset(c, 0, (size_t)N * sizeof(T));                      \
        else if (beta != (T)1) for (int64_t j = 0; j < N; j++) c[j] *= beta;        \
        for (int64_t k = 0; k < K; k++) {                                           \
            T a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);                   \
            if (tb) { for (int64_t j = 0; j < N; j++) c[j] += a * B[j * ldb + k]; } \
            else { const T *b = B + k * ldb; for (int64_t j = 0; j < N; j++) c[j] += a * b[j]; } \
        }                                                                           \
    }                                                                               \
}
DEFINE_GEMM(fm_gemm_f32, float)
DEFINE_GEMM(fm_gemm_f64, double)
