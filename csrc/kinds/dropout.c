/* Dropout: in training, zero each value with probability `rate` and scale the
 * rest by 1 / (1 - rate) (inverted dropout); the identity at inference.  The
 * mask of (stream, step) comes from the counter-based generator, so runs repeat
 * and resume exactly; it is kept in the workspace for backward.  One 64-bit
 * hash gives four 16-bit uniforms (the keep probability is exact to 2^-16). */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "dropout.c"
#include "instantiate.h"

static int dropout_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    (void)n_params;
    return n->n_inputs == 1 && fm_same_width(n, in_width) && n->rate >= 0 && n->rate <= 1 ? FM_OK : FM_ERR_ARG;
}

static int64_t dropout_workspace(const fm_node *n, int64_t rows) { return rows * n->n_out; }

const fm_kind fm_kind_dropout = {
    "dropout", 0, 1, 0, dropout_check, dropout_workspace,
    {dropout_forward_f32, dropout_forward_f64}, {mask_backward_f32, mask_backward_f64},
};

#else

static void FM_CAT(dropout_forward, SFX)(const fm_fwd *a) {
    const fm_node *nd = a->node;
    const T *in = (const T *)a->in[0];
    T *out = (T *)a->out, *mask = (T *)a->ws;
    const int64_t n = a->rows * nd->n_out;
    const double rate = nd->rate;
    if (!a->training || rate == 0) {
        memcpy(out, in, (size_t)n * sizeof(T));
        return;
    }
    const uint64_t key = fm_hash64((nd->seed ? nd->seed : a->seed) ^ 0x5eedd50u,
                                   ((uint64_t)nd->stream << 48) ^ (uint64_t)a->step);
    const T keep_scale = rate < 1 ? (T)(1.0 / (1.0 - rate)) : (T)0;
    const uint32_t cut = rate >= 1 ? 65536u : (uint32_t)ceil(rate * 65536.0);   /* drop if u < cut */
    for (int64_t i = 0; i < n; i += 4) {
        const uint64_t h = fm_hash64(key, (uint64_t)(i >> 2));
        const int64_t m = n - i < 4 ? n - i : 4;
        for (int64_t k = 0; k < m; k++) {
            const uint32_t u = (uint32_t)(h >> (16 * k)) & 0xFFFFu;
            mask[i + k] = u >= cut ? keep_scale : (T)0;
            out[i + k] = in[i + k] * mask[i + k];
        }
    }
}

#include "mask_backward.h"

#endif
