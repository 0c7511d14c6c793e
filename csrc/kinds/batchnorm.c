/* BatchNormalization over the batch axis of a (rows, n) block, Keras 3
 * semantics: biased batch variance; moving statistics updated as
 * moving = moving * momentum + batch_stat * (1 - momentum); inference (and a
 * frozen layer, in training too) uses the moving statistics.  gamma at w_off
 * and beta at b_off may be absent; moving mean at aux_off and variance at
 * var_off are not trainable.  The workspace keeps xhat (rows x n) and 1/std (n). */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "batchnorm.c"
#include "instantiate.h"

static int batchnorm_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    if (n->n_inputs != 1 || !fm_same_width(n, in_width) || n->aux_off < 0 || n->var_off < 0 ||
        !(n->epsilon > 0)) return FM_ERR_ARG;
    return fm_segment_ok(n->w_off, n->n_out, n_params) && fm_segment_ok(n->b_off, n->n_out, n_params) &&
           fm_segment_ok(n->aux_off, n->n_out, n_params) && fm_segment_ok(n->var_off, n->n_out, n_params)
           ? FM_OK : FM_ERR_ARG;
}

static int64_t batchnorm_workspace(const fm_node *n, int64_t rows) { return (rows + 1) * n->n_out; }

const fm_kind fm_kind_batchnorm = {
    "batch_normalization", 0, 0, 1, batchnorm_check, batchnorm_workspace,
    {batchnorm_forward_f32, batchnorm_forward_f64}, {batchnorm_backward_f32, batchnorm_backward_f64},
};

#else

static void FM_CAT(batchnorm_forward, SFX)(const fm_fwd *a) {
    const fm_node *nd = a->node;
    T *params = (T *)a->params;
    const T *X = (const T *)a->in[0];
    T *Y = (T *)a->out;
    const int64_t rows = a->rows, n = nd->n_out;
    const T *gamma = nd->w_off >= 0 ? params + nd->w_off : NULL;
    const T *beta = nd->b_off >= 0 ? params + nd->b_off : NULL;
    T *mm = params + nd->aux_off, *mv = params + nd->var_off;
    if (!a->training || nd->frozen) {
        for (int64_t r = 0; r < rows; r++) {
            const T *x = X + r * n;
            T *y = Y + r * n;
            for (int64_t j = 0; j < n; j++) {
                const T is = (T)1 / sqrt(mv[j] + (T)nd->epsilon);
                y[j] = (gamma ? gamma[j] : (T)1) * (x[j] - mm[j]) * is + (beta ? beta[j] : (T)0);
            }
        }
        return;
    }
    T *xhat = (T *)a->ws, *inv_std = xhat + rows * n;
    for (int64_t j = 0; j < n; j++) {
        double mean = 0, var = 0;
        for (int64_t r = 0; r < rows; r++) mean += (double)X[r * n + j];
        mean /= (double)rows;
        for (int64_t r = 0; r < rows; r++) { const double d = (double)X[r * n + j] - mean; var += d * d; }
        var /= (double)rows;
        const T is = (T)(1.0 / sqrt(var + nd->epsilon));
        const T mu = (T)mean;
        const T g = gamma ? gamma[j] : (T)1, b = beta ? beta[j] : (T)0;
        inv_std[j] = is;
        for (int64_t r = 0; r < rows; r++) {
            const T xh = (X[r * n + j] - mu) * is;
            xhat[r * n + j] = xh;
            Y[r * n + j] = g * xh + b;
        }
        if (a->update_stats) {
            mm[j] = (T)((double)mm[j] * nd->momentum + mean * (1.0 - nd->momentum));
            mv[j] = (T)((double)mv[j] * nd->momentum + var * (1.0 - nd->momentum));
        }
    }
}

static void FM_CAT(batchnorm_backward, SFX)(const fm_bwd *a) {
    const fm_node *nd = a->node;
    const T *params = (const T *)a->params;
    T *grads = (T *)a->grads;
    const T *dY = (const T *)a->dout, *X = (const T *)a->in[0];
    const int64_t rows = a->rows, n = nd->n_out;
    const T *gamma = nd->w_off >= 0 ? params + nd->w_off : NULL;
    T *dg = nd->w_off >= 0 ? grads + nd->w_off : NULL, *db = nd->b_off >= 0 ? grads + nd->b_off : NULL;
    T *dX = (T *)a->din[0];
    const int add = a->din_add[0], acc = a->accumulate_weights;
    if (a->training && !nd->frozen) {
        const T *xhat = (const T *)a->ws, *inv_std = xhat + rows * n;
        for (int64_t j = 0; j < n; j++) {
            double sdy = 0, sdyx = 0;
            for (int64_t r = 0; r < rows; r++) {
                sdy += (double)dY[r * n + j];
                sdyx += (double)dY[r * n + j] * (double)xhat[r * n + j];
            }
            if (dg) dg[j] = acc ? dg[j] + (T)sdyx : (T)sdyx;
            if (db) db[j] = acc ? db[j] + (T)sdy : (T)sdy;
            if (!dX) continue;
            const T k = (gamma ? gamma[j] : (T)1) * inv_std[j] / (T)rows;
            const T m1 = (T)sdy, m2 = (T)sdyx;
            for (int64_t r = 0; r < rows; r++) {
                const T v = k * ((T)rows * dY[r * n + j] - m1 - xhat[r * n + j] * m2);
                dX[r * n + j] = add ? dX[r * n + j] + v : v;
            }
        }
        return;
    }
    /* inference mode: y = gamma * (x - mm) / sqrt(mv + eps) + beta */
    const T *mm = params + nd->aux_off, *mv = params + nd->var_off;
    if (dg && !acc) memset(dg, 0, (size_t)n * sizeof(T));
    if (db && !acc) memset(db, 0, (size_t)n * sizeof(T));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) {
            const T is = (T)1 / sqrt(mv[j] + (T)nd->epsilon);
            const T dy = dY[r * n + j];
            if (dg) dg[j] += dy * (X[r * n + j] - mm[j]) * is;
            if (db) db[j] += dy;
            if (dX) {
                const T v = dy * (gamma ? gamma[j] : (T)1) * is;
                dX[r * n + j] = add ? dX[r * n + j] + v : v;
            }
        }
}

#endif
