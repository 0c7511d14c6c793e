/* Optimizer updates with the Keras 3 rules.  Template body (T, SFX).
 *
 * One step over every variable (a segment of the flat parameter vector):
 *   1. add regularization gradients (l1 * sign(w) + 2 * l2 * w) to grads;
 *   2. clip (clipnorm per variable, global_clipnorm over all, clipvalue);
 *   3. decoupled weight decay  w -= w * weight_decay * lr   (Keras order);
 *   4. the optimizer's rule, reading and writing its slots in one pass, with
 *      subnormals flushed to zero (optim_kernels.h).
 * Slots are laid out slot-major: slot s of parameter p is slots[s * n_params + p].
 * Slot order per optimizer (the Python side names them the same way):
 *   SGD: momentum | RMSprop: velocity, momentum, average_gradient |
 *   Adagrad: accumulator | Adadelta: accumulated_grad, accumulated_delta_var |
 *   Adam/AdamW: m, v, v_hat | Adamax: m, u | Nadam: m, v
 * Then iterations += 1.
 */
/* The per-element rules, one tight loop each over restrict pointers so the
 * compiler vectorizes them; cloned for AVX-512 / AVX2 where the compiler can. */
FM_CLONES
static void FM_CAT(optimizer_rule, SFX)(int kind, int has_momentum, int nesterov, int centered,
                                        int amsgrad, T *restrict w, const T *restrict g,
                                        T *restrict a, T *restrict b, T *restrict c, int64_t n,
                                        T lr, T mom, T rho, T b1, T b2, T eps, T alpha,
                                        T nad_c1, T nad_c2, T nad_v) {
    const T one = 1;
    switch (kind) {
    case FM_OPT_SGD:
        if (!has_momentum) {
            for (int64_t i = 0; i < n; i++) w[i] -= lr * g[i];
        } else if (nesterov) {
            for (int64_t i = 0; i < n; i++) { T m = mom * a[i] - lr * g[i]; a[i] = m; w[i] += mom * m - lr * g[i]; }
        } else {
            for (int64_t i = 0; i < n; i++) { T m = mom * a[i] - lr * g[i]; a[i] = m; w[i] += m; }
        }
        break;
    case FM_OPT_RMSPROP:
        for (int64_t i = 0; i < n; i++) {
            T vel = rho * a[i] + (one - rho) * g[i] * g[i];
            a[i] = vel;
            T den = vel;
            if (centered) { T avg = rho * c[i] + (one - rho) * g[i]; c[i] = avg; den -= avg * avg; }
            T inc = lr * g[i] / sqrt(den + eps);
            if (has_momentum) { T m = mom * b[i] + inc; b[i] = m; w[i] -= m; }
            else w[i] -= inc;
        }
        break;
    case FM_OPT_ADAGRAD:
        for (int64_t i = 0; i < n; i++) {
            T acc = a[i] + g[i] * g[i];
            a[i] = acc;
            w[i] -= lr * g[i] / sqrt(acc + eps);
        }
        break;
    case FM_OPT_ADADELTA:
        for (int64_t i = 0; i < n; i++) {
            T ag = rho * a[i] + (one - rho) * g[i] * g[i];
            a[i] = ag;
            T dv = -sqrt(b[i] + eps) / sqrt(ag + eps) * g[i];
            b[i] = rho * b[i] + (one - rho) * dv * dv;
            w[i] += lr * dv;
        }
        break;
    case FM_OPT_ADAM:
    case FM_OPT_ADAMW:
        if (amsgrad) {
            for (int64_t i = 0; i < n; i++) {
                T m = a[i] + (g[i] - a[i]) * (one - b1);
                T vv = b[i] + (g[i] * g[i] - b[i]) * (one - b2);
                a[i] = m; b[i] = vv;
                T vh = c[i] > vv ? c[i] : vv;
                c[i] = vh;
                w[i] -= (m * alpha) / (sqrt(vh) + eps);
            }
        } else {
            for (int64_t i = 0; i < n; i++) {
                T m = a[i] + (g[i] - a[i]) * (one - b1);
                T vv = b[i] + (g[i] * g[i] - b[i]) * (one - b2);
                a[i] = m; b[i] = vv;
                w[i] -= (m * alpha) / (sqrt(vv) + eps);
            }
        }
        break;
    case FM_OPT_ADAMAX:
        for (int64_t i = 0; i < n; i++) {
            T m = a[i] + (g[i] - a[i]) * (one - b1);
            T ag = fabs(g[i]), bu = b2 * b[i];
            T u = bu > ag ? bu : ag;
            a[i] = m; b[i] = u;
            w[i] -= (m * alpha) / (u + eps);
        }
        break;
    case FM_OPT_NADAM:
        for (int64_t i = 0; i < n; i++) {
            T m = a[i] + (g[i] - a[i]) * (one - b1);
            T vv = b[i] + (g[i] * g[i] - b[i]) * (one - b2);
            a[i] = m; b[i] = vv;
            T mh = nad_c1 * m + nad_c2 * g[i];
            w[i] -= lr * mh / (sqrt(vv * nad_v) + eps);
        }
        break;
    default: break;
    }
}

/* One piece of a large variable's update (fm_parallel_pieces): the fast kernel when there is
 * one, with subnormals flushed on the thread that runs it (see optim_kernels.h). */
typedef struct {
    const fm_optim *opt;
    fm_adam_f32_fn fast;
    T *params, *grads, *s0, *s1, *s2;
    int64_t n;
    int n_pieces;
    T lr, mom, rho, b1, b2, eps, alpha, nad_c1, nad_c2, nad_v;
} FM_CAT(opt_split, SFX);

static void FM_CAT(opt_piece, SFX)(void *ctx, int c) {
    const FM_CAT(opt_split, SFX) *s = (const FM_CAT(opt_split, SFX) *)ctx;
    const fm_optim *opt = s->opt;
    const int64_t o = s->n * c / s->n_pieces, hi = s->n * (c + 1) / s->n_pieces;
    const T one = 1;
    const unsigned int csr = fm_flush_subnormals_begin();   /* this thread's */
    if (s->fast)
        s->fast((float *)(s->params + o), (const float *)(s->grads + o), (float *)(s->s0 + o),
                (float *)(s->s1 + o), hi - o, (float)(one - s->b1), (float)(one - s->b2), (float)s->alpha,
                (float)s->eps);
    else
        FM_CAT(optimizer_rule, SFX)(opt->kind, opt->momentum > 0, opt->nesterov, opt->centered, opt->amsgrad,
                                    s->params + o, s->grads + o, s->s0 + o, s->s1 + o, s->s2 + o, hi - o, s->lr,
                                    s->mom, s->rho, s->b1, s->b2, s->eps, s->alpha, s->nad_c1, s->nad_c2,
                                    s->nad_v);
    fm_flush_subnormals_end(csr);
}

void FM_CAT(fm_optimizer_step, SFX)(fm_optim *opt, int n_vars, const fm_var *vars,
                                    T *params, T *grads, T *slots, int64_t n_params, double lr,
                                    int max_threads) {
    /* 1. regularization */
    for (int v = 0; v < n_vars; v++) {
        const fm_var *var = &vars[v];
        if (var->l1 == 0 && var->l2 == 0) continue;
        const T l1 = (T)var->l1, l2x2 = (T)(2 * var->l2);
        T *w = params + var->off, *g = grads + var->off;
        for (int64_t i = 0; i < var->size; i++)
            g[i] += l1 * (T)((w[i] > 0) - (w[i] < 0)) + l2x2 * w[i];
    }
    /* 2. clipping */
    if (opt->global_clipnorm > 0) {
        double ss = 0;
        for (int v = 0; v < n_vars; v++) {
            const T *g = grads + vars[v].off;
            for (int64_t i = 0; i < vars[v].size; i++) ss += (double)g[i] * (double)g[i];
        }
        double norm = sqrt(ss), c = opt->global_clipnorm;
        if (norm > c) {
            T s = (T)(c / norm);
            for (int v = 0; v < n_vars; v++) {
                T *g = grads + vars[v].off;
                for (int64_t i = 0; i < vars[v].size; i++) g[i] *= s;
            }
        }
    }
    if (opt->clipnorm > 0) {
        for (int v = 0; v < n_vars; v++) {
            T *g = grads + vars[v].off;
            double ss = 0;
            for (int64_t i = 0; i < vars[v].size; i++) ss += (double)g[i] * (double)g[i];
            double norm = sqrt(ss), c = opt->clipnorm;
            if (norm > c) {
                T s = (T)(c / norm);
                for (int64_t i = 0; i < vars[v].size; i++) g[i] *= s;
            }
        }
    }
    if (opt->clipvalue > 0) {
        const T c = (T)opt->clipvalue;
        for (int v = 0; v < n_vars; v++) {
            T *g = grads + vars[v].off;
            for (int64_t i = 0; i < vars[v].size; i++) g[i] = g[i] > c ? c : (g[i] < -c ? -c : g[i]);
        }
    }
    /* 3. decoupled weight decay */
    if (opt->weight_decay > 0) {
        const T f = (T)(opt->weight_decay * lr);
        for (int v = 0; v < n_vars; v++) {
            T *w = params + vars[v].off;
            for (int64_t i = 0; i < vars[v].size; i++) w[i] -= w[i] * f;
        }
    }
    /* 4. the rule */
    const double t = (double)(opt->iterations + 1);
    const T eps = (T)opt->epsilon, b1 = (T)opt->beta1, b2 = (T)opt->beta2;
    const T rho = (T)opt->rho, mom = (T)opt->momentum, lrT = (T)lr;
    T *s0 = slots, *s1 = slots + n_params, *s2 = slots + 2 * n_params;
    /* scalars of the step */
    T alpha = 0, nad_c1 = 0, nad_c2 = 0, nad_v = 0;
    if (opt->kind == FM_OPT_ADAM || opt->kind == FM_OPT_ADAMW)
        alpha = (T)(lr * sqrt(1 - pow(opt->beta2, t)) / (1 - pow(opt->beta1, t)));
    if (opt->kind == FM_OPT_ADAMAX) alpha = (T)(lr / (1 - pow(opt->beta1, t)));
    if (opt->kind == FM_OPT_NADAM) {
        /* Keras 3: u_t = b1 (1 - 0.5 * 0.96^t); the product is advanced once per step. */
        double u_t = opt->beta1 * (1 - 0.5 * pow(0.96, t));
        double u_t1 = opt->beta1 * (1 - 0.5 * pow(0.96, t + 1));
        double u_prod = opt->u_product * u_t;
        double u_prod1 = u_prod * u_t1;
        nad_c1 = (T)(u_t1 / (1 - u_prod1));
        nad_c2 = (T)((1 - u_t) / (1 - u_prod));
        nad_v = (T)(1 / (1 - pow(opt->beta2, t)));
        opt->u_product = u_prod;
    }
    /* float32 Adam/AdamW without amsgrad: the vectorized kernel of this CPU, if any
     * (optim_kernels.h); it computes the same m and v, and the update to within an ulp */
    const T one = 1;
    const fm_adam_f32_fn fast = sizeof(T) == sizeof(float) && !opt->amsgrad &&
                                (opt->kind == FM_OPT_ADAM || opt->kind == FM_OPT_ADAMW)
                                ? fm_optim_table()->adam_f32 : NULL;
    const unsigned int csr = fm_flush_subnormals_begin();   /* see optim_kernels.h */
    for (int v = 0; v < n_vars; v++) {
        const int64_t off = vars[v].off, n = vars[v].size;
        /* Element-wise and memory-bound: large variables are split over threads
         * (each element is updated by one thread, so results do not depend on
         * the thread count). */
        int nt = n >= FM_OPT_PAR_MIN && max_threads != 1
                 ? fm_threads_available(max_threads > 0 ? max_threads : fm_get_num_threads()) : 1;
        if (nt > 1) {
            FM_CAT(opt_split, SFX) sp = {opt, fast, params + off, grads + off, s0 + off, s1 + off, s2 + off, n,
                                         2 * nt, lrT, mom, rho, b1, b2, eps, alpha, nad_c1, nad_c2, nad_v};
            fm_parallel_pieces(nt, sp.n_pieces, FM_CAT(opt_piece, SFX), &sp);
            continue;
        }
        if (fast) fast((float *)(params + off), (const float *)(grads + off), (float *)(s0 + off),
                       (float *)(s1 + off), n, (float)(one - b1), (float)(one - b2), (float)alpha,
                       (float)eps);
        else FM_CAT(optimizer_rule, SFX)(opt->kind, opt->momentum > 0, opt->nesterov, opt->centered,
                                         opt->amsgrad, params + off, grads + off, s0 + off, s1 + off,
                                         s2 + off, n, lrT, mom, rho, b1, b2, eps, alpha, nad_c1, nad_c2,
                                         nad_v);
    }
    fm_flush_subnormals_end(csr);
    opt->iterations += 1;
}
