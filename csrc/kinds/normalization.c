/* Normalization (keras.layers.Normalization over the last axis) and Rescaling:
 * fixed per-feature affine maps, no trainable weights.  Both read two
 * non-trainable segments of `param` values (feature j of a row uses entry
 * j % param, so a per-last-axis vector repeats along a row of a multi-axis
 * sample).
 *
 * normalization: mean at w_off, variance at b_off, s = max(sqrt(var), epsilon)
 *   (epsilon is Keras's backend.epsilon(), 1e-7); out = (x - mean) / s, or
 *   with rate = 1 (invert=True) out = mean + x * s.
 * rescaling: scale at w_off, offset at b_off; out = x * scale + offset.
 * d out / d x is 1 / s, s, or scale. */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "normalization.c"
#include "instantiate.h"

static int affine_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    return n->n_inputs == 1 && fm_same_width(n, in_width) && n->param > 0 && n->n_out % n->param == 0 &&
           n->w_off >= 0 && n->b_off >= 0 && fm_segment_ok(n->w_off, n->param, n_params) &&
           fm_segment_ok(n->b_off, n->param, n_params) ? FM_OK : FM_ERR_ARG;
}

static int normalization_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    return (n->rate == 0 || n->rate == 1) && n->epsilon >= 0 ? affine_check(n, in_width, n_params) : FM_ERR_ARG;
}

const fm_kind fm_kind_normalization = {
    "normalization", 0, 0, 0, normalization_check, NULL,
    {normalization_forward_f32, normalization_forward_f64}, {normalization_backward_f32, normalization_backward_f64},
};

const fm_kind fm_kind_rescaling = {
    "rescaling", 0, 0, 0, affine_check, NULL,
    {rescaling_forward_f32, rescaling_forward_f64}, {rescaling_backward_f32, rescaling_backward_f64},
};

#else

/* Normalization's s = max(sqrt(var), epsilon) (a NaN variance stays NaN). */
static T FM_CAT(normalization_std, SFX)(const fm_node *nd, const T *params, int64_t j) {
    const T var = params[nd->b_off + j], s = sqrt(var);
    return var != var || s >= (T)nd->epsilon ? s : (T)nd->epsilon;
}

static void FM_CAT(affine_apply, SFX)(const fm_fwd *a, int normalization) {
    const fm_node *nd = a->node;
    const int64_t n = nd->n_out, period = nd->param;
    const T *params = (const T *)a->params, *x = (const T *)a->in[0];
    T *out = (T *)a->out;
    const int divide = normalization && nd->rate == 0;
    for (int64_t j = 0; j < period; j++) {
        /* divide: (x - mean) / s, as Keras computes it; else x * m + c */
        const T m = normalization ? FM_CAT(normalization_std, SFX)(nd, params, j) : params[nd->w_off + j];
        const T c = params[(normalization ? nd->w_off : nd->b_off) + j];
        for (int64_t r = 0; r < a->rows; r++)
            for (int64_t e = r * n + j; e < (r + 1) * n; e += period)
                out[e] = divide ? (x[e] - c) / m : (normalization ? c + x[e] * m : x[e] * m + c);
    }
}

static void FM_CAT(affine_grad, SFX)(const fm_bwd *a, int normalization) {
    const fm_node *nd = a->node;
    T *din = (T *)a->din[0];
    if (!din) return;
    const int64_t n = nd->n_out, period = nd->param;
    const T *params = (const T *)a->params, *g = (const T *)a->dout;
    const int add = a->din_add[0], divide = normalization && nd->rate == 0;
    for (int64_t j = 0; j < period; j++) {
        const T m = normalization ? FM_CAT(normalization_std, SFX)(nd, params, j) : params[nd->w_off + j];
        for (int64_t r = 0; r < a->rows; r++)
            for (int64_t e = r * n + j; e < (r + 1) * n; e += period) {
                const T d = divide ? g[e] / m : g[e] * m;
                din[e] = add ? din[e] + d : d;
            }
    }
}

static void FM_CAT(normalization_forward, SFX)(const fm_fwd *a) { FM_CAT(affine_apply, SFX)(a, 1); }
static void FM_CAT(normalization_backward, SFX)(const fm_bwd *a) { FM_CAT(affine_grad, SFX)(a, 1); }
static void FM_CAT(rescaling_forward, SFX)(const fm_fwd *a) { FM_CAT(affine_apply, SFX)(a, 0); }
static void FM_CAT(rescaling_backward, SFX)(const fm_bwd *a) { FM_CAT(affine_grad, SFX)(a, 0); }

#endif
