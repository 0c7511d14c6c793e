/* GaussianNoise: out = in + rate * N(0, 1) in training (rate is the standard
 * deviation), the identity at inference.  The noise of (stream, step) comes from
 * the counter-based generator: one 64-bit hash gives two 32-bit uniforms and,
 * by Box-Muller, two normal values. */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "noise.c"
#include "instantiate.h"

static int noise_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    (void)n_params;
    return n->n_inputs == 1 && fm_same_width(n, in_width) && n->rate >= 0 ? FM_OK : FM_ERR_ARG;
}

const fm_kind fm_kind_noise = {
    "gaussian_noise", 0, 1, 0, noise_check, NULL,
    {noise_forward_f32, noise_forward_f64}, {noise_backward_f32, noise_backward_f64},
};

#else

static void FM_CAT(noise_forward, SFX)(const fm_fwd *a) {
    const fm_node *nd = a->node;
    const T *in = (const T *)a->in[0];
    T *out = (T *)a->out;
    const int64_t n = a->rows * nd->n_out;
    if (!a->training || nd->rate == 0) {
        memcpy(out, in, (size_t)n * sizeof(T));
        return;
    }
    const uint64_t key = fm_hash64((nd->seed ? nd->seed : a->seed) ^ 0x6a0551a4u,
                                   ((uint64_t)nd->stream << 48) ^ (uint64_t)a->step);
    const double two_pi = 6.283185307179586476925, stddev = nd->rate;
    for (int64_t i = 0; i < n; i += 2) {
        const uint64_t h = fm_hash64(key, (uint64_t)(i >> 1));
        const double u1 = ((double)(h >> 32) + 0.5) * 0x1p-32;   /* in (0, 1) */
        const double u2 = (double)(h & 0xFFFFFFFFu) * 0x1p-32;
        const double r = stddev * sqrt(-2.0 * log(u1));
        out[i] = in[i] + (T)(r * cos(two_pi * u2));
        if (i + 1 < n) out[i + 1] = in[i + 1] + (T)(r * sin(two_pi * u2));
    }
}

static void FM_CAT(noise_backward, SFX)(const fm_bwd *a) {
    T *din = (T *)a->din[0];
    if (!din) return;
    const T *g = (const T *)a->dout;
    const int64_t n = a->rows * a->node->n_out;
    if (a->din_add[0]) { for (int64_t i = 0; i < n; i++) din[i] += g[i]; }
    else memcpy(din, g, (size_t)n * sizeof(T));
}

#endif
