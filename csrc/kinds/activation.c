/* Activation: out = act(in).  The network applies the node's activation after
 * forward and its derivative before backward, so the kind itself only passes
 * values and gradients through.  keras.layers.Activation, ReLU, Softmax, ELU
 * and LeakyReLU all run as this kind. */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "activation.c"
#include "instantiate.h"

static int activation_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    (void)n_params;
    return n->n_inputs == 1 && fm_same_width(n, in_width) ? FM_OK : FM_ERR_ARG;
}

const fm_kind fm_kind_activation = {
    "activation", 0, 0, 0, activation_check, NULL,
    {activation_forward_f32, activation_forward_f64}, {activation_backward_f32, activation_backward_f64},
};

#else

static void FM_CAT(activation_forward, SFX)(const fm_fwd *a) {
    memcpy(a->out, a->in[0], (size_t)(a->rows * a->node->n_out) * sizeof(T));
}

static void FM_CAT(activation_backward, SFX)(const fm_bwd *a) {
    T *din = (T *)a->din[0];
    if (!din) return;
    const T *g = (const T *)a->dout;
    const int64_t n = a->rows * a->node->n_out;
    if (a->din_add[0]) { for (int64_t i = 0; i < n; i++) din[i] += g[i]; }
    else memcpy(din, g, (size_t)n * sizeof(T));
}

#endif
