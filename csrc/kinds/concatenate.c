/* Concatenate: the inputs side by side along the feature axis (Keras's
 * default axis=-1); the output width is the sum of theirs. */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "concatenate.c"
#include "instantiate.h"

static int concatenate_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    (void)n_params;
    int64_t total = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        if (in_width[i] <= 0) return FM_ERR_ARG;
        total += in_width[i];
    }
    return n->n_inputs >= 1 && total == n->n_out ? FM_OK : FM_ERR_ARG;
}

const fm_kind fm_kind_concatenate = {
    "concatenate", 0, 0, 0, concatenate_check, NULL,
    {concatenate_forward_f32, concatenate_forward_f64}, {concatenate_backward_f32, concatenate_backward_f64},
};

#else

static void FM_CAT(concatenate_forward, SFX)(const fm_fwd *a) {
    const int64_t w = a->node->n_out;
    T *out = (T *)a->out;
    int64_t col = 0;
    for (int i = 0; i < a->node->n_inputs; i++) {
        const int64_t wi = a->in_width[i];
        const T *x = (const T *)a->in[i];
        for (int64_t r = 0; r < a->rows; r++) memcpy(out + r * w + col, x + r * wi, (size_t)wi * sizeof(T));
        col += wi;
    }
}

static void FM_CAT(concatenate_backward, SFX)(const fm_bwd *a) {
    const int64_t w = a->node->n_out;
    const T *g = (const T *)a->dout;
    int64_t col = 0;
    for (int i = 0; i < a->node->n_inputs; i++) {
        const int64_t wi = a->in_width[i];
        T *din = (T *)a->din[i];
        if (din) {
            for (int64_t r = 0; r < a->rows; r++) {
                const T *src = g + r * w + col;
                T *dst = din + r * wi;
                if (a->din_add[i]) { for (int64_t j = 0; j < wi; j++) dst[j] += src[j]; }
                else memcpy(dst, src, (size_t)wi * sizeof(T));
            }
        }
        col += wi;
    }
}

#endif
