/* Batch normalization over the batch axis of a (rows, n) block.  Template
 * body (T, SFX).  Keras 3 semantics: biased batch variance; moving statistics
 * updated as  moving = moving * momentum + batch_stat * (1 - momentum);
 * inference uses the moving statistics.  gamma/beta may be absent (NULL). */

/* Training forward: Y = gamma * xhat + beta with batch statistics.  Keeps xhat
 * (rows x n) and inv_std (n) for the backward pass; updates the moving
 * statistics when mm/mv are given. */
static void FM_CAT(bn_forward_train, SFX)(const T *X, T *Y, T *xhat, T *inv_std, const T *gamma,
                                          const T *beta, T *mm, T *mv, double momentum,
                                          double epsilon, int64_t rows, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double mean = 0, var = 0;
        for (int64_t r = 0; r < rows; r++) mean += (double)X[r * n + j];
        mean /= (double)rows;
        for (int64_t r = 0; r < rows; r++) { double d = (double)X[r * n + j] - mean; var += d * d; }
        var /= (double)rows;
        const T is = (T)(1.0 / sqrt(var + epsilon));
        const T mu = (T)mean;
        const T g = gamma ? gamma[j] : (T)1, b = beta ? beta[j] : (T)0;
        inv_std[j] = is;
        for (int64_t r = 0; r < rows; r++) {
            T xh = (X[r * n + j] - mu) * is;
            xhat[r * n + j] = xh;
            Y[r * n + j] = g * xh + b;
        }
        if (mm) mm[j] = (T)((double)mm[j] * momentum + mean * (1.0 - momentum));
        if (mv) mv[j] = (T)((double)mv[j] * momentum + var * (1.0 - momentum));
    }
}

static void FM_CAT(bn_forward_infer, SFX)(const T *X, T *Y, const T *gamma, const T *beta,
                                          const T *mm, const T *mv, double epsilon,
                                          int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        const T *x = X + r * n;
        T *y = Y + r * n;
        for (int64_t j = 0; j < n; j++) {
            T is = (T)1 / sqrt(mv[j] + (T)epsilon);
            y[j] = (gamma ? gamma[j] : (T)1) * (x[j] - mm[j]) * is + (beta ? beta[j] : (T)0);
        }
    }
}

/* Backward through the training-mode transform: writes dgamma/dbeta (when
 * present) and dX (may alias dY). */
static void FM_CAT(bn_backward, SFX)(const T *dY, const T *xhat, const T *inv_std, const T *gamma,
                                     T *dgamma, T *dbeta, T *dX, int64_t rows, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double sdy = 0, sdyx = 0;
        for (int64_t r = 0; r < rows; r++) {
            sdy += (double)dY[r * n + j];
            sdyx += (double)dY[r * n + j] * (double)xhat[r * n + j];
        }
        if (dgamma) dgamma[j] = (T)sdyx;
        if (dbeta) dbeta[j] = (T)sdy;
        if (!dX) continue;
        const T k = (gamma ? gamma[j] : (T)1) * inv_std[j] / (T)rows;
        const T m1 = (T)sdy, m2 = (T)sdyx;
        for (int64_t r = 0; r < rows; r++)
            dX[r * n + j] = k * ((T)rows * dY[r * n + j] - m1 - xhat[r * n + j] * m2);
    }
}
