/* Losses: per-row value and gradient in one pass.  Template body (T, SFX).
 *
 * Each row's loss l_r is reduced over the last axis as Keras does (mean for
 * regression, hinge and binary cross-entropy; sum for categorical ones).  The
 * function adds sum_r w_r * l_r to *loss_sum and writes
 * dZ[r] = grad_scale * w_r * dl_r/d(.) for every row.
 *
 * Cross-entropies are always computed in the stable fused form: with a
 * softmax (sigmoid) output layer and from_logits=False, the gradient is taken
 * straight to the pre-activation Z as p - y, and the loss uses log-sum-exp of
 * Z; *dz_is_pre_activation is then set so the caller skips the activation's
 * derivative.  With from_logits=True the output itself is treated as logits.
 * Otherwise probabilities are clipped to [eps, 1 - eps] as in Keras.
 */
#define FM_EPS 1e-7

static inline T FM_CAT(sign, SFX)(T x) { return (T)((x > 0) - (x < 0)); }

/* Cross-entropy over logits x with targets y (already smoothed); the
 * softmax's exponentials are taken once, into g. */
static inline T FM_CAT(ce_logits_row, SFX)(const T *x, const T *y, int64_t label, int64_t C,
                                           T scale, T *restrict g) {
    T mx = x[0];
    for (int64_t j = 1; j < C; j++) mx = x[j] > mx ? x[j] : mx;
    for (int64_t j = 0; j < C; j++) g[j] = FM_CAT(exp_nonpos, SFX)(x[j] - mx);
    T s = 0;
    for (int64_t j = 0; j < C; j++) s += g[j];
    const T lse = mx + log(s);
    const T inv = (T)1 / s;
    if (y) {
        T sy = 0, l = 0;
        for (int64_t j = 0; j < C; j++) { sy += y[j]; l += y[j] * (lse - x[j]); }
        for (int64_t j = 0; j < C; j++) g[j] = scale * (sy * g[j] * inv - y[j]);
        return l;
    }
    for (int64_t j = 0; j < C; j++) g[j] = scale * g[j] * inv;
    g[label] -= scale;
    return lse - x[label];
}

/* Keras's probability path: normalise by the row's sum (whatever its sign, as
 * Keras does), clip, -sum y log q.  Only a sum of exactly 0, where Keras
 * divides by zero, is taken as eps. */
static inline T FM_CAT(ce_probs_row, SFX)(const T *p, const T *y, int64_t label, int64_t C,
                                          T scale, T *g) {
    const T eps = (T)FM_EPS;
    T s = 0;
    for (int64_t j = 0; j < C; j++) s += p[j];
    if (s == 0) s = eps;
    T l = 0, sy_free = 0;
    for (int64_t j = 0; j < C; j++) {
        T yj = y ? y[j] : (T)(j == label);
        T q = p[j] / s;
        int clipped = !(q > eps && q < (T)1 - eps);
        if (q < eps) q = eps;
        if (q > (T)1 - eps) q = (T)1 - eps;
        l -= yj * log(q);
        g[j] = clipped ? (T)0 : -yj / p[j];
        if (!clipped) sy_free += yj;
    }
    for (int64_t j = 0; j < C; j++) g[j] = scale * (g[j] + sy_free / s);
    return l;
}

FM_CLONES int FM_CAT(fm_loss_forward_backward, SFX)(const fm_loss_spec *loss, int act, const T *A__bo,
                                          const T *Z__bo, const T *Y__bo, const int64_t *y__b,
                                          const T *w__b, int64_t n_rows, int64_t n_out,
                                          double grad_scale, double *loss_sum, T *dZ__bo,
                                          int *dz_is_pre_activation) {
    const int64_t C = n_out;
    const T eps = (T)FM_EPS;
    const T ls = (T)loss->label_smoothing;
    const T delta = (T)loss->delta;
    const int kind = loss->kind;
    int fused = 0;
    if (kind == FM_LOSS_BCE && !loss->from_logits && act == FM_ACT_SIGMOID && Z__bo) fused = 1;
    if ((kind == FM_LOSS_CCE || kind == FM_LOSS_SCCE) && !loss->from_logits &&
        act == FM_ACT_SOFTMAX && Z__bo) fused = 1;
    *dz_is_pre_activation = fused;
    T ybuf_small[64];
    T *ybuf = NULL;
    if ((kind == FM_LOSS_CCE || kind == FM_LOSS_BCE) && ls != 0) {
        ybuf = C <= 64 ? ybuf_small : (T *)malloc((size_t)C * sizeof(T));
        if (!ybuf) return FM_ERR_NOMEM;
    }
    double total = 0;
    int status = FM_OK;
    if (kind == FM_LOSS_BCE && (fused || loss->from_logits) && C == 1 && !ybuf) {
        /* One logit per row (binary classification): the rows' exponentials and
         * logarithms as one vectorized pass (exp_nonpos, log1p_unit), the same
         * arithmetic as the general loop below, which has l = term / 1 per row. */
        const T *x = fused ? Z__bo : A__bo;
        T part[256];
        for (int64_t r0 = 0; r0 < n_rows; r0 += 256) {
            const int64_t nr = n_rows - r0 < 256 ? n_rows - r0 : 256;
            const T *restrict xr = x + r0, *restrict yr = Y__bo + r0;
            const T *restrict wr = w__b ? w__b + r0 : NULL;
            T *restrict gr = dZ__bo + r0;
            for (int64_t i = 0; i < nr; i++) {
                const T xj = xr[i], yj = yr[i], w = wr ? wr[i] : (T)1;
                const T e = FM_CAT(exp_nonpos, SFX)(-fabs(xj));
                const T term = (xj > 0 ? xj : (T)0) - xj * yj + FM_CAT(log1p_unit, SFX)(e);
                part[i] = w * term;
                gr[i] = (T)grad_scale * w * ((xj >= 0 ? (T)1 : e) / ((T)1 + e) - yj);
            }
            for (int64_t i = 0; i < nr; i++) total += (double)part[i];
        }
        *loss_sum += total;
        return status;
    }
    for (int64_t r = 0; r < n_rows; r++) {
        const T *p = A__bo + r * C;
        const T *y = Y__bo ? Y__bo + r * C : NULL;
        const T w = w__b ? w__b[r] : (T)1;
        const T sc = (T)grad_scale * w;
        T *g = dZ__bo + r * C;
        int64_t label = -1;
        if (kind == FM_LOSS_SCCE) {
            label = y__b[r];
            if (label < 0 || label >= C) { status = FM_ERR_LABEL; label = 0; }
        }
        if (ybuf) {
            const T off = kind == FM_LOSS_CCE ? ls / (T)C : ls * (T)0.5;
            for (int64_t j = 0; j < C; j++) ybuf[j] = y[j] * ((T)1 - ls) + off;
            y = ybuf;
        }
        T l = 0;
        switch (kind) {
        case FM_LOSS_MSE:
            for (int64_t j = 0; j < C; j++) { T e = p[j] - y[j]; l += e * e; g[j] = sc * 2 * e / (T)C; }
            l /= (T)C; break;
        case FM_LOSS_MAE:
            for (int64_t j = 0; j < C; j++) { T e = p[j] - y[j]; l += fabs(e); g[j] = sc * FM_CAT(sign, SFX)(e) / (T)C; }
            l /= (T)C; break;
        case FM_LOSS_MAPE:
            for (int64_t j = 0; j < C; j++) {
                T e = p[j] - y[j], den = fabs(y[j]) > eps ? fabs(y[j]) : eps;
                l += fabs(e) / den; g[j] = sc * (T)100 * FM_CAT(sign, SFX)(e) / den / (T)C;
            }
            l = (T)100 * l / (T)C; break;
        case FM_LOSS_MSLE:
            for (int64_t j = 0; j < C; j++) {
                T pc = p[j] > eps ? p[j] : eps, yc = y[j] > eps ? y[j] : eps;
                T e = log(pc + 1) - log(yc + 1);
                l += e * e; g[j] = p[j] > eps ? sc * 2 * e / (pc + 1) / (T)C : (T)0;
            }
            l /= (T)C; break;
        case FM_LOSS_HUBER:
            for (int64_t j = 0; j < C; j++) {
                T e = p[j] - y[j], ae = fabs(e);
                if (ae <= delta) { l += (T)0.5 * e * e; g[j] = sc * e / (T)C; }
                else { l += delta * ae - (T)0.5 * delta * delta; g[j] = sc * delta * FM_CAT(sign, SFX)(e) / (T)C; }
            }
            l /= (T)C; break;
        case FM_LOSS_LOG_COSH:
            for (int64_t j = 0; j < C; j++) {
                T e = p[j] - y[j];
                l += e + FM_CAT(softplus, SFX)((T)-2 * e) - (T)0.69314718055994530942;
                g[j] = sc * tanh(e) / (T)C;
            }
            l /= (T)C; break;
        case FM_LOSS_BCE: {
            const T *x = fused ? Z__bo + r * C : p;
            if (fused || loss->from_logits) {
                for (int64_t j = 0; j < C; j++) {
                    T xj = x[j];
                    l += (xj > 0 ? xj : (T)0) - xj * y[j] + FM_CAT(log1p_unit, SFX)(FM_CAT(exp_nonpos, SFX)(-fabs(xj)));
                    g[j] = sc * (FM_CAT(sigmoid, SFX)(xj) - y[j]) / (T)C;
                }
            } else {
                for (int64_t j = 0; j < C; j++) {
                    T q = p[j];
                    int clipped = !(q > eps && q < (T)1 - eps);
                    if (q < eps) q = eps;
                    if (q > (T)1 - eps) q = (T)1 - eps;
                    l -= y[j] * log(q) + ((T)1 - y[j]) * log((T)1 - q);
                    g[j] = clipped ? (T)0 : sc * (q - y[j]) / (q * ((T)1 - q)) / (T)C;
                }
            }
            l /= (T)C; break;
        }
        case FM_LOSS_CCE:
        case FM_LOSS_SCCE:
            if (fused) l = FM_CAT(ce_logits_row, SFX)(Z__bo + r * C, y, label, C, sc, g);
            else if (loss->from_logits) l = FM_CAT(ce_logits_row, SFX)(p, y, label, C, sc, g);
            else l = FM_CAT(ce_probs_row, SFX)(p, y, label, C, sc, g);
            break;
        case FM_LOSS_HINGE:
            for (int64_t j = 0; j < C; j++) {
                T m = (T)1 - y[j] * p[j];
                l += m > 0 ? m : (T)0; g[j] = m > 0 ? -sc * y[j] / (T)C : (T)0;
            }
            l /= (T)C; break;
        case FM_LOSS_SQUARED_HINGE:
            for (int64_t j = 0; j < C; j++) {
                T m = (T)1 - y[j] * p[j];
                m = m > 0 ? m : (T)0;
                l += m * m; g[j] = -sc * 2 * m * y[j] / (T)C;
            }
            l /= (T)C; break;
        case FM_LOSS_CATEGORICAL_HINGE: {
            T pos = 0, neg = -INFINITY;
            int64_t jn = 0;
            for (int64_t j = 0; j < C; j++) {
                pos += y[j] * p[j];
                T v = ((T)1 - y[j]) * p[j];
                if (v > neg) { neg = v; jn = j; }
            }
            T m = neg - pos + (T)1;
            l = m > 0 ? m : (T)0;
            for (int64_t j = 0; j < C; j++) g[j] = m > 0 ? -sc * y[j] : (T)0;
            if (m > 0) g[jn] += sc * ((T)1 - y[jn]);
            break;
        }
        case FM_LOSS_KLD:
            for (int64_t j = 0; j < C; j++) {
                T yc = y[j] < eps ? eps : (y[j] > 1 ? (T)1 : y[j]);
                T pc = p[j] < eps ? eps : (p[j] > 1 ? (T)1 : p[j]);
                l += yc * log(yc / pc);
                g[j] = (p[j] > eps && p[j] < 1) ? -sc * yc / pc : (T)0;
            }
            break;
        case FM_LOSS_POISSON:
            for (int64_t j = 0; j < C; j++) {
                l += p[j] - y[j] * log(p[j] + eps);
                g[j] = sc * ((T)1 - y[j] / (p[j] + eps)) / (T)C;
            }
            l /= (T)C; break;
        default:
            status = FM_ERR_ARG;
        }
        total += (double)(w * l);
    }
    if (ybuf && ybuf != ybuf_small) free(ybuf);
    *loss_sum += total;
    return status;
}

#ifndef FM_LOSS_IMPL_ONCE
#define FM_LOSS_IMPL_ONCE
/* x truncated toward zero and clamped to [lo, hi]; NaN gives lo.  Converting a
 * double outside int64's range to int64 is undefined behaviour (x86 yields
 * INT64_MIN), so every double-to-integer conversion of a metric parameter or a
 * float label goes through here.  Requires lo <= hi; (double)INT64_MAX rounds
 * up to 2^63, so x >= (double)hi catches everything that cannot convert. */
static inline int64_t fm_double_to_i64_clamped(double x, int64_t lo, int64_t hi) {
    if (!(x >= (double)lo)) return lo;
    if (x >= (double)hi) return hi;
    const int64_t v = (int64_t)x;
    return v < lo ? lo : v > hi ? hi : v;
}
#endif

/* The stateful metrics: confusion counts, AUC threshold histograms and
 * per-class counts.  Targets are read as in the simple metrics. */
static void FM_CAT(metric_state_update, SFX)(const fm_metric_spec *ms, const T *P__bo,
                                             const T *Y__bo, const int64_t *y__b, const T *w__b,
                                             int64_t n_rows, int64_t C) {
    double *st = ms->state;
    for (int64_t r = 0; r < n_rows; r++) {
        const T *p = P__bo + r * C;
        const double w = w__b ? (double)w__b[r] : 1.0;
        T mx = p[0];
        if (ms->kind == FM_MET_PER_CLASS && ms->param < 0)
            for (int64_t j = 1; j < C; j++) if (p[j] > mx) mx = p[j];
        for (int64_t j = 0; j < C; j++) {
            const double yv = Y__bo ? (double)Y__bo[r * C + j] : (double)(y__b[r] == j);
            const double yt = yv != 0;    /* Keras casts the confusion metrics' targets to bool */
            switch (ms->kind) {
            case FM_MET_CONFUSION: {
                if (ms->class_id >= 0 && j != ms->class_id) break;
                const int pos = (double)p[j] > ms->param;
                st[0] += pos ? w * yt : 0;            /* tp */
                st[1] += pos ? w * (1 - yt) : 0;      /* fp */
                st[2] += pos ? 0 : w * yt;            /* fn */
                break;
            }
            case FM_MET_THRESHOLD_HISTOGRAM: {
                /* thresholds: -eps, 1/(n-1), ..., (n-2)/(n-1), 1+eps; bucket = how many lie below p */
                /* Python caps num_thresholds at 10**6 and sizes the state from it; the
                 * clamp only keeps the conversion (and nt - 1 below) defined */
                const int64_t nt = fm_double_to_i64_clamped(ms->param, 2, INT32_MAX);
                if (ms->class_id >= 0 && j != ms->class_id) break;
                double v = (double)p[j];
                v = v > 0 ? (v < 1 ? v : 1) : 0;      /* Keras clips to [0, 1]; NaN gives 0 */
                int64_t b = (int64_t)ceil(v * (double)(nt - 1));   /* thresholds i/(n-1) < v */
                if (b < 1 && ms->param2 != 0) b = 1;               /* -eps < 0 */
                if (b > nt - 1) b = nt - 1;
                st[b] += w * yt;
                st[nt + 1 + b] += w * (1 - yt);
                break;
            }
            case FM_MET_PER_CLASS: {
                /* FBetaScore counts soft targets as they are */
                const int pos = ms->param < 0 ? (p[j] >= mx && fabs((double)p[j]) > 1e-9)
                                              : (double)p[j] > ms->param;
                st[4 * j + 0] += pos ? w * yv : 0;
                st[4 * j + 1] += pos ? w * (1 - yv) : 0;
                st[4 * j + 2] += pos ? 0 : w * yv;
                st[4 * j + 3] += w * yv;
                break;
            }
            case FM_MET_CONFUSION_AT: {
                if (ms->class_id >= 0 && j != ms->class_id) break;
                for (int64_t t = 0; t < ms->n_thresholds; t++) {
                    const int pos = (double)p[j] > ms->thresholds[t];
                    st[4 * t + (pos ? (yt != 0 ? 0 : 1) : (yt != 0 ? 3 : 2))] += w;
                }
                break;
            }
            case FM_MET_R2: {
                const double e = yv - (double)p[j];
                st[4 * j + 0] += w * yv;
                st[4 * j + 1] += w * yv * yv;
                st[4 * j + 2] += w * e * e;
                st[4 * j + 3] += w;
                break;
            }
            default: break;
            }
        }
    }
    if (ms->kind == FM_MET_R2) st[4 * C] += (double)n_rows * (double)C;   /* Keras: ops.size(y_true) */
}

static int FM_CAT(metric_is_stateful, SFX)(int kind) {
    return kind == FM_MET_CONFUSION || kind == FM_MET_THRESHOLD_HISTOGRAM || kind == FM_MET_PER_CLASS ||
           kind == FM_MET_CONFUSION_AT || kind == FM_MET_R2;
}

/* sum_r w_r * loss_r of a loss taken as a metric (from the outputs, never fused).
 * The hinges read {0, 1} targets as {-1, 1} when all targets of the call are 0 or 1,
 * as Keras's hinge functions do for each batch.  NaN when out of memory. */
static double FM_CAT(metric_loss_sum, SFX)(const fm_loss_spec *loss, const T *P__bo, const T *Y__bo,
                                           const int64_t *y__b, const T *w__b, int64_t n_rows, int64_t C) {
    if (n_rows <= 0) return 0;
    const int sparse = loss->kind == FM_LOSS_SCCE;
    if (sparse && !y__b) return NAN;   /* the wrapper never asks this (it needs labels) */
    const size_t n = (size_t)n_rows * (size_t)C;
    const int hinge = loss->kind == FM_LOSS_HINGE || loss->kind == FM_LOSS_SQUARED_HINGE;
    const int one_hot = !sparse && !Y__bo;   /* labels of a sparse loss's output, read as one-hot */
    int convert = hinge && Y__bo;
    for (size_t i = 0; convert && i < n; i++) convert = Y__bo[i] == 0 || Y__bo[i] == 1;
    T *buf = (T *)malloc(n * sizeof(T) * (convert || one_hot ? 2 : 1));
    if (!buf) return NAN;
    const T *Y = Y__bo;
    if (one_hot) {
        T *Yc = buf + n;
        for (int64_t r = 0; r < n_rows; r++)
            for (int64_t j = 0; j < C; j++) Yc[r * C + j] = (T)(y__b[r] == j);
        Y = Yc;
        convert = hinge;
        for (size_t i = 0; convert && i < n; i++) Yc[i] = 2 * Yc[i] - 1;
    } else if (convert) {
        T *Yc = buf + n;
        for (size_t i = 0; i < n; i++) Yc[i] = 2 * Y__bo[i] - 1;
        Y = Yc;
    }
    double total = 0;
    int pre;
    fm_loss_spec spec = *loss;
    spec.sum_reduction = 0;
    FM_CAT(fm_loss_forward_backward, SFX)(&spec, FM_ACT_LINEAR, P__bo, NULL, Y, y__b, w__b, n_rows, C,
                                          0.0, &total, buf, &pre);
    free(buf);
    return total;
}

void FM_CAT(fm_metrics_update, SFX)(int n_metrics, const fm_metric_spec *metrics,
                                    const T *P__bo, const T *Y__bo, const int64_t *y__b,
                                    const T *w__b, int64_t n_rows, int64_t n_out,
                                    double *metric_sum) {
    const int64_t C = n_out;
    for (int m = 0; m < n_metrics; m++) {
        const int kind = metrics[m].kind;
        const double param = metrics[m].param;
        /* top-k's k; any k >= C counts every in-range target */
        const int64_t k = fm_double_to_i64_clamped(param, 0, INT64_MAX);
        if (kind == FM_MET_LOSS) {
            metric_sum[m] += FM_CAT(metric_loss_sum, SFX)(&metrics[m].loss, P__bo, Y__bo, y__b, w__b, n_rows, C);
            continue;
        }
        if (FM_CAT(metric_is_stateful, SFX)(kind)) {
            if (metrics[m].state)
                FM_CAT(metric_state_update, SFX)(&metrics[m], P__bo, Y__bo, y__b, w__b, n_rows, n_out);
            continue;
        }
        double acc = 0;
        for (int64_t r = 0; r < n_rows; r++) {
            const T *p = P__bo + r * C;
            const T *y = Y__bo ? Y__bo + r * C : NULL;
            const double w = w__b ? (double)w__b[r] : 1.0;
            double v = 0;
            int64_t target = 0;
            if (kind == FM_MET_SPARSE_CATEGORICAL_ACCURACY || kind == FM_MET_SPARSE_TOP_K) {
                /* a float label outside [-1, C] matches no column, as -1 and C do */
                target = y ? fm_double_to_i64_clamped((double)y[0], -1, C) : y__b[r];
            } else if (kind == FM_MET_CATEGORICAL_ACCURACY || kind == FM_MET_TOP_K) {
                if (y) { for (int64_t j = 1; j < C; j++) if (y[j] > y[target]) target = j; }
                else target = y__b[r];
            }
            switch (kind) {
            case FM_MET_BINARY_ACCURACY:
                for (int64_t j = 0; j < C; j++) {
                    T yt = y ? y[j] : (T)(y__b[r] == j);
                    v += (double)(((T)(p[j] > (T)param)) == yt);
                }
                v /= (double)C; break;
            case FM_MET_CATEGORICAL_ACCURACY:
            case FM_MET_SPARSE_CATEGORICAL_ACCURACY: {
                int64_t am = 0;
                for (int64_t j = 1; j < C; j++) if (p[j] > p[am]) am = j;
                v = am == target; break;
            }
            case FM_MET_TOP_K:
            case FM_MET_SPARSE_TOP_K: {
                int64_t above = 0;
                if (target >= 0 && target < C) {
                    for (int64_t j = 0; j < C; j++) above += p[j] > p[target];
                    v = above < k;
                }
                break;
            }
            case FM_MET_MAE:
            case FM_MET_MSE:
                for (int64_t j = 0; j < C; j++) {
                    double e = (double)p[j] - (double)(y ? y[j] : (T)(y__b[r] == j));
                    v += kind == FM_MET_MAE ? fabs(e) : e * e;
                }
                v /= (double)C; break;
            case FM_MET_COSINE: {
                double dot = 0, pp = 0, yy = 0;
                for (int64_t j = 0; j < C; j++) {
                    const double pj = (double)p[j], yj = (double)(y ? y[j] : (T)(y__b[r] == j));
                    dot += pj * yj; pp += pj * pj; yy += yj * yj;
                }
                /* x * min(rsqrt(sum x^2), 1 / eps) */
                const double ip = pp > 1e-14 ? 1 / sqrt(pp) : 1e7, iy = yy > 1e-14 ? 1 / sqrt(yy) : 1e7;
                v = dot * ip * iy;
                break;
            }
            default: break;
            }
            acc += w * v;
        }
        metric_sum[m] += acc;
    }
}
#undef FM_EPS
