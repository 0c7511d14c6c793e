/* ActivityRegularization: out = in; it adds to the loss the penalty
 * (l1 * sum|out| + l2 * sum out^2) / rows of its batch (Keras 3 divides a layer's
 * activity penalty by the batch size), l1 in `rate`, l2 in `momentum`.
 * Backward: din = dout + (l1 * sign(out) + 2 * l2 * out) / rows.  The identity at
 * inference (evaluate still counts its penalty). */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "activity_reg.c"
#include "instantiate.h"

static int activity_reg_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    (void)n_params;
    return n->n_inputs == 1 && fm_same_width(n, in_width) && n->rate >= 0 && n->momentum >= 0 ? FM_OK
                                                                                               : FM_ERR_ARG;
}

const fm_kind fm_kind_activity_reg = {
    "activity_regularization", 0, 1, 0, activity_reg_check, NULL,
    {activity_reg_forward_f32, activity_reg_forward_f64}, {activity_reg_backward_f32, activity_reg_backward_f64},
    {activity_reg_penalty_f32, activity_reg_penalty_f64},
};

#else

static void FM_CAT(activity_reg_forward, SFX)(const fm_fwd *a) {
    memcpy(a->out, a->in[0], (size_t)(a->rows * a->node->n_out) * sizeof(T));
}

static double FM_CAT(activity_reg_penalty, SFX)(const fm_node *nd, const void *out, int64_t rows) {
    const T *x = (const T *)out;
    const int64_t n = rows * nd->n_out;
    double s1 = 0, s2 = 0;
    if (nd->rate != 0) for (int64_t i = 0; i < n; i++) s1 += fabs((double)x[i]);
    if (nd->momentum != 0) for (int64_t i = 0; i < n; i++) s2 += (double)x[i] * (double)x[i];
    return rows > 0 ? (nd->rate * s1 + nd->momentum * s2) / (double)rows : 0.0;
}

static void FM_CAT(activity_reg_backward, SFX)(const fm_bwd *a) {
    T *din = (T *)a->din[0];
    if (!din) return;
    const fm_node *nd = a->node;
    const T *g = (const T *)a->dout, *x = (const T *)a->out;
    const int64_t n = a->rows * nd->n_out;
    const T k1 = (T)(nd->rate / (double)a->rows), k2 = (T)(2.0 * nd->momentum / (double)a->rows);
    const int add = a->din_add[0];
    for (int64_t i = 0; i < n; i++) {
        const T d = g[i] + k1 * (T)((x[i] > 0) - (x[i] < 0)) + k2 * x[i];
        din[i] = add ? din[i] + d : d;
    }
}

#endif
