/* The backward of the noise kinds that keep a per-element factor in their workspace in
 * training (Dropout's scaled keep mask, GaussianDropout's noise, AlphaDropout's scale):
 * d in = d out * factor, or d out itself where the node passed its input through (not
 * training, or rate 0).  Included, with no guard, in the template body of a kind file,
 * once per instantiation (T and SFX set): its fm_kind table names mask_backward_f32/_f64. */
static void FM_CAT(mask_backward, SFX)(const fm_bwd *a) {
    T *din = (T *)a->din[0];
    if (!din) return;
    const T *g = (const T *)a->dout, *factor = (const T *)a->ws;
    const int64_t n = a->rows * a->node->n_out;
    const int masked = a->training && a->node->rate > 0;
    if (a->din_add[0]) {
        for (int64_t i = 0; i < n; i++) din[i] += masked ? g[i] * factor[i] : g[i];
    } else if (masked) {
        for (int64_t i = 0; i < n; i++) din[i] = g[i] * factor[i];
    } else {
        memcpy(din, g, (size_t)n * sizeof(T));
    }
}
