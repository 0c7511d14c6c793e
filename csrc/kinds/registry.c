/* The layer kinds the engine runs, by their enum fm_kind code (fastmlp.h). */
#include "kind.h"

extern const fm_kind fm_kind_dense, fm_kind_dropout, fm_kind_batchnorm, fm_kind_activation, fm_kind_noise,
    fm_kind_concatenate, fm_kind_add, fm_kind_subtract, fm_kind_multiply, fm_kind_average, fm_kind_maximum,
    fm_kind_minimum, fm_kind_prelu,
    fm_kind_normalization, fm_kind_rescaling, fm_kind_layer_norm, fm_kind_unit_norm, fm_kind_activity_reg,
    fm_kind_embedding, fm_kind_gaussian_dropout, fm_kind_alpha_dropout;

/* A model input: the network points its output at the rows of that input. */
static int input_check(const fm_node *n, const int64_t *in_width, int64_t n_params) {
    (void)in_width; (void)n_params;
    return n->n_inputs == 0 && n->n_out > 0 ? FM_OK : FM_ERR_ARG;
}
static const fm_kind fm_kind_input = {"input", 0, 0, 0, input_check, NULL, {NULL, NULL}, {NULL, NULL}};

static const fm_kind *const kinds[FM_KIND_COUNT] = {
    [FM_KIND_INPUT] = &fm_kind_input,
    [FM_KIND_DENSE] = &fm_kind_dense,
    [FM_KIND_DROPOUT] = &fm_kind_dropout,
    [FM_KIND_BATCHNORM] = &fm_kind_batchnorm,
    [FM_KIND_ACTIVATION] = &fm_kind_activation,
    [FM_KIND_NOISE] = &fm_kind_noise,
    [FM_KIND_CONCATENATE] = &fm_kind_concatenate,
    [FM_KIND_ADD] = &fm_kind_add,
    [FM_KIND_SUBTRACT] = &fm_kind_subtract,
    [FM_KIND_MULTIPLY] = &fm_kind_multiply,
    [FM_KIND_AVERAGE] = &fm_kind_average,
    [FM_KIND_MAXIMUM] = &fm_kind_maximum,
    [FM_KIND_MINIMUM] = &fm_kind_minimum,
    [FM_KIND_PRELU] = &fm_kind_prelu,
    [FM_KIND_NORMALIZATION] = &fm_kind_normalization,
    [FM_KIND_RESCALING] = &fm_kind_rescaling,
    [FM_KIND_LAYER_NORM] = &fm_kind_layer_norm,
    [FM_KIND_UNIT_NORM] = &fm_kind_unit_norm,
    [FM_KIND_ACTIVITY_REG] = &fm_kind_activity_reg,
    [FM_KIND_EMBEDDING] = &fm_kind_embedding,
    [FM_KIND_GAUSSIAN_DROPOUT] = &fm_kind_gaussian_dropout,
    [FM_KIND_ALPHA_DROPOUT] = &fm_kind_alpha_dropout,
};

const fm_kind *fm_kind_get(int kind) {
    return kind >= 0 && kind < FM_KIND_COUNT ? kinds[kind] : NULL;
}

const char *fm_kind_name(int kind) {
    const fm_kind *k = fm_kind_get(kind);
    return k ? k->name : NULL;
}
