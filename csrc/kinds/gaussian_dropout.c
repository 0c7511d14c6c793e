/* GaussianDropout: out = in * m in training, m ~ N(1, rate / (1 - rate))
 * (standard deviation sqrt(rate / (1 - rate)), keras.layers.GaussianDropout's
 * multiplicative noise); the identity at inference.  The noise of (stream,
 * step) comes from the counter-based generator (one 64-bit hash gives two
 * normal values by Box-Muller), so runs repeat and resume exactly; m is kept
 * in the workspace for backward (d out / d in = m). */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "gaussian_dropout.c"
#include "instantiate.h"

static int gaussian_dropout_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    (void)n_params;
    return n->n_inputs == 1 && fm_same_width(n, in_width) && n->rate >= 0 && n->rate < 1 ? FM_OK : FM_ERR_ARG;
}

static int64_t gaussian_dropout_workspace(const fm_node *n, int64_t rows) { return rows * n->n_out; }

const fm_kind fm_kind_gaussian_dropout = {
    "gaussian_dropout", 0, 1, 0, gaussian_dropout_check, gaussian_dropout_workspace,
    {gaussian_dropout_forward_f32, gaussian_dropout_forward_f64},
    {mask_backward_f32, mask_backward_f64},
};

#else

static void FM_CAT(gaussian_dropout_forward, SFX)(const fm_fwd *a) {
    const fm_node *nd = a->node;
    const T *in = (const T *)a->in[0];
    T *out = (T *)a->out, *m = (T *)a->ws;
    const int64_t n = a->rows * nd->n_out;
    if (!a->training || nd->rate == 0) {
        memcpy(out, in, (size_t)n * sizeof(T));
        return;
    }
    const uint64_t key = fm_hash64((nd->seed ? nd->seed : a->seed) ^ 0x6d0d5e11u,
                                   ((uint64_t)nd->stream << 48) ^ (uint64_t)a->step);
    const double two_pi = 6.283185307179586476925, stddev = sqrt(nd->rate / (1.0 - nd->rate));
    for (int64_t i = 0; i < n; i += 2) {
        const uint64_t h = fm_hash64(key, (uint64_t)(i >> 1));
        const double u1 = ((double)(h >> 32) + 0.5) * 0x1p-32;   /* in (0, 1) */
        const double u2 = (double)(h & 0xFFFFFFFFu) * 0x1p-32;
        const double r = stddev * sqrt(-2.0 * log(u1));
        m[i] = (T)(1.0 + r * cos(two_pi * u2));
        out[i] = in[i] * m[i];
        if (i + 1 < n) {
            m[i + 1] = (T)(1.0 + r * sin(two_pi * u2));
            out[i + 1] = in[i + 1] * m[i + 1];
        }
    }
}

#include "mask_backward.h"

#endif
