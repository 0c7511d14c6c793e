/* The whole network: forward, backward, update over the node graph.
 * Template body (T, SFX); struct fm_net and its analysis are in engine.c, the
 * kinds in kinds/.
 *
 * Training keeps, per node, its output A (rows x n_out), its pre-activation Z
 * where its activation needs it (gelu, swish, softmax, sigmoid), the kind's
 * workspace, and the gradient G with respect to its output.  Backward walks
 * the nodes in reverse order: a node's G is complete once every reader has
 * added to it (and its loss, for an output).  Nothing is allocated per batch:
 * buffers grow once to the largest batch seen.
 */

/* The input blocks of node n from net->out. */
static void FM_CAT(node_inputs, SFX)(fm_net *net, const fm_node *nd) {
    for (int i = 0; i < nd->n_inputs; i++) net->in_ptr[i] = net->out[net->edges[nd->in_begin + i]];
}

/* Forward through every node for `rows` rows of the gathered inputs X[k]
 * using the training workspace; returns the sum of the nodes' penalties.
 * With `bf16`, a Dense node given a bfloat16 kernel (fm_net_set_bf16: the
 * mixed_bfloat16 policy) computes its linear output as inference does, from
 * the bfloat16 copy of its kernel and its input rounded to bfloat16; the
 * backward pass then runs in float32 on the float32 master kernel. */
static double FM_CAT(train_forward, SFX)(fm_net *net, T *params, const T *const *X, int64_t rows,
                                        int training, uint64_t seed, int64_t step, int update_stats, int bf16) {
    const int idx = (int)net->is_f64;
    double penalty = 0;
    for (int n = 0; n < net->n_nodes; n++) {
        const fm_node *nd = &net->nodes[n];
        if (nd->kind == FM_KIND_INPUT) { net->out[n] = X[net->input_index[n]]; continue; }
        if (!net->live[n]) continue;
        const fm_kind *k = net->kinds[n];
        FM_CAT(node_inputs, SFX)(net, nd);
        const int alt = bf16 && net->bf16 && net->bf16[n];
        if (alt) {
            FM_CAT(fm_q8_node_forward, SFX)(net, n, params, (const T *)net->in_ptr[0], rows, (T *)net->A[n]);
        } else {
            fm_fwd a = {nd, rows, net->in_ptr, net->edge_width + nd->in_begin, net->A[n], net->WS[n],
                        k->applies_activation ? net->Z[n] : NULL, params, training, update_stats, seed, step};
            k->forward[idx](&a);
        }
        if ((alt || !k->applies_activation) && nd->activation != FM_ACT_LINEAR)
            FM_CAT(fm_activation_forward, SFX)(nd->activation, nd->act_alpha, (T *)net->A[n], (T *)net->Z[n], NULL,
                                               rows, nd->n_out);
        net->out[n] = net->A[n];
        if (k->penalty[idx]) penalty += k->penalty[idx](nd, net->A[n], rows);
    }
    return penalty;
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

/* Losses of every output, then backward into net->grads (without the
 * regularization terms, which the optimizer step or the caller adds).
 * out_loss[k] receives output k's summed loss (before its loss weight). */
static int FM_CAT(train_backward, SFX)(fm_net *net, const T *params, const T *const *Y,
                                      const int64_t *const *y, const T *w, int64_t rows,
                                      const fm_loss_spec *losses, int training, double *out_loss) {
    const int idx = (int)net->is_f64;
    int status = FM_OK;
    for (int n = 0; n < net->n_nodes; n++) net->written[n] = net->pre[n] = 0;
    for (int n = net->n_nodes - 1; n >= net->n_inputs; n--) {
        const fm_node *nd = &net->nodes[n];
        const int64_t size = rows * nd->n_out;
        T *G = (T *)net->G[n];
        /* the losses of the outputs this node is */
        for (int k = 0; k < net->n_outputs; k++) {
            if (net->outputs[k] != n) continue;
            const fm_loss_spec *ls = &losses[k];
            T *L = (T *)net->L;
            int pre = 0;
            double lsum = 0;
            const double scale = ls->weight * (ls->sum_reduction ? 1.0 : 1.0 / (double)rows);
            int st = FM_CAT(fm_loss_forward_backward, SFX)(ls, nd->activation, (const T *)net->A[n],
                                                           (const T *)net->Z[n], Y[k], y[k], w, rows, nd->n_out,
                                                           scale, &lsum, L, &pre);
            if (st != FM_OK) status = st;
            out_loss[k] += lsum;
            if (!net->written[n]) {
                memcpy(G, L, (size_t)size * sizeof(T));
                net->pre[n] = pre;
            } else {
                if (pre && !net->pre[n]) {   /* readers' gradients go through the activation first */
                    FM_CAT(fm_activation_backward, SFX)(nd->activation, nd->act_alpha, (const T *)net->A[n],
                                                        (const T *)net->Z[n], G, rows, nd->n_out);
                    net->pre[n] = 1;
                } else if (!pre && net->pre[n]) {
                    /* G is w.r.t. the pre-activation already (an earlier output on this node had a
                     * fused loss, e.g. softmax + cross-entropy): take this loss's gradient there too */
                    FM_CAT(fm_activation_backward, SFX)(nd->activation, nd->act_alpha, (const T *)net->A[n],
                                                        (const T *)net->Z[n], L, rows, nd->n_out);
                }
                for (int64_t e = 0; e < size; e++) G[e] += L[e];
            }
            net->written[n] = 1;
        }
        if (!net->needs_backward[n] || !net->written[n]) continue;
        if (!net->pre[n] && nd->activation != FM_ACT_LINEAR)
            FM_CAT(fm_activation_backward, SFX)(nd->activation, nd->act_alpha, (const T *)net->A[n],
                                                (const T *)net->Z[n], G, rows, nd->n_out);
        for (int i = 0; i < nd->n_inputs; i++) {
            const int32_t p = net->edges[nd->in_begin + i];
            const fm_node *pn = &net->nodes[p];
            net->in_ptr[i] = net->out[p];
            net->din[i] = net->needs_backward[p] ? net->G[p] : NULL;
            net->din_add[i] = net->written[p];
            net->din_pre[i] = 0;
            fm_act_ref ref = {-1, 0, NULL, NULL};
            if (net->din[i] && net->fusable[p]) {
                ref.act = pn->activation; ref.alpha = pn->act_alpha; ref.A = net->A[p]; ref.Z = net->Z[p];
            }
            net->din_act[i] = ref;
            if (net->din[i]) net->written[p] = 1;
        }
        fm_bwd b = {nd, rows, net->in_ptr, net->edge_width + nd->in_begin, net->A[n], net->WS[n], params,
                    net->grads, net->accumulate_w[n], G, net->din, net->din_add, net->din_act, net->din_pre,
                    training};
        net->kinds[n]->backward[idx](&b);
        for (int i = 0; i < nd->n_inputs; i++)
            if (net->din_pre[i]) net->pre[net->edges[nd->in_begin + i]] = 1;
    }
    return status;
}

/* The rows of this batch: each input, target and weight, gathered by `order`
 * into the net's buffers, or pointed at where they are. */
static void FM_CAT(gather, SFX)(fm_net *net, const fm_data *d, const int64_t *order, int64_t r0, int64_t rows,
                                const T **X, const T **Y, const int64_t **y, const T **w) {
    for (int k = 0; k < net->n_inputs; k++) {
        const int64_t ni = net->nodes[k].n_out;
        const T *src = (const T *)d->X[k];
        if (!order) { X[k] = src + r0 * ni; continue; }
        T *dst = (T *)net->Xb[k];
        for (int64_t i = 0; i < rows; i++) memcpy(dst + i * ni, src + order[r0 + i] * ni, (size_t)ni * sizeof(T));
        X[k] = dst;
    }
    for (int k = 0; k < net->n_outputs; k++) {
        const int64_t no = net->nodes[net->outputs[k]].n_out;
        const T *Ys = d->Y ? (const T *)d->Y[k] : NULL;
        const int64_t *ys = d->y ? d->y[k] : NULL;
        if (!order) {
            Y[k] = Ys ? Ys + r0 * no : NULL;
            y[k] = ys ? ys + r0 : NULL;
            continue;
        }
        T *Yd = (T *)net->Yb[k];
        int64_t *yd = net->yb[k];
        for (int64_t i = 0; i < rows; i++) {
            const int64_t src = order[r0 + i];
            if (Ys) memcpy(Yd + i * no, Ys + src * no, (size_t)no * sizeof(T));
            if (ys) yd[i] = ys[src];
        }
        Y[k] = Ys ? Yd : NULL;
        y[k] = ys ? yd : NULL;
    }
    const T *ws = (const T *)d->w;
    if (!ws || !order) { *w = ws ? ws + r0 : NULL; return; }
    T *wd = (T *)net->wb;
    for (int64_t i = 0; i < rows; i++) wd[i] = ws[order[r0 + i]];
    *w = wd;
}

/* Metrics of every output over one batch's predictions. */
static void FM_CAT(update_metrics, SFX)(const fm_net *net, const T *const *P, const T *const *Y,
                                       const int64_t *const *y, const T *w, int64_t rows, int n_metrics,
                                       const fm_metric_spec *metrics, double *metric_sum) {
    for (int m = 0; m < n_metrics; m++) {
        const int k = metrics[m].output;
        FM_CAT(fm_metrics_update, SFX)(1, &metrics[m], P[k], Y[k], y[k], metrics[m].weighted ? w : NULL, rows,
                                       net->nodes[net->outputs[k]].n_out, &metric_sum[m]);
    }
}

static void FM_CAT(add_weights, SFX)(fm_stats *stats, const T *w, int64_t rows) {
    if (w) { for (int64_t i = 0; i < rows; i++) stats->weight_sum += (double)w[i]; }
    else stats->weight_sum += (double)rows;
}

static int FM_CAT(check_outputs, SFX)(const fm_net *net, const fm_loss_spec *losses, int n_metrics,
                                      const fm_metric_spec *metrics) {
    (void)losses;
    if (n_metrics < 0 || n_metrics > FM_MAX_METRICS) return FM_ERR_ARG;
    for (int m = 0; m < n_metrics; m++)
        if (metrics[m].output < 0 || metrics[m].output >= net->n_outputs) return FM_ERR_ARG;
    return FM_OK;
}

int FM_CAT(fm_loss_and_grads, SFX)(fm_net *net, const T *params, const fm_data *data, int64_t n_rows,
                                   const fm_loss_spec *losses, uint64_t seed, int64_t step, int training,
                                   double *loss_value) {
    if (n_rows <= 0) return FM_ERR_ARG;
    if (fm_net_reserve(net, n_rows, sizeof(T)) != FM_OK) return FM_ERR_NOMEM;
    const T *Yk[FM_MAX_OUTPUTS];
    const int64_t *yk[FM_MAX_OUTPUTS];
    const T *w;
    const T *Xg[FM_MAX_INPUTS];
    FM_CAT(gather, SFX)(net, data, NULL, 0, n_rows, Xg, Yk, yk, &w);
    /* (float32 kernels throughout, bfloat16 ones or not: the gradient of the parameters given) */
    const double penalty = FM_CAT(train_forward, SFX)(net, (T *)params, Xg, n_rows, training, seed, step, 0, 0);
    double out_loss[FM_MAX_OUTPUTS] = {0};
    int status = FM_CAT(train_backward, SFX)(net, params, Yk, yk, w, n_rows, losses, training, out_loss);
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
    double total = 0;
    for (int k = 0; k < net->n_outputs; k++)
        total += losses[k].weight * (losses[k].sum_reduction ? out_loss[k] : out_loss[k] / (double)n_rows);
    *loss_value = total + FM_CAT(regularization_loss, SFX)(net, params) + penalty;
    return status;
}

int FM_CAT(fm_train, SFX)(fm_net *net, T *params, T *slots, fm_optim *opt, const fm_data *data,
                          const int64_t *order__n, int64_t n_rows, int64_t batch_size,
                          int64_t batch_begin, int64_t batch_end, const double *lr_per_batch,
                          const fm_loss_spec *losses, int n_metrics, const fm_metric_spec *metrics,
                          uint64_t seed, fm_stats *stats) {
    if (batch_size <= 0 || FM_CAT(check_outputs, SFX)(net, losses, n_metrics, metrics) != FM_OK) return FM_ERR_ARG;
    const int64_t cap = batch_size < n_rows ? batch_size : n_rows;
    if (fm_net_reserve(net, cap, sizeof(T)) != FM_OK || fm_net_q8_reserve(net, cap) != FM_OK) return FM_ERR_NOMEM;
    const T *Xg[FM_MAX_INPUTS], *Yk[FM_MAX_OUTPUTS], *P[FM_MAX_OUTPUTS];
    const int64_t *yk[FM_MAX_OUTPUTS];
    int status = FM_OK;
    for (int64_t b = batch_begin; b < batch_end; b++) {
        const int64_t r0 = b * batch_size;
        if (r0 >= n_rows) break;
        const int64_t rows = r0 + batch_size <= n_rows ? batch_size : n_rows - r0;
        const T *w;
        FM_CAT(gather, SFX)(net, data, order__n, r0, rows, Xg, Yk, yk, &w);
        const double penalty = FM_CAT(train_forward, SFX)(net, params, Xg, rows, 1, seed, opt->iterations, 1, 1);
        double out_loss[FM_MAX_OUTPUTS] = {0};
        int st = FM_CAT(train_backward, SFX)(net, params, Yk, yk, w, rows, losses, 1, out_loss);
        if (st != FM_OK) { status = st; break; }   /* no step on a gradient that is not whole */
        /* Keras tracks the mean of the batch losses weighted by batch size */
        double batch_loss = 0;
        for (int k = 0; k < net->n_outputs; k++) {
            const double lk = losses[k].sum_reduction ? out_loss[k] * (double)rows : out_loss[k];
            stats->output_loss_sum[k] += lk;
            batch_loss += losses[k].weight * lk;
        }
        stats->loss_sum += batch_loss + (FM_CAT(regularization_loss, SFX)(net, params) + penalty) * (double)rows;
        stats->rows += (double)rows;
        FM_CAT(add_weights, SFX)(stats, w, rows);
        if (n_metrics) {
            for (int k = 0; k < net->n_outputs; k++) P[k] = (const T *)net->A[net->outputs[k]];
            FM_CAT(update_metrics, SFX)(net, P, Yk, yk, w, rows, n_metrics, metrics, stats->metric_sum);
        }
        /* the update on the threads the step's largest GEMM had: where that ran on one
         * thread, a split update only moves the weights and gradients between the cores'
         * caches (784-64-64-10 b32: 12% slower than on one thread) */
        const int step_threads = fm_threads_for_work((double)rows * (double)net->max_macs_per_row);
        FM_CAT(fm_optimizer_step, SFX)(opt, net->n_vars, net->vars, params, (T *)net->grads, slots,
                                       net->n_params, lr_per_batch[b - batch_begin], step_threads);
        FM_CAT(fm_net_bf16_refresh, SFX)(net, params);   /* the next forward's bfloat16 kernels */
    }
    return status;
}

/* Inference forward of `rows` rows with the caller's scratch (n_slots blocks of
 * rows x max_width, and n_nodes + max_inputs pointers in ptr): safe on several
 * threads at once (weights are only read).  Output k goes to out[k] (row stride
 * its width); Zl[k], when not NULL, keeps the pre-activation of output k's
 * source node (for the stable fused losses).  *penalty, when not NULL, receives the
 * sum of the nodes' penalties (as evaluate's loss includes them). */
static void FM_CAT(infer_chunk, SFX)(const fm_net *net, const T *params, const T *const *X, int64_t rows,
                                    T *scratch, const void **ptr, T *const *out, T *const *Zl,
                                    double *penalty) {
    if (penalty) *penalty = 0;
    const int idx = (int)net->is_f64;
    const void **in = ptr + net->n_nodes;
    for (int n = 0; n < net->n_nodes; n++) {
        const fm_node *nd = &net->nodes[n];
        if (nd->kind == FM_KIND_INPUT) { ptr[n] = X[net->input_index[n]]; continue; }
        if (!net->live[n]) continue;
        const fm_kind *k = net->kinds[n];
        if (net->alias[n] != n) {
            ptr[n] = ptr[net->alias[n]];
            if (penalty && k->penalty[idx]) *penalty += k->penalty[idx](nd, ptr[n], rows);
            continue;
        }
        T *o = scratch + (int64_t)net->slot[n] * rows * net->max_width;
        T *Z = NULL;
        for (int j = 0; Zl && j < net->n_outputs; j++)
            if (net->loss_node[j] == n && net->z_owner[j] == j) { Z = Zl[j]; break; }
        for (int i = 0; i < nd->n_inputs; i++) in[i] = ptr[net->edges[nd->in_begin + i]];
        const int q8 = fm_net_alt_dense(net, n);   /* int8/bf16 Dense: linear output, then the activation */
        if (q8) {
            FM_CAT(fm_q8_node_forward, SFX)(net, n, params, (const T *)in[0], rows, o);
        } else {
            fm_fwd a = {nd, rows, in, net->edge_width + nd->in_begin, o, NULL, k->applies_activation ? Z : NULL,
                        (void *)params, 0, 0, 0, 0};
            k->forward[idx](&a);
        }
        if ((q8 || !k->applies_activation) && nd->activation != FM_ACT_LINEAR)
            FM_CAT(fm_activation_forward, SFX)(nd->activation, nd->act_alpha, o, Z, NULL, rows, nd->n_out);
        ptr[n] = o;
        if (penalty && k->penalty[idx]) *penalty += k->penalty[idx](nd, o, rows);
    }
    for (int k = 0; k < net->n_outputs; k++)
        memcpy(out[k], ptr[net->outputs[k]], (size_t)(rows * net->nodes[net->outputs[k]].n_out) * sizeof(T));
}

/* Bytes of infer_chunk's scratch for `rows` rows. */
static size_t FM_CAT(infer_scratch, SFX)(const fm_net *net, int64_t rows) {
    const size_t values = (size_t)(rows * net->max_width * (net->n_slots > 0 ? net->n_slots : 1)) * sizeof(T);
    return ((values + 63) & ~(size_t)63) + (size_t)(net->n_nodes + net->max_inputs) * sizeof(void *);
}

static const void **FM_CAT(infer_pointers, SFX)(const fm_net *net, T *scratch, int64_t rows) {
    const size_t values = (size_t)(rows * net->max_width * (net->n_slots > 0 ? net->n_slots : 1)) * sizeof(T);
    return (const void **)((char *)scratch + ((values + 63) & ~(size_t)63));
}

#define FM_INFER_CHUNK 1024

/* predict for n_rows rows on the calling thread, in chunks, with its own
 * reusable scratch (predict may run on several threads at once, and a fresh
 * large allocation would cost page faults). */
static int FM_CAT(predict_rows, SFX)(const fm_net *net, const T *params, const T *const *X, int64_t r0,
                                    int64_t n_rows, T *const *out) {
    const int64_t chunk = n_rows < FM_INFER_CHUNK ? n_rows : FM_INFER_CHUNK;
    T *buf = (T *)fm_gemm_buffer(2, FM_CAT(infer_scratch, SFX)(net, chunk));
    if (!buf || fm_net_q8_reserve(net, chunk) != FM_OK) return FM_ERR_NOMEM;
    const void **ptr = FM_CAT(infer_pointers, SFX)(net, buf, chunk);
    const T *Xc[FM_MAX_INPUTS];
    T *Oc[FM_MAX_OUTPUTS];
    for (int64_t c = r0; c < r0 + n_rows; c += chunk) {
        const int64_t rows = c + chunk <= r0 + n_rows ? chunk : r0 + n_rows - c;
        for (int k = 0; k < net->n_inputs; k++) Xc[k] = X[k] + c * net->nodes[k].n_out;
        for (int k = 0; k < net->n_outputs; k++) Oc[k] = out[k] + c * net->nodes[net->outputs[k]].n_out;
        FM_CAT(infer_chunk, SFX)(net, params, Xc, rows, buf, ptr, Oc, NULL, NULL);
    }
    return FM_OK;
}

/* predict's split over threads: piece t of n_pieces is a block of rows. */
typedef struct {
    const fm_net *net;
    const T *params;
    const T *const *X;
    T *const *out;
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
    int st = FM_CAT(predict_rows, SFX)(s->net, s->params, s->X, lo, hi - lo, s->out);
    if (st != FM_OK) __atomic_store_n(&s->status, st, __ATOMIC_RELAXED);
}

void FM_CAT(fm_predict, SFX)(const fm_net *net, const T *params, const T *const *X__bi, int64_t n_rows,
                             T *const *out__bo, int *status) {
    *status = FM_OK;
    if (n_rows <= 0) return;
    /* Large batches: each thread runs the whole network on its own blocks of
     * rows -- no synchronization between layers, and the element-wise work is
     * split too; the GEMMs inside then stay on their thread.  Blocks start at
     * multiples of FM_SPLIT_ALIGN_M, as the GEMM's own splits do. */
    int nt = fm_threads_for_work((double)n_rows * (double)net->macs_per_row);
    if (n_rows < (int64_t)nt * FM_INFER_MIN_ROWS_PER_THREAD) nt = 1;
    if (nt <= 1) {
        *status = FM_CAT(predict_rows, SFX)(net, params, X__bi, 0, n_rows, out__bo);
        return;
    }
    FM_CAT(predict_split, SFX) s = {net, params, X__bi, out__bo, n_rows,
                                    (n_rows + FM_SPLIT_ALIGN_M - 1) / FM_SPLIT_ALIGN_M, 2 * nt, FM_OK};
    fm_parallel_pieces(nt, s.n_pieces, FM_CAT(predict_piece, SFX), &s);
    *status = s.status;
}

int FM_CAT(fm_evaluate, SFX)(const fm_net *net, const T *params, const fm_data *data, int64_t n_rows,
                             int64_t batch_size, const fm_loss_spec *losses, int n_metrics,
                             const fm_metric_spec *metrics, fm_stats *stats) {
    if (n_rows <= 0 || batch_size <= 0 ||
        FM_CAT(check_outputs, SFX)(net, losses, n_metrics, metrics) != FM_OK) return FM_ERR_ARG;
    const int64_t chunk = n_rows < batch_size ? n_rows : batch_size;
    int64_t out_total = 0;
    for (int k = 0; k < net->n_outputs; k++) out_total += net->nodes[net->outputs[k]].n_out;
    const int64_t slots = net->n_slots > 0 ? net->n_slots : 1;
    (void)slots;
    /* predictions and pre-activations of every output, a gradient scratch, then
     * infer_chunk's own scratch */
    const size_t own = ((size_t)(chunk * (2 * out_total + net->max_out_width)) * sizeof(T) + 63) & ~(size_t)63;
    if (fm_net_q8_reserve(net, chunk) != FM_OK) return FM_ERR_NOMEM;
    T *buf = (T *)malloc(own + FM_CAT(infer_scratch, SFX)(net, chunk));
    if (!buf) return FM_ERR_NOMEM;
    T *scratch = (T *)((char *)buf + own);
    const void **ptr = FM_CAT(infer_pointers, SFX)(net, scratch, chunk);
    T *P[FM_MAX_OUTPUTS], *Zl[FM_MAX_OUTPUTS];
    T *at = buf;
    for (int k = 0; k < net->n_outputs; k++) {
        const int64_t no = net->nodes[net->outputs[k]].n_out;
        P[k] = at; at += chunk * no;
        Zl[k] = at; at += chunk * no;
    }
    T *G = at;
    const double reg = FM_CAT(regularization_loss, SFX)(net, params);
    const T *Xc[FM_MAX_INPUTS], *Yc[FM_MAX_OUTPUTS];
    const int64_t *yc[FM_MAX_OUTPUTS];
    int status = FM_OK;
    for (int64_t r0 = 0; r0 < n_rows; r0 += chunk) {
        const int64_t rows = r0 + chunk <= n_rows ? chunk : n_rows - r0;
        for (int k = 0; k < net->n_inputs; k++) Xc[k] = (const T *)data->X[k] + r0 * net->nodes[k].n_out;
        double penalty;
        FM_CAT(infer_chunk, SFX)(net, params, Xc, rows, scratch, ptr, P, Zl, &penalty);
        const T *wc = data->w ? (const T *)data->w + r0 : NULL;
        double batch_loss = 0;
        for (int k = 0; k < net->n_outputs; k++) {
            const int64_t no = net->nodes[net->outputs[k]].n_out;
            const int32_t src = net->loss_node[k];
            const int act = net->nodes[src].kind == FM_KIND_INPUT ? FM_ACT_LINEAR : net->nodes[src].activation;
            Yc[k] = data->Y && data->Y[k] ? (const T *)data->Y[k] + r0 * no : NULL;
            yc[k] = data->y && data->y[k] ? data->y[k] + r0 : NULL;
            double lsum = 0;
            int pre;
            int st = FM_CAT(fm_loss_forward_backward, SFX)(&losses[k], act, P[k],
                                                           needs_z(act) ? Zl[net->z_owner[k]] : NULL,
                                                           Yc[k], yc[k], wc, rows, no, 0.0, &lsum, G, &pre);
            if (st != FM_OK) status = st;
            if (losses[k].sum_reduction) lsum *= (double)rows;
            stats->output_loss_sum[k] += lsum;
            batch_loss += losses[k].weight * lsum;
        }
        stats->loss_sum += batch_loss + (reg + penalty) * (double)rows;
        stats->rows += (double)rows;
        FM_CAT(add_weights, SFX)(stats, wc, rows);
        if (n_metrics)
            FM_CAT(update_metrics, SFX)(net, (const T *const *)P, Yc, yc, wc, rows, n_metrics, metrics,
                                        stats->metric_sum);
    }
    free(buf);
    return status;
}
