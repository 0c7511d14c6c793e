/* The network object, counter-based random numbers, and the two
 * instantiations (float, double) of the kernel templates in *_impl.h. */
#include "fastmlp.h"
#include "gemm_kernels.h"   /* fm_gemm_buffer: thread-local scratch */

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct fm_net {
    int is_f64;
    int n_layers, n_vars;
    fm_layer *layers;
    fm_var *vars;
    int64_t n_params, n_in, n_out, max_width;
    int64_t macs_per_row;      /* multiply-adds of one row through the dense layers */
    int first_param_layer;     /* backward stops here */
    void *grads;               /* n_params */
    /* training workspace for up to cap_rows rows */
    int64_t cap_rows;
    void **A, **Z;             /* per layer output; pre-activation or dropout mask */
    void *dA, *dB;             /* gradient ping-pong, cap x max(max_width, n_in) */
    void *Xb, *Yb, *wb;        /* gathered batch */
    int64_t *yb;
};

/* ---- random numbers: a stateless 64-bit mixer (SplitMix64 finaliser over a
 * Weyl sequence keyed by `key`).  Resuming needs only (seed, counters). ---- */
uint64_t fm_hash64(uint64_t key, uint64_t counter) {
    uint64_t z = key + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    z += 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fm_permutation(uint64_t seed, uint64_t epoch, int64_t n, int64_t *out) {
    const uint64_t key = fm_hash64(seed ^ 0x5107F1Eull, epoch);
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        /* unbiased enough: 64-bit draw scaled by a 128-bit multiply */
        uint64_t r = fm_hash64(key, (uint64_t)i);
        int64_t j = (int64_t)(((unsigned __int128)r * (uint64_t)(i + 1)) >> 64);
        int64_t t = out[i]; out[i] = out[j]; out[j] = t;
    }
}

/* ---- the network ---- */
static int needs_z(int act) {
    return act == FM_ACT_GELU || act == FM_ACT_SWISH || act == FM_ACT_SOFTMAX ||
           act == FM_ACT_SIGMOID;
}

fm_net *fm_net_create(int is_f64, int n_layers, const fm_layer *layers,
                      int n_vars, const fm_var *vars, int64_t n_params) {
    if (n_layers <= 0) return NULL;
    fm_net *net = (fm_net *)calloc(1, sizeof(fm_net));
    if (!net) return NULL;
    net->is_f64 = is_f64;
    net->n_layers = n_layers;
    net->n_vars = n_vars;
    net->n_params = n_params;
    net->layers = (fm_layer *)malloc(sizeof(fm_layer) * (size_t)n_layers);
    net->vars = (fm_var *)malloc(sizeof(fm_var) * (size_t)(n_vars > 0 ? n_vars : 1));
    net->A = (void **)calloc((size_t)n_layers, sizeof(void *));
    net->Z = (void **)calloc((size_t)n_layers, sizeof(void *));
    /* the gradient buffer is allocated with the training workspace (fm_net_reserve):
     * a network used only for inference never pays for it */
    if (!net->layers || !net->vars || !net->A || !net->Z) { fm_net_free(net); return NULL; }
    memcpy(net->layers, layers, sizeof(fm_layer) * (size_t)n_layers);
    if (n_vars) memcpy(net->vars, vars, sizeof(fm_var) * (size_t)n_vars);
    net->n_in = layers[0].n_in;
    net->n_out = layers[n_layers - 1].n_out;
    net->max_width = 1;
    net->first_param_layer = n_layers;
    for (int l = 0; l < n_layers; l++) {
        if (layers[l].n_out > net->max_width) net->max_width = layers[l].n_out;
        if (layers[l].kind == FM_LAYER_DENSE) net->macs_per_row += layers[l].n_in * layers[l].n_out;
        int has_params = layers[l].kind == FM_LAYER_DENSE ||
                         (layers[l].kind == FM_LAYER_BATCHNORM && (layers[l].w_off >= 0 || layers[l].b_off >= 0));
        if (has_params && l < net->first_param_layer) net->first_param_layer = l;
    }
    return net;
}

static void free_workspace(fm_net *net) {
    for (int l = 0; l < net->n_layers; l++) {
        free(net->A[l]); net->A[l] = NULL;
        free(net->Z[l]); net->Z[l] = NULL;
    }
    free(net->dA); free(net->dB); free(net->Xb); free(net->Yb); free(net->wb); free(net->yb);
    net->dA = net->dB = net->Xb = net->Yb = net->wb = NULL;
    net->yb = NULL;
    net->cap_rows = 0;
}

void fm_net_free(fm_net *net) {
    if (!net) return;
    if (net->A && net->Z) free_workspace(net);
    free(net->A); free(net->Z); free(net->layers); free(net->vars); free(net->grads);
    free(net);
}

int fm_net_is_f64(const fm_net *net) { return net->is_f64; }
int64_t fm_net_n_params(const fm_net *net) { return net->n_params; }
void *fm_net_grads(fm_net *net) { return net->grads; }

/* Grow the training workspace to hold `rows` rows (never shrinks). */
static int fm_net_reserve(fm_net *net, int64_t rows, size_t es) {
    if (!net->grads) {
        net->grads = calloc((size_t)(net->n_params > 0 ? net->n_params : 1), es);
        if (!net->grads) return FM_ERR_NOMEM;
    }
    if (rows <= net->cap_rows) return FM_OK;
    free_workspace(net);
    int64_t gw = net->max_width > net->n_in ? net->max_width : net->n_in;
    for (int l = 0; l < net->n_layers; l++) {
        const fm_layer *L = &net->layers[l];
        net->A[l] = malloc((size_t)(rows * L->n_out) * es);
        int want_z = FM_HAS_ACTIVATION(L) ? needs_z(L->activation) : L->kind != FM_LAYER_NOISE;
        /* batch normalization keeps xhat and, after it, 1/std per feature */
        if (want_z) net->Z[l] = malloc((size_t)((rows + 1) * L->n_out) * es);
        if (!net->A[l] || (want_z && !net->Z[l])) { free_workspace(net); return FM_ERR_NOMEM; }
    }
    net->dA = malloc((size_t)(rows * gw) * es);
    net->dB = malloc((size_t)(rows * gw) * es);
    net->Xb = malloc((size_t)(rows * net->n_in) * es);
    net->Yb = malloc((size_t)(rows * net->n_out) * es);
    net->wb = malloc((size_t)rows * es);
    net->yb = (int64_t *)malloc((size_t)rows * sizeof(int64_t));
    if (!net->dA || !net->dB || !net->Xb || !net->Yb || !net->wb || !net->yb) {
        free_workspace(net);
        return FM_ERR_NOMEM;
    }
    net->cap_rows = rows;
    return FM_OK;
}

/* Element-wise kernels are cloned for wider vector units and picked at load
 * time by the dynamic linker (GCC's target_clones over ifunc): the build stays
 * portable, with no -march flags. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FM_CLONES
#endif

/* ---- input checks ---- */
/* 1 when every value is finite: a value is NaN or infinite exactly when all
 * its exponent bits are set.  Integer tests OR-reduce in blocks, so the loop
 * vectorizes and stops early at the first bad block. */
#define FM_DEFINE_ALL_FINITE(NAME, T, U, EXP)                            \
FM_CLONES int NAME(const T *x, int64_t n) {                              \
    const U *u = (const U *)x;                                           \
    for (int64_t i = 0; i < n; i += 4096) {                              \
        int64_t end = i + 4096 < n ? i + 4096 : n;                       \
        U bad = 0;                                                       \
        for (int64_t j = i; j < end; j++) bad |= (U)((u[j] & EXP) == EXP); \
        if (bad) return 0;                                               \
    }                                                                    \
    return 1;                                                            \
}
FM_DEFINE_ALL_FINITE(fm_all_finite_f32, float, uint32_t, 0x7F800000u)
FM_DEFINE_ALL_FINITE(fm_all_finite_f64, double, uint64_t, 0x7FF0000000000000ull)

/* predict splits rows over threads when each gets at least this many. */
#define FM_INFER_MIN_ROWS_PER_THREAD 96

/* Variables of at least this many elements are updated by several threads. */
#define FM_OPT_PAR_MIN ((int64_t)1 << 17)

/* 2^n from t = 1.5 * 2^(mantissa bits) + n (|n| small): n sits in the low bits
 * of t and goes to the exponent field.  Used by the vectorizable e^x. */
#define FM_DEFINE_POW2(NAME, F, U, MAGIC_BITS, BIAS, SHIFT)                     \
static inline F NAME(F t) {                                                     \
    U bits;                                                                     \
    memcpy(&bits, &t, sizeof bits);                                             \
    bits = (bits - (MAGIC_BITS) + (BIAS)) << (SHIFT);                           \
    memcpy(&t, &bits, sizeof t);                                                \
    return t;                                                                   \
}
FM_DEFINE_POW2(fm_pow2_f32, float, uint32_t, 0x4B400000u, 127u, 23)
FM_DEFINE_POW2(fm_pow2_f64, double, uint64_t, 0x4338000000000000ull, 1023u, 52)

/* ---- template instantiation ---- */
#define FM_CAT_(a, b) a##b
#define FM_CAT(a, b) FM_CAT_(a, b)

/* No contraction of a*b + c into one fused multiply-add: setup.py turns it off
 * for every compiler (-ffp-contract=off), since the compiler would contract some
 * loop iterations (vectorized) and not others, and a value's rounding would
 * depend on where the loop, or the GEMM tile it runs on, starts. */

#define fm_gemm_f32_ fm_gemm_f32
#define T float
#define SFX _f32
#include <tgmath.h>
#include "act_impl.h"
#include "bn_impl.h"
#include "loss_impl.h"
#include "optim_impl.h"
#include "net_impl.h"
#undef T
#undef SFX

#define T double
#define SFX _f64
#include "act_impl.h"
#include "bn_impl.h"
#include "loss_impl.h"
#include "optim_impl.h"
#include "net_impl.h"
#undef T
#undef SFX
