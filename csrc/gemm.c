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
#ifndef FM_GEMM_PAR_MIN_WORK /* overridable for tuning */
#define FM_GEMM_PAR_MIN_WORK (1 << 21)
#endif
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
/* How long an idle pool thread spins before it sleeps (fm_parallel_pieces),
 * and how long the master spins waiting for a worker's piece.  On a quiet
 * 2-core machine (the benchmark run at real-time priority), a worker that
 * spins 300 us instead of 50 us catches the next GEMM of a training step
 * without a wake-up: 784-32-10 b128 went from 0.94x to 1.02x of one thread,
 * 784-512-512-10 b256 from 1.68x to 1.74x.  On a busy machine the busy
 * detector keeps calls on one thread, so the workers sleep. */
#ifndef FM_POOL_SPIN_NS
#define FM_POOL_SPIN_NS 300000
#endif
#define FM_POOL_WAIT_SPIN_NS 50000
/* After this long a spinning thread calls sched_yield() between looks: a
 * no-op when its core is otherwise idle, and the core goes to another task
 * that wants it (the master, or another process) when it is not.  Spinning
 * with `pause` only, a worker took 7-19% of the master's core share while a
 * background process kept the other core busy (784-32-10 b128: 0.73-0.76x of
 * one thread). */
#define FM_POOL_PAUSE_NS 5000
/* The busy detector (fm_threads_available): windows of 10-50 ms; a thread
 * that got less than 85% of a window on a core runs calls alone for 20 ms,
 * doubling up to 0.5 s while the machine stays busy. */
#define FM_BUSY_WINDOW_NS 10000000
#define FM_BUSY_WINDOW_MAX_NS 50000000
#define FM_BUSY_SHARE 0.85
#define FM_BUSY_SOLO_MIN_NS 20000000
#define FM_BUSY_SOLO_MAX_NS 500000000

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

void *fm_aligned64(size_t bytes) {
    void *p = NULL;
    bytes = (bytes + 63) & ~(size_t)63;
#ifdef _WIN32
    p = _aligned_malloc(bytes ? bytes : 64, 64);
#else
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) p = NULL;
#endif
    return p;
}

void fm_aligned64_free(void *p) {
#ifdef _WIN32
    _aligned_free(p);
#else
    free(p);
#endif
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
 * On a machine shared with other busy processes a thread may wait for a core
 * for a whole scheduler time slice (milliseconds).  Two things then go wrong
 * with an OpenMP parallel region: it ends only when every thread has arrived,
 * so a worker that the OS has not scheduled yet stalls the master even when
 * the master did all the work; and libgomp's idle threads spin for a long
 * while after every region (GOMP_SPINCOUNT iterations of `pause`,
 * milliseconds on recent x86), taking a core from the other processes and
 * from our own threads.  Measured on 2 shared cores, 784-512-512-10 training
 * ran at half its one-thread speed.
 *
 * So the pieces run on a pool of our own (POSIX threads; OpenMP regions are
 * kept where there are none, as on Windows, or with -DFM_NO_POOL):
 *  - pieces are claimed one by one from a shared ticket, the master included,
 *    and the master waits only for pieces a worker has claimed: a worker that
 *    starts late finds nothing left and costs nothing;
 *  - an idle worker spins for FM_POOL_SPIN_NS (so that the regions of a
 *    training step start at once) and then sleeps on a condition variable;
 *    the master waiting for a worker's piece spins FM_POOL_WAIT_SPIN_NS, then
 *    sleeps too.
 * What remains is a worker preempted in the middle of a piece: the master
 * measures how long it waits beyond its own pace and, after a long wait, runs
 * calls on one thread for a while (results do not depend on the thread count)
 * before trying threads again.  And when the calling thread itself does not
 * get its core (fm_busy_check), no core is idle for a worker either: calls run
 * on one thread until it does. */

static int64_t g_solo_until_ns = 0;

static int64_t fm_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Counters for fm_thread_stats() (relaxed: diagnostics only). */
static int64_t g_stat[FM_THREAD_STATS];
static void fm_stat_add(int which, int64_t v) { __atomic_add_fetch(&g_stat[which], v, __ATOMIC_RELAXED); }

void fm_thread_stats(int64_t *out, int n) {
    for (int i = 0; i < n; i++) out[i] = i < FM_THREAD_STATS ? __atomic_load_n(&g_stat[i], __ATOMIC_RELAXED) : 0;
}

/* 0 turns the guard and the busy detector off (for tests); 1 turns them on. */
static int g_guard_on = 1;
void fm_set_thread_guard(int on) {
    __atomic_store_n(&g_guard_on, on != 0, __ATOMIC_RELAXED);
    if (!on) __atomic_store_n(&g_solo_until_ns, 0, __ATOMIC_RELAXED);
}

#ifdef _OPENMP
/* The guard: what the threads cost over the master doing every piece alone
 * (estimated from its own pieces) -- waiting for a worker preempted inside its
 * piece, or, with OpenMP, for a worker late to start or to finish. */
static void fm_guard_update(int64_t start, int64_t master_done, int64_t end, int mine, int n_pieces) {
    fm_stat_add(FM_STAT_JOBS, 1);
    fm_stat_add(FM_STAT_WORKER_PIECES, n_pieces - mine);
    if (!mine) return;
    const int64_t alone = (master_done - start) * n_pieces / mine;
    const int64_t lost = (end - start) - alone;
    if (lost > FM_LATE_NS && __atomic_load_n(&g_guard_on, __ATOMIC_RELAXED)) {
        fm_stat_add(FM_STAT_LATE, 1);
        const int64_t solo = FM_SOLO_FACTOR * lost;
        __atomic_store_n(&g_solo_until_ns, end + (solo < FM_SOLO_MAX_NS ? solo : FM_SOLO_MAX_NS),
                         __ATOMIC_RELAXED);
    }
}
#endif

#if defined(_OPENMP) && !defined(_WIN32) && !defined(FM_NO_POOL)
#define FM_USE_POOL 1
#endif

#ifdef FM_USE_POOL
#include <sched.h>
#include <signal.h>

#if defined(__x86_64__) || defined(__i386__)
#define fm_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define fm_cpu_relax() __asm__ __volatile__("yield")
#else
#define fm_cpu_relax() ((void)0)
#endif

/* The ticket: generation (32 bits) | threads allowed, nt (8) | pieces, n (12)
 * | next piece to claim (12).  A claim is a compare-and-swap that adds 1. */
#define FM_POOL_MAX_THREADS 255
#define FM_POOL_MAX_PIECES 4095
#define FM_TK_NEXT(t) ((int)((t) & 0xFFF))
#define FM_TK_N(t) ((int)(((t) >> 12) & 0xFFF))
#define FM_TK_NT(t) ((int)(((t) >> 24) & 0xFF))

static pthread_mutex_t g_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_pool_cv = PTHREAD_COND_INITIALIZER;    /* workers sleep here */
static pthread_cond_t g_done_cv = PTHREAD_COND_INITIALIZER;    /* the master sleeps here */
static uint64_t g_ticket = 0;
static int g_done = 0;              /* pieces of the current job finished */
static int g_sleepers = 0;          /* workers asleep on g_pool_cv */
static int g_master_waiting = 0;    /* the master asleep on g_done_cv */
static int g_pool_busy = 0;         /* a master owns the pool (one job at a time) */
static int g_pool_workers = 0;      /* workers started */
static void (*g_job_fn)(void *ctx, int piece);
static void *g_job_ctx;
static _Thread_local int tl_in_pool = 0;   /* a worker, or a master inside its job */

static int fm_in_pool(void) { return tl_in_pool; }

/* Claims a piece of the job in *t for thread `me`: its index, or -1 when none
 * is left (or `me` is not among the job's threads). */
static int fm_pool_claim(int me) {
    uint64_t t = __atomic_load_n(&g_ticket, __ATOMIC_ACQUIRE);
    while (me < FM_TK_NT(t) && FM_TK_NEXT(t) < FM_TK_N(t)) {
        if (__atomic_compare_exchange_n(&g_ticket, &t, t + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return FM_TK_NEXT(t);
    }
    return -1;
}

static void fm_pool_piece_done(void) {
    const uint64_t t = __atomic_load_n(&g_ticket, __ATOMIC_RELAXED);   /* our job's: it cannot end before us */
    if (__atomic_add_fetch(&g_done, 1, __ATOMIC_SEQ_CST) == FM_TK_N(t) &&
        __atomic_load_n(&g_master_waiting, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&g_pool_mu);
        pthread_cond_broadcast(&g_done_cv);
        pthread_mutex_unlock(&g_pool_mu);
    }
}

/* A worker with nothing to claim: spin a while for the ticket to change, then
 * sleep until it does. */
static void fm_pool_idle(uint64_t seen) {
    const int64_t t0 = fm_now_ns();
    for (unsigned i = 1;; i++) {
        fm_cpu_relax();
        if (__atomic_load_n(&g_ticket, __ATOMIC_RELAXED) != seen) return;
        if ((i & 31) == 0) {
            const int64_t t = fm_now_ns() - t0;
            if (t > FM_POOL_SPIN_NS) break;
            if (t > FM_POOL_PAUSE_NS) sched_yield();   /* another task wanting this core runs first */
        }
    }
    pthread_mutex_lock(&g_pool_mu);
    __atomic_add_fetch(&g_sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&g_ticket, __ATOMIC_SEQ_CST) == seen) pthread_cond_wait(&g_pool_cv, &g_pool_mu);
    __atomic_sub_fetch(&g_sleepers, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&g_pool_mu);
}

static void *fm_pool_main(void *arg) {
    const int me = (int)(intptr_t)arg;
    tl_in_pool = 1;
    for (;;) {
        const uint64_t seen = __atomic_load_n(&g_ticket, __ATOMIC_ACQUIRE);
        const int p = fm_pool_claim(me);
        if (p >= 0) {
            /* the job cannot change before this piece is done: fn and ctx are its own */
            g_job_fn(g_job_ctx, p);
            fm_pool_piece_done();
            continue;
        }
        fm_pool_idle(seen);
    }
    return NULL;
}

/* In a child after fork() the workers are gone: start again from none. */
static void fm_pool_after_fork(void) {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER, dcv = PTHREAD_COND_INITIALIZER;
    g_pool_mu = mu;
    g_pool_cv = cv;
    g_done_cv = dcv;
    g_ticket &= ~(uint64_t)0xFFFFFFFF;
    g_done = g_sleepers = g_master_waiting = g_pool_busy = g_pool_workers = 0;
}

static pthread_once_t g_pool_once = PTHREAD_ONCE_INIT;
static void fm_pool_init(void) { pthread_atfork(NULL, NULL, fm_pool_after_fork); }

/* Starts workers up to nt - 1 (fewer if the system refuses); returns how many
 * threads a job can use.  Called by the pool's owner only. */
static int fm_pool_grow(int nt) {
    pthread_once(&g_pool_once, fm_pool_init);
    while (g_pool_workers < nt - 1) {
        sigset_t all, old;
        sigfillset(&all);   /* signals go to other threads (Python handles them on its main thread) */
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t tid;
        const int rc = pthread_create(&tid, &attr, fm_pool_main, (void *)(intptr_t)(g_pool_workers + 1));
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) break;
        g_pool_workers++;
    }
    return g_pool_workers + 1 < nt ? g_pool_workers + 1 : nt;
}

/* Runs the pieces on the pool; 0 when the pool is taken (another thread's
 * job): the caller then runs them alone. */
static int fm_pool_run(int nt, int n_pieces, void (*fn)(void *ctx, int piece), void *ctx) {
    if (__atomic_exchange_n(&g_pool_busy, 1, __ATOMIC_ACQUIRE)) return 0;
    if (nt > FM_POOL_MAX_THREADS) nt = FM_POOL_MAX_THREADS;
    nt = fm_pool_grow(nt);
    if (nt <= 1 || n_pieces > FM_POOL_MAX_PIECES) {
        __atomic_store_n(&g_pool_busy, 0, __ATOMIC_RELEASE);
        return 0;
    }
    tl_in_pool = 1;
    const int64_t start = fm_now_ns();
    g_job_fn = fn;
    g_job_ctx = ctx;
    __atomic_store_n(&g_done, 0, __ATOMIC_RELAXED);
    const uint64_t gen = (__atomic_load_n(&g_ticket, __ATOMIC_RELAXED) >> 32) + 1;
    __atomic_store_n(&g_ticket, gen << 32 | (uint64_t)nt << 24 | (uint64_t)n_pieces << 12,
                     __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&g_sleepers, __ATOMIC_SEQ_CST) > 0) {
        pthread_mutex_lock(&g_pool_mu);
        pthread_cond_broadcast(&g_pool_cv);
        pthread_mutex_unlock(&g_pool_mu);
    }
    int mine = 0, p;
    while ((p = fm_pool_claim(0)) >= 0) {
        fn(ctx, p);
        mine++;
        __atomic_add_fetch(&g_done, 1, __ATOMIC_SEQ_CST);
    }
    const int64_t master_done = fm_now_ns();
    /* wait for the pieces the workers claimed: spin, then sleep */
    if (__atomic_load_n(&g_done, __ATOMIC_ACQUIRE) < n_pieces) {
        for (unsigned i = 1; __atomic_load_n(&g_done, __ATOMIC_ACQUIRE) < n_pieces; i++) {
            fm_cpu_relax();
            if ((i & 31) != 0) continue;
            const int64_t t = fm_now_ns() - master_done;
            if (t > FM_POOL_PAUSE_NS) sched_yield();   /* the worker may be waiting for this core */
            if (t > FM_POOL_WAIT_SPIN_NS) {
                pthread_mutex_lock(&g_pool_mu);
                __atomic_store_n(&g_master_waiting, 1, __ATOMIC_SEQ_CST);
                while (__atomic_load_n(&g_done, __ATOMIC_SEQ_CST) < n_pieces)
                    pthread_cond_wait(&g_done_cv, &g_pool_mu);
                __atomic_store_n(&g_master_waiting, 0, __ATOMIC_RELAXED);
                pthread_mutex_unlock(&g_pool_mu);
                break;
            }
        }
    }
    fm_guard_update(start, master_done, fm_now_ns(), mine, n_pieces);
    tl_in_pool = 0;
    __atomic_store_n(&g_pool_busy, 0, __ATOMIC_RELEASE);
    return 1;
}
#else
static int fm_in_pool(void) { return 0; }
#endif

/* The busy detector: over windows of FM_BUSY_WINDOW_NS, how much of the wall
 * time the calling thread got on a core (its CPU time).  A thread that keeps
 * calling in here is working, so getting less than FM_BUSY_SHARE of the time
 * means other runnable tasks share its core: the machine has no idle core for
 * a worker either, and after two such windows in a row calls run on one
 * thread for a while (doubling, up to FM_BUSY_SOLO_MAX_NS, while it stays
 * busy).  Windows longer than
 * FM_BUSY_WINDOW_MAX_NS (the caller did something else in between) are not
 * judged.  Where thread CPU clocks do not exist the detector is off. */
static _Thread_local int64_t tl_win_wall = 0, tl_win_cpu = 0;
static _Thread_local int tl_busy_streak = 0;
static int64_t g_busy_solo_ns = FM_BUSY_SOLO_MIN_NS;

static int64_t fm_thread_cpu_ns(void) {
#ifdef CLOCK_THREAD_CPUTIME_ID
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
    return -1;
}

static void fm_busy_check(int64_t now) {
    const int64_t dw = now - tl_win_wall;
    if (dw < FM_BUSY_WINDOW_NS) return;
    const int64_t cpu = fm_thread_cpu_ns();
    if (cpu < 0) return;
    const int64_t dc = cpu - tl_win_cpu;
    const int judged = tl_win_wall != 0 && dw <= FM_BUSY_WINDOW_MAX_NS;
    tl_win_wall = now;
    tl_win_cpu = cpu;
    if (!judged) return;
    int64_t solo = __atomic_load_n(&g_busy_solo_ns, __ATOMIC_RELAXED);
    if ((double)dc < FM_BUSY_SHARE * (double)dw) {
        if (++tl_busy_streak < 2) return;   /* one short stall is no busy machine */
        tl_busy_streak = 0;
        const int64_t until = now + solo;
        if (until > __atomic_load_n(&g_solo_until_ns, __ATOMIC_RELAXED))
            __atomic_store_n(&g_solo_until_ns, until, __ATOMIC_RELAXED);
        fm_stat_add(FM_STAT_BUSY, 1);
        solo *= 2;
        if (solo > FM_BUSY_SOLO_MAX_NS) solo = FM_BUSY_SOLO_MAX_NS;
    } else {
        tl_busy_streak = 0;
        if (now >= __atomic_load_n(&g_solo_until_ns, __ATOMIC_RELAXED)) {
            solo /= 2;   /* a clean window with threads allowed */
            if (solo < FM_BUSY_SOLO_MIN_NS) solo = FM_BUSY_SOLO_MIN_NS;
        }
    }
    __atomic_store_n(&g_busy_solo_ns, solo, __ATOMIC_RELAXED);
}

int fm_threads_available(int want) {
    if (want <= 1) return 1;
    if (fm_in_pool()) return 1;
#ifdef _OPENMP
    if (omp_in_parallel()) return 1;
#endif
    if (!__atomic_load_n(&g_guard_on, __ATOMIC_RELAXED)) return want;
    const int64_t now = fm_now_ns();
    fm_busy_check(now);
    if (now < __atomic_load_n(&g_solo_until_ns, __ATOMIC_RELAXED)) {
        fm_stat_add(FM_STAT_SOLO_CALLS, 1);
        return 1;
    }
    return want;
}

void fm_parallel_pieces(int nt, int n_pieces, void (*fn)(void *ctx, int piece), void *ctx) {
#ifdef FM_USE_POOL
    if (nt > 1 && n_pieces > 1 && fm_pool_run(nt, n_pieces, fn, ctx)) return;
#elif defined(_OPENMP)
    if (nt > 1 && n_pieces > 1) {
        const int64_t start = fm_now_ns();
        int64_t master_done = start;
        int mine = 0;   /* pieces the master did */
#pragma omp parallel num_threads(nt)
        {
            const int master = omp_get_thread_num() == 0;
#pragma omp for schedule(dynamic, 1) nowait
            for (int p = 0; p < n_pieces; p++) {
                fn(ctx, p);
                if (master) mine++;
            }
            if (master) master_done = fm_now_ns();
        }
        fm_guard_update(start, master_done, fm_now_ns(), mine, n_pieces);
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
