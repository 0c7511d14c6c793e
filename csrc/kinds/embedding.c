/* Embedding: each of a row's n ids (float values, whole numbers in [0,
 * input_dim)) selects one row of the table E (input_dim x D, `param` =
 * input_dim, at w_off); the output row is the n selected rows side by side
 * (n * D = n_out), which is keras.layers.Embedding's (n, D) sample in C order.
 *
 * The wrapper checks the ids before it enters the engine (the layer reads a
 * model input directly); here an id that is not in [0, input_dim) (NaN
 * included) selects nothing: its output is zeros and it takes no gradient, so
 * that bad data can never read or write outside the table.  An id is the value
 * truncated toward zero, as Keras's cast to int32.
 *
 * Backward: dE is zero except the rows used, which receive the sum of their
 * output gradients (a scatter-add over the batch's ids); the ids themselves
 * have no gradient (din, when asked for, is zeros). */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "embedding.c"
#include "instantiate.h"

static int embedding_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    if (n->n_inputs != 1 || in_width[0] <= 0 || n->n_out % in_width[0] != 0 || n->param <= 0 || n->w_off < 0)
        return FM_ERR_ARG;
    const int64_t d = n->n_out / in_width[0];
    if (d <= 0 || n->param > INT64_MAX / d) return FM_ERR_ARG;
    return fm_segment_ok(n->w_off, n->param * d, n_params) ? FM_OK : FM_ERR_ARG;
}

const fm_kind fm_kind_embedding = {
    "embedding", 0, 0, 1, embedding_check, NULL,
    {embedding_forward_f32, embedding_forward_f64}, {embedding_backward_f32, embedding_backward_f64},
};

#else

/* The table row of id value v, or -1 when v is not an id of a table of n_rows. */
static inline int64_t FM_CAT(embedding_row, SFX)(T v, int64_t n_rows) {
    if (!(v >= 0 && v < (T)n_rows)) return -1;   /* NaN fails both */
    const int64_t row = (int64_t)v;
    return row < n_rows ? row : -1;
}

static void FM_CAT(embedding_forward, SFX)(const fm_fwd *a) {
    const int64_t n = a->in_width[0], d = a->node->n_out / n, n_rows = a->node->param;
    const T *ids__bn = (const T *)a->in[0], *E__vd = (const T *)a->params + a->node->w_off;
    T *out__bnd = (T *)a->out;
    for (int64_t e = 0; e < a->rows * n; e++) {
        const int64_t row = FM_CAT(embedding_row, SFX)(ids__bn[e], n_rows);
        if (row >= 0) memcpy(out__bnd + e * d, E__vd + row * d, (size_t)d * sizeof(T));
        else memset(out__bnd + e * d, 0, (size_t)d * sizeof(T));
    }
}

static void FM_CAT(embedding_backward, SFX)(const fm_bwd *a) {
    const int64_t n = a->in_width[0], d = a->node->n_out / n, n_rows = a->node->param;
    const T *ids__bn = (const T *)a->in[0], *g__bnd = (const T *)a->dout;
    T *dE__vd = (T *)a->grads + a->node->w_off;
    if (!a->accumulate_weights) memset(dE__vd, 0, (size_t)(n_rows * d) * sizeof(T));
    for (int64_t e = 0; e < a->rows * n; e++) {
        const int64_t row = FM_CAT(embedding_row, SFX)(ids__bn[e], n_rows);
        if (row < 0) continue;
        T *dst = dE__vd + row * d;
        const T *src = g__bnd + e * d;
        for (int64_t k = 0; k < d; k++) dst[k] += src[k];
    }
    T *din = (T *)a->din[0];
    if (din && !a->din_add[0]) memset(din, 0, (size_t)(a->rows * n) * sizeof(T));
}

#endif
