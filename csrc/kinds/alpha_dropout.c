/* AlphaDropout (keras.layers.AlphaDropout), for self-normalizing (SELU)
 * networks: in training each value is kept with probability 1 - rate, the
 * others are set to SELU's negative saturation alpha' = -alpha * scale, and
 * the result is mapped by the affine a * x + b that keeps zero mean and unit
 * variance:
 *     a = ((1 - rate) * (1 + rate * alpha'^2))^-1/2,   b = -a * alpha' * rate.
 * The identity at inference.  The keep mask of (stream, step) comes from the
 * counter-based generator (one 64-bit hash gives two 32-bit uniforms u in
 * [0, 1); kept where u >= rate, as Keras draws it); the workspace keeps
 * d out / d in (a where kept, 0 where dropped) for backward. */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "alpha_dropout.c"
#include "instantiate.h"

static int alpha_dropout_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    (void)n_params;
    return n->n_inputs == 1 && fm_same_width(n, in_width) && n->rate >= 0 && n->rate < 1 ? FM_OK : FM_ERR_ARG;
}

static int64_t alpha_dropout_workspace(const fm_node *n, int64_t rows) { return rows * n->n_out; }

const fm_kind fm_kind_alpha_dropout = {
    "alpha_dropout", 0, 1, 0, alpha_dropout_check, alpha_dropout_workspace,
    {alpha_dropout_forward_f32, alpha_dropout_forward_f64},
    {mask_backward_f32, mask_backward_f64},
};

#else

static void FM_CAT(alpha_dropout_forward, SFX)(const fm_fwd *a) {
    const fm_node *nd = a->node;
    const T *in = (const T *)a->in[0];
    T *out = (T *)a->out, *mask = (T *)a->ws;
    const int64_t n = a->rows * nd->n_out;
    const double rate = nd->rate;
    if (!a->training || rate == 0) {
        memcpy(out, in, (size_t)n * sizeof(T));
        return;
    }
    const double alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946;
    const double ad = 1.0 / sqrt((1.0 - rate) * (1.0 + rate * alpha_p * alpha_p));
    const T scale = (T)ad, shift = (T)(-ad * alpha_p * rate), dropped = (T)(ad * alpha_p - ad * alpha_p * rate);
    const uint64_t key = fm_hash64((nd->seed ? nd->seed : a->seed) ^ 0xa1fad0u,
                                   ((uint64_t)nd->stream << 48) ^ (uint64_t)a->step);
    for (int64_t i = 0; i < n; i += 2) {
        const uint64_t h = fm_hash64(key, (uint64_t)(i >> 1));
        const int64_t m = n - i < 2 ? n - i : 2;
        for (int64_t k = 0; k < m; k++) {
            const double u = (double)((uint32_t)(h >> (32 * k))) * 0x1p-32;
            const int keep = u >= rate;
            mask[i + k] = keep ? scale : (T)0;
            out[i + k] = keep ? scale * in[i + k] + shift : dropped;
        }
    }
}

#include "mask_backward.h"

#endif
