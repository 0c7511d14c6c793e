/* GEMM driver: the public fm_gemm_* entry points of gemm.h.
 *
 *  - Picks the kernel table once from run-time CPU detection ("avx512" >
 *    "avx2" > "generic"); fm_gemm_set_target() can force one for tests.
 *  - Handles the trivial cases (empty C, K == 0, alpha == 0).
 *  - Chooses between the packed (cache-blocked) path and the small path that
 *    reads A and B in place (see fm_use_small()).
 *  - Splits large problems over OpenMP threads along M or N only, each thread
 *    owning a disjoint block of C, so every C element is computed by one
 *    thread in a fixed order: results are deterministic, and because splits
 *    fall on tile boundaries (FM_SPLIT_ALIGN_*) they are the same for any
 *    thread count.
 *  - Passes the epilogue (gemm.h) to the kernels, which run it on each block
 *    of C as soon as the block is final.
 *  - Owns the thread-local packing buffers (fm_gemm_buffer()).
 */
#include "gemm.h"
#include "gemm_kernels.h"
#include "cpu.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifndef _WIN32
#include <pthread.h>
#endif

/* Work (M*N*K multiply-adds) from which a call is split over threads.
 * A parallel region costs a few microseconds on an idle 2-core machine, but a
 * worker that the OS has descheduled (any other load on the machine) stalls
 * the call for a whole time slice.  Whole-network training calls many GEMMs of
 * 10-50 us each, so threads start only where one call is ~0.1 ms of work:
 * wide layers and large batches, where they pay off whatever the load. */
#define FM_GEMM_PAR_MIN_WORK (1 << 21)
/* Each thread gets at least this much work. */
#define FM_GEMM_PAR_WORK_PER_THREAD (1 << 20)
/* Pieces per thread on the small path (see the split in FM_DEFINE_GEMM). */
#define FM_GEMM_SMALL_PIECES 4
/* Contention guard (fm_parallel_pieces): when a parallel region takes more
 * than FM_LATE_NS longer than the master alone would have (a worker late to
 * start or to finish), calls run on one thread for FM_SOLO_FACTOR times the
 * loss (at most FM_SOLO_MAX_NS): a rare hiccup costs little, a core held by
 * another process (waits of a scheduler slice, milliseconds) keeps calls on
 * one thread for a good while, and a worker that is merely slowed (sharing its
 * core with another library's spinning threads) still helps and is kept. */
#define FM_LATE_NS 100000
#define FM_SOLO_FACTOR 16
#define FM_SOLO_MAX_NS 100000000

/* ------------------------------------------------------------------------ */
/* Threads */

static int g_threads = 0; /* 0: OpenMP default (honours OMP_NUM_THREADS) */

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

/* ------------------------------------------------------------------------ */
/* Target selection */

static const fm_gemm_kernel_table *fm_detect_table(void) {
#if defined(__x86_64__) || defined(__i386__)
    if (fm_cpu_has_avx512()) return &fm_gemm_table_avx512;
    if (fm_cpu_has_avx2_fma()) return &fm_gemm_table_avx2;
#endif
    return &fm_gemm_table_generic;
}

static const fm_gemm_kernel_table *g_table = NULL;

static const fm_gemm_kernel_table *fm_table(void) {
    const fm_gemm_kernel_table *t = __atomic_load_n(&g_table, __ATOMIC_ACQUIRE);
    if (!t) { /* benign race: every thread computes the same answer */
        t = fm_detect_table();
        __atomic_store_n(&g_table, t, __ATOMIC_RELEASE);
    }
    return t;
}

const char *fm_gemm_target_name(void) { return fm_table()->name; }

int fm_gemm_set_target(const char *name) {
    const fm_gemm_kernel_table *t = NULL;
    if (!name) return -1;
    if (strcmp(name, "auto") == 0) t = fm_detect_table();
    else if (strcmp(name, "generic") == 0) t = &fm_gemm_table_generic;
#if defined(__x86_64__) || defined(__i386__)
    else if (strcmp(name, "avx2") == 0) t = fm_cpu_has_avx2_fma() ? &fm_gemm_table_avx2 : NULL;
    else if (strcmp(name, "avx512") == 0) t = fm_cpu_has_avx512() ? &fm_gemm_table_avx512 : NULL;
#endif
    if (!t) return -1;
    __atomic_store_n(&g_table, t, __ATOMIC_RELEASE);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Thread-local packing buffers, freed by a pthread key destructor when the
 * thread exits (the main thread's live until process exit). */

typedef struct {
    void *ptr[3];   /* 0, 1: GEMM packing; 2: the engine's inference scratch */
    size_t cap[3];
} fm_workspace;

static _Thread_local fm_workspace tl_ws;

#ifndef _WIN32
static pthread_key_t g_ws_key;
static pthread_once_t g_ws_once = PTHREAD_ONCE_INIT;
static void fm_ws_free(void *p) {
    fm_workspace *ws = (fm_workspace *)p;
    for (int i = 0; i < 3; i++) {
        free(ws->ptr[i]);
        ws->ptr[i] = NULL;
        ws->cap[i] = 0;
    }
}
static void fm_ws_key_init(void) { pthread_key_create(&g_ws_key, fm_ws_free); }
#endif

void *fm_gemm_buffer(int which, size_t bytes) {
    fm_workspace *ws = &tl_ws;
    if (ws->cap[which] >= bytes && ws->ptr[which]) return ws->ptr[which];
    size_t cap = (bytes + 4095) & ~(size_t)4095; /* multiple of the alignment */
    if (cap < 4096) cap = 4096;
    void *p = NULL;
#ifdef _WIN32
    p = _aligned_malloc(cap, 64);
    if (!p) return NULL;
    _aligned_free(ws->ptr[which]);
#else
    if (posix_memalign(&p, 64, cap) != 0) return NULL;
    free(ws->ptr[which]);
    pthread_once(&g_ws_once, fm_ws_key_init);
    pthread_setspecific(g_ws_key, ws);
#endif
    ws->ptr[which] = p;
    ws->cap[which] = cap;
    return p;
}

/* ------------------------------------------------------------------------ */
/* Path choice */

/* Small path when packing would cost about as much as it saves: few rows of C
 * (every packed B element would be used only M times), or a B small enough to
 * stay in cache while it is re-read in place (limits per target, see
 * gemm_kernels.h).  It needs op(B) = B. */
static int fm_use_small(const fm_gemm_kernel_table *tab, int tb, int64_t M, int64_t N,
                        int64_t K, size_t elem) {
    if (tb) return 0;
    if (M <= tab->small_max_m) return 1;
    return (size_t)(N * K) * elem <= tab->small_max_b_bytes;
}

/* ------------------------------------------------------------------------ */
/* Parallel regions and the contention guard.
 *
 * On a machine shared with other busy processes a worker thread may wait for
 * a core for a whole scheduler time slice (milliseconds), and a parallel
 * region, which ends only when every thread has arrived, waits with it: a
 * 20-microsecond GEMM then takes milliseconds.  Pieces are handed out
 * dynamically, so the master does the work of a worker that has not started,
 * and it measures how long it then waits for that worker at the end of the
 * region.  After a long wait, calls run on one thread for a while (results do
 * not depend on the thread count) and then try threads again. */

static int64_t g_solo_until_ns = 0;

static int64_t fm_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int fm_threads_available(int want) {
    if (want <= 1) return 1;
#ifdef _OPENMP
    if (omp_in_parallel()) return 1;
#endif
    if (fm_now_ns() < __atomic_load_n(&g_solo_until_ns, __ATOMIC_RELAXED)) return 1;
    return want;
}

void fm_parallel_pieces(int nt, int n_pieces, void (*fn)(void *ctx, int piece), void *ctx) {
#ifdef _OPENMP
    if (nt > 1 && n_pieces > 1) {
        const int64_t start = fm_now_ns();
        int64_t entered = start, master_done = start;
        int mine = 0;   /* pieces the master did */
#pragma omp parallel num_threads(nt)
        {
            const int master = omp_get_thread_num() == 0;
            if (master) entered = fm_now_ns();
#pragma omp for schedule(dynamic, 1) nowait
            for (int p = 0; p < n_pieces; p++) {
                fn(ctx, p);
                if (master) mine++;
            }
            if (master) master_done = fm_now_ns();
        }
        /* What the threads cost over the master doing every piece alone
         * (estimated from its own pieces): waiting for a worker at the start
         * (not yet back from the previous region) or at the end. */
        const int64_t end = fm_now_ns();
        const int64_t alone = mine ? (master_done - entered) * n_pieces / mine : 0;
        const int64_t lost = mine ? (end - start) - alone : 0;
        if (lost > FM_LATE_NS) {
            const int64_t solo = FM_SOLO_FACTOR * lost;
            __atomic_store_n(&g_solo_until_ns, end + (solo < FM_SOLO_MAX_NS ? solo : FM_SOLO_MAX_NS),
                             __ATOMIC_RELAXED);
        }
        return;
    }
#else
    (void)nt;
#endif
    for (int p = 0; p < n_pieces; p++) fn(ctx, p);
}

int fm_threads_for_work(double work) {
    if (work < FM_GEMM_PAR_MIN_WORK) return 1;
    int t = fm_get_num_threads();
    double cap = work / FM_GEMM_PAR_WORK_PER_THREAD;
    if (cap < t) t = (int)cap;
    return fm_threads_available(t);
}

static int fm_threads_for(int64_t M, int64_t N, int64_t K) {
    return fm_threads_for_work((double)M * (double)N * (double)K);
}

/* ------------------------------------------------------------------------ */
/* Entry points, one per element type (same code, written once as a macro).
 * A split call runs its pieces through fm_parallel_pieces(); a piece is a
 * range of tile-aligned units of M (split_m) or N. */

#define FM_DEFINE_GEMM(NAME, NAME_EP, T, FIELD)                                             \
typedef struct {                                                                            \
    fm_gemm_##FIELD##_fn fn;                                                                \
    int ta, tb, split_m, np;                                                                \
    int64_t M, N, K, lda, ldb, ldc, units, align;                                           \
    T alpha, beta;                                                                          \
    const T *A, *B;                                                                         \
    T *C;                                                                                   \
    const fm_epilogue *ep;                                                                  \
} NAME##_split;                                                                             \
static void NAME##_piece(void *ctx, int t) {                                                \
    const NAME##_split *s = (const NAME##_split *)ctx;                                      \
    int64_t lo = s->units * t / s->np * s->align, hi = s->units * (t + 1) / s->np * s->align; \
    if (s->split_m) {                                                                       \
        if (hi > s->M) hi = s->M;                                                           \
        if (lo >= hi) return;                                                               \
        s->fn(s->ta, s->tb, hi - lo, s->N, s->K, s->alpha,                                  \
              s->ta ? s->A + lo : s->A + lo * s->lda, s->lda, s->B, s->ldb, s->beta,        \
              s->C + lo * s->ldc, s->ldc, s->ep);                                           \
    } else {                                                                                \
        if (hi > s->N) hi = s->N;                                                           \
        if (lo >= hi) return;                                                               \
        s->fn(s->ta, s->tb, s->M, hi - lo, s->K, s->alpha, s->A, s->lda,                    \
              s->tb ? s->B + lo * s->ldb : s->B + lo, s->ldb, s->beta, s->C + lo, s->ldc,   \
              s->ep);                                                                       \
    }                                                                                       \
}                                                                                           \
void NAME_EP(int ta, int tb, int64_t M, int64_t N, int64_t K, T alpha,                      \
             const T *A, int64_t lda, const T *B, int64_t ldb, T beta, T *C, int64_t ldc,   \
             const fm_epilogue *ep) {                                                       \
    if (M <= 0 || N <= 0) return;                                                           \
    if (K <= 0 || alpha == (T)0) { /* C = beta*C; beta == 0 writes zeros */                 \
        for (int64_t i = 0; i < M; i++) {                                                   \
            T *c = C + i * ldc;                                                             \
            if (beta == (T)0) memset(c, 0, (size_t)N * sizeof(T));                          \
            else if (beta != (T)1) for (int64_t j = 0; j < N; j++) c[j] *= beta;            \
        }                                                                                   \
        if (ep) ep->apply(ep, C, ldc, M, N);                                                \
        return;                                                                             \
    }                                                                                       \
    const fm_gemm_kernel_table *tab = fm_table();                                           \
    int small = fm_use_small(tab, tb, M, N, K, sizeof(T));                                  \
    fm_gemm_##FIELD##_fn fn = small ? tab->small_##FIELD : tab->packed_##FIELD;             \
    int nt = fm_threads_for(M, N, K);                                                       \
    /* Split the larger of M and N, on tile-aligned boundaries. */                          \
    int split_m = M >= N;                                                                   \
    int64_t align = split_m ? FM_SPLIT_ALIGN_M : FM_SPLIT_ALIGN_N;                          \
    int64_t units = ((split_m ? M : N) + align - 1) / align;                                \
    if (nt > units) nt = (int)units;                                                        \
    if (nt <= 1) {                                                                          \
        fn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);                       \
        return;                                                                             \
    }                                                                                       \
    /* The packed path takes one piece per thread (more would re-pack the      */           \
    /* shared operand); the small path packs nothing and takes                 */           \
    /* FM_GEMM_SMALL_PIECES per thread, so that a worker that starts late (its */           \
    /* core busy with another process) leaves its share to the others.         */           \
    int np = small ? nt * FM_GEMM_SMALL_PIECES : nt;                                        \
    if (np > units) np = (int)units;                                                        \
    NAME##_split s = {fn, ta, tb, split_m, np, M, N, K, lda, ldb, ldc, units, align,        \
                      alpha, beta, A, B, C, ep};                                            \
    fm_parallel_pieces(nt, np, NAME##_piece, &s);                                           \
}                                                                                           \
void NAME(int ta, int tb, int64_t M, int64_t N, int64_t K, T alpha,                         \
          const T *A, int64_t lda, const T *B, int64_t ldb, T beta, T *C, int64_t ldc) {    \
    NAME_EP(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);                    \
}

FM_DEFINE_GEMM(fm_gemm_f32, fm_gemm_ep_f32, float, f32)
FM_DEFINE_GEMM(fm_gemm_f64, fm_gemm_ep_f64, double, f64)
