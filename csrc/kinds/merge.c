/* Element-wise merges of inputs of one width (keras.layers.Add, Subtract,
 * Multiply, Average, Maximum, Minimum): one family, six kinds that differ only
 * in the operation.  Maximum and Minimum send the gradient to the first input
 * that holds the extreme value (ties, a set of measure zero, are not split). */
#ifndef FM_KIND_BODY
#define FM_KIND_FILE "merge.c"
#include "instantiate.h"

static int merge_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    (void)n_params;
    if (!fm_same_width(n, in_width)) return FM_ERR_ARG;
    if (n->kind == FM_KIND_SUBTRACT) return n->n_inputs == 2 ? FM_OK : FM_ERR_ARG;
    return n->n_inputs >= 1 ? FM_OK : FM_ERR_ARG;
}

#define FM_MERGE_KIND(NAME, KEY)                                                          \
    const fm_kind fm_kind_##NAME = {                                                      \
        KEY, 0, 0, 0, merge_check, NULL,                                                  \
        {merge_forward_f32, merge_forward_f64}, {merge_backward_f32, merge_backward_f64}, \
    };
FM_MERGE_KIND(add, "add")
FM_MERGE_KIND(subtract, "subtract")
FM_MERGE_KIND(multiply, "multiply")
FM_MERGE_KIND(average, "average")
FM_MERGE_KIND(maximum, "maximum")
FM_MERGE_KIND(minimum, "minimum")
#undef FM_MERGE_KIND

#else

static void FM_CAT(merge_forward, SFX)(const fm_fwd *a) {
    const fm_node *nd = a->node;
    const int k = nd->n_inputs, kind = nd->kind;
    const int64_t n = a->rows * nd->n_out;
    T *out = (T *)a->out;
    memcpy(out, a->in[0], (size_t)n * sizeof(T));
    for (int i = 1; i < k; i++) {
        const T *x = (const T *)a->in[i];
        switch (kind) {
        case FM_KIND_SUBTRACT: for (int64_t e = 0; e < n; e++) out[e] -= x[e]; break;
        case FM_KIND_MULTIPLY: for (int64_t e = 0; e < n; e++) out[e] *= x[e]; break;
        case FM_KIND_MAXIMUM: for (int64_t e = 0; e < n; e++) out[e] = x[e] > out[e] ? x[e] : out[e]; break;
        case FM_KIND_MINIMUM: for (int64_t e = 0; e < n; e++) out[e] = x[e] < out[e] ? x[e] : out[e]; break;
        default: for (int64_t e = 0; e < n; e++) out[e] += x[e]; break;   /* add, average */
        }
    }
    if (kind == FM_KIND_AVERAGE) {
        const T inv = (T)1 / (T)k;
        for (int64_t e = 0; e < n; e++) out[e] *= inv;
    }
}

/* The index of the input that holds the extreme value out[e] first. */
static int FM_CAT(merge_winner, SFX)(const fm_bwd *a, int64_t e) {
    const T v = ((const T *)a->out)[e];
    for (int i = 0; i < a->node->n_inputs; i++)
        if (((const T *)a->in[i])[e] == v) return i;
    return 0;   /* NaN: the first */
}

static void FM_CAT(merge_backward, SFX)(const fm_bwd *a) {
    const fm_node *nd = a->node;
    const int k = nd->n_inputs, kind = nd->kind;
    const int64_t n = a->rows * nd->n_out;
    const T *g = (const T *)a->dout;
    for (int i = 0; i < k; i++) {
        T *din = (T *)a->din[i];
        if (!din) continue;
        const int add = a->din_add[i];
        for (int64_t e = 0; e < n; e++) {
            T v;
            switch (kind) {
            case FM_KIND_SUBTRACT: v = i == 0 ? g[e] : -g[e]; break;
            case FM_KIND_AVERAGE: v = g[e] / (T)k; break;
            case FM_KIND_MULTIPLY: {
                T p = g[e];
                for (int j = 0; j < k; j++) if (j != i) p *= ((const T *)a->in[j])[e];
                v = p;
                break;
            }
            case FM_KIND_MAXIMUM:
            case FM_KIND_MINIMUM: v = FM_CAT(merge_winner, SFX)(a, e) == i ? g[e] : (T)0; break;
            default: v = g[e]; break;
            }
            din[e] = add ? din[e] + v : v;
        }
    }
}

#endif
