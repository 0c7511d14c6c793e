/* LayerNormalization and UnitNormalization over groups of `param` consecutive
 * features of a row (the sample's last axis; a flat sample is one group).
 *
 * layer_normalization: y = gamma * (x - mean) / sqrt(var + epsilon) + beta with
 *   the group's mean and biased variance (keras.layers.LayerNormalization,
 *   torch's layer_norm); gamma (w_off) and beta (b_off), `param` values each,
 *   may be absent.  The workspace keeps xhat (rows x n) and 1/std per group.
 *   Backward: with dxhat = dy * gamma, over a group of p features,
 *   dx = (1/std) / p * (p * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)).
 * unit_normalization: y = x * min(1 / sqrt(sum(x^2)), 1e12)
 *   (keras.ops.normalize with order 2 and epsilon 1e-12); backward
 *   dx = inv * (dy - y * sum(dy * y)) where the bound is not reached, dy * 1e12
 *   where it is. */
#ifndef FM_KIND_BODY
#define FM_UNIT_NORM_MAX_INV 1e12
#define FM_KIND_FILE "layer_norm.c"
#include "instantiate.h"

static int group_check(const fm_node *n, const int64_t *in_width) {
    return n->n_inputs == 1 && fm_same_width(n, in_width) && n->param > 0 && n->n_out % n->param == 0;
}

static int layer_norm_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    return group_check(n, in_width) && n->epsilon >= 0 && fm_segment_ok(n->w_off, n->param, n_params) &&
           fm_segment_ok(n->b_off, n->param, n_params) ? FM_OK : FM_ERR_ARG;
}

static int64_t layer_norm_workspace(const fm_node *n, int64_t rows) {
    return rows * n->n_out + rows * (n->n_out / n->param);
}

static int unit_norm_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    (void)n_params;
    return group_check(n, in_width) ? FM_OK : FM_ERR_ARG;
}

const fm_kind fm_kind_layer_norm = {
    "layer_normalization", 0, 0, 1, layer_norm_check, layer_norm_workspace,
    {layer_norm_forward_f32, layer_norm_forward_f64}, {layer_norm_backward_f32, layer_norm_backward_f64},
};

const fm_kind fm_kind_unit_norm = {
    "unit_normalization", 0, 0, 0, unit_norm_check, NULL,
    {unit_norm_forward_f32, unit_norm_forward_f64}, {unit_norm_backward_f32, unit_norm_backward_f64},
};

#else

static void FM_CAT(layer_norm_forward, SFX)(const fm_fwd *a) {
    const fm_node *nd = a->node;
    const int64_t p = nd->param, groups = a->rows * (nd->n_out / p);
    const T *params = (const T *)a->params, *X = (const T *)a->in[0];
    const T *gamma = nd->w_off >= 0 ? params + nd->w_off : NULL, *beta = nd->b_off >= 0 ? params + nd->b_off : NULL;
    T *Y = (T *)a->out;
    T *xhat = a->ws ? (T *)a->ws : NULL, *inv_std = xhat ? xhat + a->rows * nd->n_out : NULL;
    for (int64_t g = 0; g < groups; g++) {
        const T *x = X + g * p;
        T *y = Y + g * p;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < p; j++) mean += (double)x[j];
        mean /= (double)p;
        for (int64_t j = 0; j < p; j++) { const double d = (double)x[j] - mean; var += d * d; }
        var /= (double)p;
        const T is = (T)(1.0 / sqrt(var + nd->epsilon)), mu = (T)mean;
        if (inv_std) inv_std[g] = is;
        for (int64_t j = 0; j < p; j++) {
            const T xh = (x[j] - mu) * is;
            if (xhat) xhat[g * p + j] = xh;
            y[j] = (gamma ? gamma[j] : (T)1) * xh + (beta ? beta[j] : (T)0);
        }
    }
}

static void FM_CAT(layer_norm_backward, SFX)(const fm_bwd *a) {
    const fm_node *nd = a->node;
    const int64_t p = nd->param, groups = a->rows * (nd->n_out / p);
    const T *params = (const T *)a->params, *dY = (const T *)a->dout;
    const T *gamma = nd->w_off >= 0 ? params + nd->w_off : NULL;
    const T *xhat = (const T *)a->ws, *inv_std = xhat + a->rows * nd->n_out;
    T *grads = (T *)a->grads;
    T *dg = nd->w_off >= 0 ? grads + nd->w_off : NULL, *db = nd->b_off >= 0 ? grads + nd->b_off : NULL;
    T *dX = (T *)a->din[0];
    const int add = a->din_add[0];
    if (!a->accumulate_weights) {
        if (dg) memset(dg, 0, (size_t)p * sizeof(T));
        if (db) memset(db, 0, (size_t)p * sizeof(T));
    }
    for (int64_t g = 0; g < groups; g++) {
        const T *dy = dY + g * p, *xh = xhat + g * p;
        double s1 = 0, s2 = 0;
        for (int64_t j = 0; j < p; j++) {
            if (dg) dg[j] += dy[j] * xh[j];
            if (db) db[j] += dy[j];
            const double dxh = (double)dy[j] * (gamma ? (double)gamma[j] : 1.0);
            s1 += dxh;
            s2 += dxh * (double)xh[j];
        }
        if (!dX) continue;
        const T k = inv_std[g] / (T)p, m1 = (T)s1, m2 = (T)s2;
        T *dx = dX + g * p;
        for (int64_t j = 0; j < p; j++) {
            const T dxh = dy[j] * (gamma ? gamma[j] : (T)1);
            const T v = k * ((T)p * dxh - m1 - xh[j] * m2);
            dx[j] = add ? dx[j] + v : v;
        }
    }
}

/* min(1 / sqrt(sum(x^2)), 1e12) of one group, NaN where the group holds one. */
static double FM_CAT(unit_norm_inv, SFX)(const T *x, int64_t p) {
    double ss = 0;
    for (int64_t j = 0; j < p; j++) ss += (double)x[j] * (double)x[j];
    const double inv = 1.0 / sqrt(ss);
    return inv > FM_UNIT_NORM_MAX_INV ? FM_UNIT_NORM_MAX_INV : inv;   /* (a NaN row stays NaN) */
}

static void FM_CAT(unit_norm_forward, SFX)(const fm_fwd *a) {
    const int64_t p = a->node->param, groups = a->rows * (a->node->n_out / p);
    const T *X = (const T *)a->in[0];
    T *Y = (T *)a->out;
    for (int64_t g = 0; g < groups; g++) {
        const T inv = (T)FM_CAT(unit_norm_inv, SFX)(X + g * p, p);
        for (int64_t j = 0; j < p; j++) Y[g * p + j] = X[g * p + j] * inv;
    }
}

static void FM_CAT(unit_norm_backward, SFX)(const fm_bwd *a) {
    T *dX = (T *)a->din[0];
    if (!dX) return;
    const int64_t p = a->node->param, groups = a->rows * (a->node->n_out / p);
    const T *X = (const T *)a->in[0], *Y = (const T *)a->out, *dY = (const T *)a->dout;
    const int add = a->din_add[0];
    for (int64_t g = 0; g < groups; g++) {
        const T *x = X + g * p, *y = Y + g * p, *dy = dY + g * p;
        T *dx = dX + g * p;
        const double inv_d = FM_CAT(unit_norm_inv, SFX)(x, p);
        const int bounded = inv_d >= FM_UNIT_NORM_MAX_INV;
        const T inv = (T)inv_d;
        double dot = 0;
        if (!bounded) for (int64_t j = 0; j < p; j++) dot += (double)dy[j] * (double)y[j];
        for (int64_t j = 0; j < p; j++) {
            const T v = bounded ? dy[j] * inv : inv * (dy[j] - y[j] * (T)dot);
            dx[j] = add ? dx[j] + v : v;
        }
    }
}

#endif
