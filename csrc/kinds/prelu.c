/* PReLU: out = x where x > 0, alpha * x elsewhere, with trainable slopes
 * (alpha, `param` values at w_off; feature j of a row uses alpha[j % param],
 * which is keras.layers.PReLU's broadcast when leading axes are shared).  d out / d x is 1 above 0, alpha below and 0 at 0, as
 * Keras computes it (relu(x) - alpha * relu(-x)); d out / d alpha = min(x, 0). */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "prelu.c"
#include "instantiate.h"

static int prelu_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    return n->n_inputs == 1 && fm_same_width(n, in_width) && n->w_off >= 0 && n->param > 0 &&
           n->n_out % n->param == 0 && fm_segment_ok(n->w_off, n->param, n_params) ? FM_OK : FM_ERR_ARG;
}

const fm_kind fm_kind_prelu = {
    "prelu", 0, 0, 1, prelu_check, NULL,
    {prelu_forward_f32, prelu_forward_f64}, {prelu_backward_f32, prelu_backward_f64},
};

#else

static void FM_CAT(prelu_forward, SFX)(const fm_fwd *a) {
    const int64_t n = a->node->n_out, period = a->node->param;
    const T *alpha = (const T *)a->params + a->node->w_off, *x = (const T *)a->in[0];
    T *out = (T *)a->out;
    for (int64_t r = 0; r < a->rows; r++)
        for (int64_t j0 = 0; j0 < n; j0 += period)
            for (int64_t j = 0; j < period; j++) {
                const T v = x[r * n + j0 + j];
                out[r * n + j0 + j] = v > 0 ? v : alpha[j] * v;
            }
}

static void FM_CAT(prelu_backward, SFX)(const fm_bwd *a) {
    const int64_t n = a->node->n_out, period = a->node->param;
    const T *alpha = (const T *)a->params + a->node->w_off, *x = (const T *)a->in[0];
    const T *g = (const T *)a->dout;
    T *dalpha = (T *)a->grads + a->node->w_off, *din = (T *)a->din[0];
    if (!a->accumulate_weights) memset(dalpha, 0, (size_t)period * sizeof(T));
    for (int64_t r = 0; r < a->rows; r++)
        for (int64_t e = r * n; e < (r + 1) * n; e += period)
            for (int64_t j = 0; j < period; j++) {
                const T v = x[e + j], gv = g[e + j];
                if (v < 0) dalpha[j] += gv * v;
                if (din) {
                    const T d = v > 0 ? gv : v < 0 ? gv * alpha[j] : (T)0;
                    din[e + j] = a->din_add[0] ? din[e + j] + d : d;
                }
            }
}

#endif
