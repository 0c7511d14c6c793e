/* The whole network: forward, backward, update over the layer table.
 * Template body (T, SFX); struct fm_net and its helpers are in engine.c.
 *
 * Training keeps, per layer, its output A (rows x n_out) and, where needed,
 * its pre-activation Z (gelu, swish, softmax, sigmoid) or its dropout mask.
 * Gradients flow through two ping-pong buffers.  Nothing is allocated per
 * batch: buffers grow once to the largest batch seen.
 */

static inline T *FM_CAT(P, SFX)(void *p) { return (T *)p; }

/* Dropout mask for (layer, step): keep with probability 1 - rate, scaled.
 * One 64-bit hash gives four 16-bit uniforms (the keep probability is exact to
 * 2^-16). */
static void FM_CAT(dropout_forward, SFX)(uint64_t seed, int layer, int64_t step, double rate,
                                         const T *in, T *out, T *mask, int64_t n) {
    const uint64_t key = fm_hash64(seed ^ 0x5eedd50u, ((uint64_t)layer << 48) ^ (uint64_t)step);
    const T keep_scale = rate < 1 ? (T)(1.0 / (1.0 - rate)) : (T)0;
    const uint32_t cut = rate >= 1 ? 65536u : (uint32_t)ceil(rate * 65536.0);   /* drop if u < cut */
    for (int64_t i = 0; i < n; i += 4) {
        uint64_t h = fm_hash64(key, (uint64_t)(i >> 2));
        const int64_t m = n - i < 4 ? n - i : 4;
        for (int64_t k = 0; k < m; k++) {
            const uint32_t u = (uint32_t)(h >> (16 * k)) & 0xFFFFu;
            mask[i + k] = u >= cut ? keep_scale : (T)0;
            out[i + k] = in[i + k] * mask[i + k];
        }
    }
}

/* Gaussian noise for (layer, step): out = in + stddev * N(0, 1).  One 64-bit
 * hash gives two 32-bit uniforms and, by Box-Muller, two normal values. */
static void FM_CAT(noise_forward, SFX)(uint64_t seed, int layer, int64_t step, double stddev,
                                      const T *in, T *out, int64_t n) {
    const uint64_t key = fm_hash64(seed ^ 0x6a0551a4u, ((uint64_t)layer << 48) ^ (uint64_t)step);
    const double two_pi = 6.283185307179586476925;
    for (int64_t i = 0; i < n; i += 2) {
        const uint64_t h = fm_hash64(key, (uint64_t)(i >> 1));
        const double u1 = ((double)(h >> 32) + 0.5) * 0x1p-32;   /* in (0, 1) */
        const double u2 = (double)(h & 0xFFFFFFFFu) * 0x1p-32;
        const double r = stddev * sqrt(-2.0 * log(u1));
        out[i] = in[i] + (T)(r * cos(two_pi * u2));
        if (i + 1 < n) out[i + 1] = in[i + 1] + (T)(r * sin(two_pi * u2));
    }
}

/* A dense layer: out = act(in @ W + b) in one GEMM (bias and activation in
 * its epilogue); Z, when not NULL, receives the pre-activation. */
static void FM_CAT(dense_forward, SFX)(const fm_layer *L, const T *params, const T *in, T *out,
                                      T *Z, int64_t rows) {
    FM_CAT(fm_gemm_bias_act, SFX)(L->activation, L->act_alpha, L->b_off >= 0 ? params + L->b_off : NULL,
                                  Z, 0, 0, rows, L->n_out, L->n_in, 1, in, L->n_in,
                                  params + L->w_off, L->n_out, 0, out, L->n_out);
}

/* An activation layer: out = act(in); Z, when not NULL, receives in. */
static void FM_CAT(activation_layer_forward, SFX)(const fm_layer *L, const T *in, T *out, T *Z,
                                                 int64_t rows) {
    memcpy(out, in, (size_t)(rows * L->n_out) * sizeof(T));
    FM_CAT(fm_activation_forward, SFX)(L->activation, L->act_alpha, out, Z, NULL, rows, L->n_out);
}

/* Forward through every layer for `rows` rows using the net's training
 * workspace; returns the output buffer. */
static T *FM_CAT(train_forward, SFX)(fm_net *net, T *params, const T *X, int64_t rows,
                                    int training, uint64_t seed, int64_t step, int update_stats) {
    const T *in = X;
    for (int l = 0; l < net->n_layers; l++) {
        const fm_layer *L = &net->layers[l];
        T *out = (T *)net->A[l];
        if (L->kind == FM_LAYER_DENSE) {
            FM_CAT(dense_forward, SFX)(L, params, in, out, (T *)net->Z[l], rows);
        } else if (L->kind == FM_LAYER_ACTIVATION) {
            FM_CAT(activation_layer_forward, SFX)(L, in, out, (T *)net->Z[l], rows);
        } else if (L->kind == FM_LAYER_BATCHNORM) {
            const T *g = L->w_off >= 0 ? params + L->w_off : NULL;
            const T *b = L->b_off >= 0 ? params + L->b_off : NULL;
            T *mm = params + L->aux_off, *mv = params + L->var_off;
            if (training && !L->frozen)
                FM_CAT(bn_forward_train, SFX)(in, out, (T *)net->Z[l], (T *)net->Z[l] + rows * L->n_out,
                                              g, b, update_stats ? mm : NULL, update_stats ? mv : NULL,
                                              L->momentum, L->epsilon, rows, L->n_out);
            else
                FM_CAT(bn_forward_infer, SFX)(in, out, g, b, mm, mv, L->epsilon, rows, L->n_out);
        } else if (L->kind == FM_LAYER_NOISE) {
            if (training && L->rate > 0)
                FM_CAT(noise_forward, SFX)(L->seed ? L->seed : seed, l, step, L->rate, in, out,
                                           rows * L->n_out);
            else
                memcpy(out, in, (size_t)(rows * L->n_out) * sizeof(T));
        } else if (training && L->rate > 0) {
            FM_CAT(dropout_forward, SFX)(L->seed ? L->seed : seed, l, step, L->rate, in, out, (T *)net->Z[l],
                                         rows * L->n_out);
        } else {
            memcpy(out, in, (size_t)(rows * L->n_out) * sizeof(T));
            if (net->Z[l]) {
                T *m = (T *)net->Z[l];
                for (int64_t i = 0; i < rows * L->n_out; i++) m[i] = 1;
            }
        }
        in = out;
    }
    return (T *)in;
}

static double FM_CAT(regularization_loss, SFX)(const fm_net *net, const T *params) {
    double total = 0;
    for (int v = 0; v < net->n_vars; v++) {
        const fm_var *var = &net->vars[v];
        if (var->l1 == 0 && var->l2 == 0) continue;
        double s1 = 0, s2 = 0;
        const T *w = params + var->off;
        for (int64_t i = 0; i < var->size; i++) { s1 += fabs((double)w[i]); s2 += (double)w[i] * w[i]; }
        total += var->l1 * s1 + var->l2 * s2;
    }
    return total;
}

/* Loss, then backward into net->grads (without regularization terms, which
 * the optimizer step or the caller adds).  Returns status. */
static int FM_CAT(train_backward, SFX)(fm_net *net, const T *params, const T *X,
                                      const T *Y, const int64_t *y, const T *w, int64_t rows,
                                      const fm_loss_spec *loss, int training, double *loss_sum) {
    const int last = net->n_layers - 1;
    const fm_layer *LL = &net->layers[last];
    int act = FM_HAS_ACTIVATION(LL) ? LL->activation : FM_ACT_LINEAR;
    const T *Zlast = FM_HAS_ACTIVATION(LL) && net->Z[last] ? (const T *)net->Z[last] : NULL;
    T *g = (T *)net->dA, *g2 = (T *)net->dB;
    int pre = 0;
    int status = FM_CAT(fm_loss_forward_backward, SFX)(loss, act, (const T *)net->A[last], Zlast,
                                                       Y, y, w, rows, net->n_out,
                                                       loss->sum_reduction ? 1.0 : 1.0 / (double)rows,
                                                       loss_sum, g, &pre);
    T *grads = (T *)net->grads;
    for (int l = last; l >= 0; l--) {
        const fm_layer *L = &net->layers[l];
        const T *in = l > 0 ? (const T *)net->A[l - 1] : X;
        if (L->kind == FM_LAYER_DENSE) {
            if (!pre)
                FM_CAT(fm_activation_backward, SFX)(L->activation, L->act_alpha, (const T *)net->A[l],
                                                    net->Z[l] ? (const T *)net->Z[l] : NULL, g,
                                                    rows, L->n_out);
            pre = 0;
            FM_CAT(fm_gemm, SFX)(1, 0, L->n_in, L->n_out, rows, 1, in, L->n_in, g, L->n_out, 0,
                                 grads + L->w_off, L->n_out);
            if (L->b_off >= 0) {
                T *db = grads + L->b_off;
                memset(db, 0, (size_t)L->n_out * sizeof(T));
                for (int64_t r = 0; r < rows; r++) {
                    const T *gr = g + r * L->n_out;
                    for (int64_t j = 0; j < L->n_out; j++) db[j] += gr[j];
                }
            }
            if (l <= net->first_param_layer) break;
            /* dX = g @ W^T; when a dense layer feeds this one, its activation
             * derivative is applied to each tile of dX as it is finished */
            const fm_layer *Lp = &net->layers[l - 1];
            if (FM_HAS_ACTIVATION(Lp)) {
                FM_CAT(fm_gemm_act_grad, SFX)(Lp->activation, Lp->act_alpha, (const T *)net->A[l - 1],
                                              (const T *)net->Z[l - 1], 0, 1, rows, L->n_in, L->n_out,
                                              1, g, L->n_out, params + L->w_off, L->n_out, 0, g2,
                                              L->n_in);
                pre = 1;
            } else {
                FM_CAT(fm_gemm, SFX)(0, 1, rows, L->n_in, L->n_out, 1, g, L->n_out,
                                     params + L->w_off, L->n_out, 0, g2, L->n_in);
            }
            T *tmp = g; g = g2; g2 = tmp;
        } else if (L->kind == FM_LAYER_ACTIVATION) {
            if (l <= net->first_param_layer) break;
            if (!pre)
                FM_CAT(fm_activation_backward, SFX)(L->activation, L->act_alpha, (const T *)net->A[l],
                                                    net->Z[l] ? (const T *)net->Z[l] : NULL, g,
                                                    rows, L->n_out);
            pre = 0;
        } else if (L->kind == FM_LAYER_BATCHNORM) {
            const int64_t n = L->n_out;
            const T *gamma = L->w_off >= 0 ? params + L->w_off : NULL;
            T *dX = l > net->first_param_layer ? g2 : NULL;
            if (training && !L->frozen) {
                const T *xhat = (const T *)net->Z[l];
                FM_CAT(bn_backward, SFX)(g, xhat, xhat + rows * n, gamma,
                                         L->w_off >= 0 ? grads + L->w_off : NULL,
                                         L->b_off >= 0 ? grads + L->b_off : NULL, dX, rows, n);
            } else {
                /* inference mode: y = gamma * (x - mm) / sqrt(mv + eps) + beta */
                const T *mm = params + L->aux_off, *mv = params + L->var_off;
                T *dg = L->w_off >= 0 ? grads + L->w_off : NULL, *db = L->b_off >= 0 ? grads + L->b_off : NULL;
                if (dg) memset(dg, 0, (size_t)n * sizeof(T));
                if (db) memset(db, 0, (size_t)n * sizeof(T));
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t j = 0; j < n; j++) {
                        T is = (T)1 / sqrt(mv[j] + (T)L->epsilon);
                        T dy = g[r * n + j];
                        const T *xin = l > 0 ? (const T *)net->A[l - 1] : X;
                        if (dg) dg[j] += dy * (xin[r * n + j] - mm[j]) * is;
                        if (db) db[j] += dy;
                        if (dX) dX[r * n + j] = dy * (gamma ? gamma[j] : (T)1) * is;
                    }
            }
            if (!dX) break;
            T *tmp = g; g = g2; g2 = tmp;
        } else {
            if (l <= net->first_param_layer) break;
            const T *m = (const T *)net->Z[l];
            if (m) for (int64_t i = 0; i < rows * L->n_out; i++) g[i] *= m[i];
        }
    }
    return status;
}

static int FM_CAT(gather, SFX)(fm_net *net, const T *X, const T *Y, const int64_t *y,
                               const T *w, const int64_t *order, int64_t r0, int64_t rows,
                               const T **Xb, const T **Yb, const int64_t **yb, const T **wb) {
    const int64_t ni = net->n_in, no = net->n_out;
    if (!order) {
        *Xb = X + r0 * ni;
        *Yb = Y ? Y + r0 * no : NULL;
        *yb = y ? y + r0 : NULL;
        *wb = w ? w + r0 : NULL;
        return FM_OK;
    }
    T *xb = (T *)net->Xb, *Ybuf = (T *)net->Yb, *wbuf = (T *)net->wb;
    int64_t *ybuf = net->yb;
    for (int64_t i = 0; i < rows; i++) {
        const int64_t src = order[r0 + i];
        memcpy(xb + i * ni, X + src * ni, (size_t)ni * sizeof(T));
        if (Y) memcpy(Ybuf + i * no, Y + src * no, (size_t)no * sizeof(T));
        if (y) ybuf[i] = y[src];
        if (w) wbuf[i] = w[src];
    }
    *Xb = xb; *Yb = Y ? Ybuf : NULL; *yb = y ? ybuf : NULL; *wb = w ? wbuf : NULL;
    return FM_OK;
}

int FM_CAT(fm_loss_and_grads, SFX)(fm_net *net, const T *params, const T *X__bi,
                                   const T *Y__bo, const int64_t *y__b, const T *w__b,
                                   int64_t n_rows, const fm_loss_spec *loss, uint64_t seed,
                                   int64_t step, int training, double *loss_value) {
    if (n_rows <= 0) return FM_ERR_ARG;
    if (fm_net_reserve(net, n_rows, sizeof(T)) != FM_OK) return FM_ERR_NOMEM;
    FM_CAT(train_forward, SFX)(net, (T *)params, X__bi, n_rows, training, seed, step, 0);
    double lsum = 0;
    int status = FM_CAT(train_backward, SFX)(net, params, X__bi, Y__bo, y__b, w__b, n_rows, loss,
                                             training, &lsum);
    /* add regularization gradients so callers see the full gradient */
    T *grads = (T *)net->grads;
    for (int v = 0; v < net->n_vars; v++) {
        const fm_var *var = &net->vars[v];
        if (var->l1 == 0 && var->l2 == 0) continue;
        const T *wv = params + var->off;
        T *g = grads + var->off;
        for (int64_t i = 0; i < var->size; i++)
            g[i] += (T)var->l1 * (T)((wv[i] > 0) - (wv[i] < 0)) + (T)(2 * var->l2) * wv[i];
    }
    *loss_value = (loss->sum_reduction ? lsum : lsum / (double)n_rows) +
                  FM_CAT(regularization_loss, SFX)(net, params);
    return status;
}

int FM_CAT(fm_train, SFX)(fm_net *net, T *params, T *slots, fm_optim *opt,
                          const T *X__ni, const T *Y__no, const int64_t *y__n, const T *w__n,
                          const int64_t *order__n, int64_t n_rows, int64_t batch_size,
                          int64_t batch_begin, int64_t batch_end, const double *lr_per_batch,
                          const fm_loss_spec *loss, int n_metrics, const fm_metric_spec *metrics,
                          uint64_t seed, fm_stats *stats) {
    if (batch_size <= 0 || n_metrics > FM_MAX_METRICS) return FM_ERR_ARG;
    const int64_t cap = batch_size < n_rows ? batch_size : n_rows;
    if (fm_net_reserve(net, cap, sizeof(T)) != FM_OK) return FM_ERR_NOMEM;
    int status = FM_OK;
    for (int64_t b = batch_begin; b < batch_end; b++) {
        const int64_t r0 = b * batch_size;
        if (r0 >= n_rows) break;
        const int64_t rows = r0 + batch_size <= n_rows ? batch_size : n_rows - r0;
        const T *Xb, *Yb, *wb;
        const int64_t *yb;
        FM_CAT(gather, SFX)(net, X__ni, Y__no, y__n, w__n, order__n, r0, rows, &Xb, &Yb, &yb, &wb);
        const T *out = FM_CAT(train_forward, SFX)(net, params, Xb, rows, 1, seed, opt->iterations, 1);
        double lsum = 0;
        int st = FM_CAT(train_backward, SFX)(net, params, Xb, Yb, yb, wb, rows, loss, 1, &lsum);
        if (st != FM_OK) status = st;
        /* Keras tracks the mean of the batch losses weighted by batch size */
        if (loss->sum_reduction) lsum *= (double)rows;
        stats->loss_sum += lsum + FM_CAT(regularization_loss, SFX)(net, params) * (double)rows;
        stats->rows += (double)rows;
        if (wb) { for (int64_t i = 0; i < rows; i++) stats->weight_sum += (double)wb[i]; }
        else stats->weight_sum += (double)rows;
        if (n_metrics)
            FM_CAT(fm_metrics_update, SFX)(n_metrics, metrics, out, Yb, yb, wb, rows, net->n_out,
                                           stats->metric_sum);
        FM_CAT(fm_optimizer_step, SFX)(opt, net->n_vars, net->vars, params, (T *)net->grads, slots,
                                       net->n_params, lr_per_batch[b - batch_begin]);
    }
    return status;
}

/* Inference forward with its own scratch: safe to call from several threads
 * at once on one net (weights are only read).  When last_Z is given, the last
 * dense layer's pre-activation is kept there (for the stable fused losses). */
static void FM_CAT(infer_chunk, SFX)(const fm_net *net, const T *params, const T *X, int64_t rows,
                                    T *buf0, T *buf1, T *final_out, T *last_Z) {
    const T *in = X;
    int last = -1;   /* the last layer that computes something at inference */
    for (int l = 0; l < net->n_layers; l++) if (!FM_INFERENCE_IDENTITY(&net->layers[l])) last = l;
    int flip = 0;
    for (int l = 0; l <= last; l++) {
        const fm_layer *L = &net->layers[l];
        if (FM_INFERENCE_IDENTITY(L)) continue;
        T *out = l == last ? final_out : (flip ? buf1 : buf0);
        flip ^= 1;
        if (L->kind == FM_LAYER_DENSE) {
            FM_CAT(dense_forward, SFX)(L, params, in, out, l == last ? last_Z : NULL, rows);
        } else if (L->kind == FM_LAYER_ACTIVATION) {
            FM_CAT(activation_layer_forward, SFX)(L, in, out, l == last ? last_Z : NULL, rows);
        } else {
            FM_CAT(bn_forward_infer, SFX)(in, out, L->w_off >= 0 ? params + L->w_off : NULL,
                                          L->b_off >= 0 ? params + L->b_off : NULL,
                                          params + L->aux_off, params + L->var_off,
                                          L->epsilon, rows, L->n_out);
        }
        in = out;
    }
    if (last < 0) memcpy(final_out, X, (size_t)(rows * net->n_out) * sizeof(T));
}

#define FM_INFER_CHUNK 1024

/* predict for n_rows rows on the calling thread, in chunks, with its own
 * reusable scratch (predict may run on several threads at once, and a fresh
 * large allocation would cost page faults). */
static int FM_CAT(predict_rows, SFX)(const fm_net *net, const T *params, const T *X, int64_t n_rows,
                                    T *out) {
    const int64_t chunk = n_rows < FM_INFER_CHUNK ? n_rows : FM_INFER_CHUNK;
    const size_t sz = (size_t)(chunk * net->max_width) * sizeof(T);
    T *buf = (T *)fm_gemm_buffer(2, 2 * sz);
    if (!buf) return FM_ERR_NOMEM;
    for (int64_t r0 = 0; r0 < n_rows; r0 += chunk) {
        const int64_t rows = r0 + chunk <= n_rows ? chunk : n_rows - r0;
        FM_CAT(infer_chunk, SFX)(net, params, X + r0 * net->n_in, rows, buf,
                                 buf + chunk * net->max_width, out + r0 * net->n_out, NULL);
    }
    return FM_OK;
}

/* predict's split over threads: piece t of n_pieces is a block of rows. */
typedef struct {
    const fm_net *net;
    const T *params, *X;
    T *out;
    int64_t n_rows, units;
    int n_pieces;
    int status;
} FM_CAT(predict_split, SFX);

static void FM_CAT(predict_piece, SFX)(void *ctx, int t) {
    FM_CAT(predict_split, SFX) *s = (FM_CAT(predict_split, SFX) *)ctx;
    const int64_t lo = s->units * t / s->n_pieces * FM_SPLIT_ALIGN_M;
    int64_t hi = s->units * (t + 1) / s->n_pieces * FM_SPLIT_ALIGN_M;
    if (hi > s->n_rows) hi = s->n_rows;
    if (lo >= hi) return;
    int st = FM_CAT(predict_rows, SFX)(s->net, s->params, s->X + lo * s->net->n_in, hi - lo,
                                       s->out + lo * s->net->n_out);
    if (st != FM_OK) __atomic_store_n(&s->status, st, __ATOMIC_RELAXED);   /* only FM_ERR_NOMEM */
}

void FM_CAT(fm_predict, SFX)(const fm_net *net, const T *params, const T *X__bi, int64_t n_rows,
                             T *out__bo, int *status) {
    *status = FM_OK;
    if (n_rows <= 0) return;
    /* Large batches: each thread runs the whole network on its own blocks of
     * rows -- no synchronization between layers, and the element-wise work is
     * split too; the GEMMs inside then stay on their thread.  Blocks start at
     * multiples of FM_SPLIT_ALIGN_M, as the GEMM's own splits do. */
    int nt = fm_threads_for_work((double)n_rows * (double)net->macs_per_row);
    if (n_rows < (int64_t)nt * FM_INFER_MIN_ROWS_PER_THREAD) nt = 1;
    if (nt <= 1) {
        *status = FM_CAT(predict_rows, SFX)(net, params, X__bi, n_rows, out__bo);
        return;
    }
    FM_CAT(predict_split, SFX) s = {net, params, X__bi, out__bo, n_rows,
                                    (n_rows + FM_SPLIT_ALIGN_M - 1) / FM_SPLIT_ALIGN_M,
                                    2 * nt, FM_OK};
    fm_parallel_pieces(nt, s.n_pieces, FM_CAT(predict_piece, SFX), &s);
    *status = s.status;
}

int FM_CAT(fm_evaluate, SFX)(const fm_net *net, const T *params, const T *X__bi,
                             const T *Y__bo, const int64_t *y__b, const T *w__b,
                             int64_t n_rows, int64_t batch_size, const fm_loss_spec *loss,
                             int n_metrics, const fm_metric_spec *metrics, fm_stats *stats) {
    if (n_rows <= 0 || batch_size <= 0) return FM_ERR_ARG;
    const int64_t chunk = n_rows < batch_size ? n_rows : batch_size;
    const int64_t no = net->n_out, mw = net->max_width;
    /* two hidden buffers, predictions, logits and a gradient scratch */
    T *buf = (T *)malloc((size_t)(chunk * (2 * mw + 3 * no)) * sizeof(T));
    if (!buf) return FM_ERR_NOMEM;
    T *P = buf + 2 * chunk * mw, *Zl = P + chunk * no, *G = Zl + chunk * no;
    const double reg = FM_CAT(regularization_loss, SFX)(net, params);
    const fm_layer *LL = &net->layers[net->n_layers - 1];
    int last_compute = net->n_layers - 1;
    while (last_compute > 0 && FM_INFERENCE_IDENTITY(&net->layers[last_compute])) last_compute--;
    if (FM_HAS_ACTIVATION(&net->layers[last_compute])) LL = &net->layers[last_compute];
    const int act = FM_HAS_ACTIVATION(LL) ? LL->activation : FM_ACT_LINEAR;
    int status = FM_OK;
    for (int64_t r0 = 0; r0 < n_rows; r0 += chunk) {
        const int64_t rows = r0 + chunk <= n_rows ? chunk : n_rows - r0;
        FM_CAT(infer_chunk, SFX)(net, params, X__bi + r0 * net->n_in, rows, buf, buf + chunk * mw,
                                 P, FM_HAS_ACTIVATION(LL) ? Zl : NULL);
        const T *Yc = Y__bo ? Y__bo + r0 * no : NULL;
        const int64_t *yc = y__b ? y__b + r0 : NULL;
        const T *wc = w__b ? w__b + r0 : NULL;
        double lsum = 0;
        int pre;
        int st = FM_CAT(fm_loss_forward_backward, SFX)(loss, act, P,
                                                       FM_HAS_ACTIVATION(LL) ? Zl : NULL,
                                                       Yc, yc, wc, rows, no, 0.0, &lsum, G, &pre);
        if (st != FM_OK) status = st;
        if (loss->sum_reduction) lsum *= (double)rows;
        stats->loss_sum += lsum + reg * (double)rows;
        stats->rows += (double)rows;
        if (wc) { for (int64_t i = 0; i < rows; i++) stats->weight_sum += (double)wc[i]; }
        else stats->weight_sum += (double)rows;
        if (n_metrics)
            FM_CAT(fm_metrics_update, SFX)(n_metrics, metrics, P, Yc, yc, wc, rows, no,
                                           stats->metric_sum);
    }
    free(buf);
    return status;
}
