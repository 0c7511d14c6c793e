/* Dense: out = act(in @ W + b), W (n_in x n_out) at w_off, b (n_out) at b_off.
 * Forward is one GEMM whose epilogue adds the bias and applies the activation
 * to each finished tile; backward hands back in-gradients through the
 * producer's activation in the same way (fm_gemm_act_grad) when it may. */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "dense.c"
#include "instantiate.h"

static int dense_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    if (n->n_inputs != 1 || n->w_off < 0 || n->n_out <= 0 || in_width[0] <= 0) return FM_ERR_ARG;
    if (in_width[0] > INT64_MAX / n->n_out) return FM_ERR_ARG;
    if (!fm_segment_ok(n->w_off, in_width[0] * n->n_out, n_params) ||
        !fm_segment_ok(n->b_off, n->n_out, n_params)) return FM_ERR_ARG;
    return FM_OK;
}

const fm_kind fm_kind_dense = {
    "dense", 1, 0, 1, dense_check, NULL,
    {dense_forward_f32, dense_forward_f64}, {dense_backward_f32, dense_backward_f64},
};

#else

static void FM_CAT(dense_forward, SFX)(const fm_fwd *a) {
    const fm_node *n = a->node;
    const T *params = (const T *)a->params;
    const int64_t n_in = a->in_width[0];
    FM_CAT(fm_gemm_bias_act, SFX)(n->activation, n->act_alpha, n->b_off >= 0 ? params + n->b_off : NULL,
                                  (T *)a->Z, 0, 0, a->rows, n->n_out, n_in, 1, (const T *)a->in[0], n_in,
                                  params + n->w_off, n->n_out, 0, (T *)a->out, n->n_out);
}

static void FM_CAT(dense_backward, SFX)(const fm_bwd *a) {
    const fm_node *n = a->node;
    const T *params = (const T *)a->params;
    T *grads = (T *)a->grads;
    const T *g = (const T *)a->dout, *in = (const T *)a->in[0];
    const int64_t n_in = a->in_width[0], n_out = n->n_out, rows = a->rows;
    const T beta_w = a->accumulate_weights ? 1 : 0;
    FM_CAT(fm_gemm, SFX)(1, 0, n_in, n_out, rows, 1, in, n_in, g, n_out, beta_w, grads + n->w_off, n_out);
    if (n->b_off >= 0) {
        T *db = grads + n->b_off;
        if (!a->accumulate_weights) memset(db, 0, (size_t)n_out * sizeof(T));
        for (int64_t r = 0; r < rows; r++) {
            const T *gr = g + r * n_out;
            for (int64_t j = 0; j < n_out; j++) db[j] += gr[j];
        }
    }
    T *din = (T *)a->din[0];
    if (!din) return;
    const T beta = a->din_add[0] ? 1 : 0;
    const fm_act_ref *p = &a->din_act[0];
    if (p->act >= 0) {   /* dX = (g @ W^T) * act'(producer), tile by tile */
        FM_CAT(fm_gemm_act_grad, SFX)(p->act, p->alpha, (const T *)p->A, (const T *)p->Z, 0, 1, rows, n_in,
                                      n_out, 1, g, n_out, params + n->w_off, n_out, beta, din, n_in);
        a->din_pre[0] = 1;
    } else {
        FM_CAT(fm_gemm, SFX)(0, 1, rows, n_in, n_out, 1, g, n_out, params + n->w_off, n_out, beta, din, n_in);
    }
}

#endif
