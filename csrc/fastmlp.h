/* fastmlp engine: the C11 interface of the whole-network kernels.
 *
 * No Python headers.  Every numeric kernel exists twice, for float (_f32) and
 * double (_f64); the bodies live once in the *_impl.h files and are
 * instantiated by engine.c.  Matrices are row-major; axis names follow the
 * thinc convention in argument names: X__bi is (batch, in), W__io is (in, out).
 *
 * Error handling: functions return FM_OK (0) or a negative FM_ERR_* code and
 * never abort; the Cython wrapper turns codes into Python exceptions.
 */
#ifndef FASTMLP_H
#define FASTMLP_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

enum fm_status {
    FM_OK = 0,
    FM_ERR_NOMEM = -1,
    FM_ERR_LABEL = -2,      /* a sparse label outside [0, n_classes) */
    FM_ERR_ARG = -3,        /* inconsistent arguments (a wrapper bug) */
};

enum fm_activation {
    FM_ACT_LINEAR = 0, FM_ACT_RELU, FM_ACT_SIGMOID, FM_ACT_TANH, FM_ACT_SOFTMAX,
    FM_ACT_ELU, FM_ACT_SELU, FM_ACT_LEAKY_RELU, FM_ACT_GELU, FM_ACT_SOFTPLUS,
    FM_ACT_SOFTSIGN, FM_ACT_SWISH, FM_ACT_HARD_SIGMOID, FM_ACT_EXPONENTIAL,
    FM_ACT_RELU6,
    FM_ACT_RELU_CAP,          /* min(max(x, 0), alpha): keras.layers.ReLU(max_value=alpha) */
    FM_ACT_LOG_SOFTMAX,       /* x - max - log(sum(exp(x - max))) over the feature axis */
    FM_ACT_COUNT
};

enum fm_loss {
    FM_LOSS_MSE = 0, FM_LOSS_MAE, FM_LOSS_MAPE, FM_LOSS_MSLE, FM_LOSS_HUBER,
    FM_LOSS_LOG_COSH, FM_LOSS_BCE, FM_LOSS_CCE, FM_LOSS_SCCE, FM_LOSS_HINGE,
    FM_LOSS_SQUARED_HINGE, FM_LOSS_CATEGORICAL_HINGE, FM_LOSS_KLD,
    FM_LOSS_POISSON, FM_LOSS_COUNT
};

enum fm_optimizer {
    FM_OPT_SGD = 0, FM_OPT_RMSPROP, FM_OPT_ADAGRAD, FM_OPT_ADADELTA, FM_OPT_ADAM,
    FM_OPT_ADAMW, FM_OPT_ADAMAX, FM_OPT_NADAM, FM_OPT_COUNT
};

enum fm_metric {
    FM_MET_BINARY_ACCURACY = 0, FM_MET_CATEGORICAL_ACCURACY,
    FM_MET_SPARSE_CATEGORICAL_ACCURACY, FM_MET_TOP_K, FM_MET_SPARSE_TOP_K,
    FM_MET_MAE, FM_MET_MSE,
    /* stateful: counts accumulate in `state` (float64), the wrapper finishes */
    FM_MET_CONFUSION,         /* state[3]: tp, fp, fn at threshold `param` over all units
                               * (or unit `class_id` when >= 0) */
    FM_MET_THRESHOLD_HISTOGRAM, /* state[2 * (bins + 1)]: weights of positives and negatives
                               * by the number of thresholds below the prediction (clipped
                               * to [0, 1] as Keras does); param = num_thresholds (bins);
                               * param2 = 1: AUC's thresholds (-eps, ..., 1 + eps), 0: the
                               * ends are 0 and 1 (PrecisionAtRecall and its kin) */
    FM_MET_PER_CLASS,         /* state[4 * n_out]: tp, fp, fn, support per class; a
                               * prediction is positive where > param, or, when param < 0,
                               * where it equals the row's maximum and is not ~0 (Keras's
                               * FBetaScore with threshold=None) */
    /* simple (a weighted sum of per-row values, like the first kinds) */
    FM_MET_LOSS,              /* a loss's per-row value (the spec's `loss`), computed from
                               * the outputs as probabilities (or logits with from_logits),
                               * never fused: Keras's cross-entropy, hinge, KL, Poisson,
                               * log-cosh, MAPE and MSLE metrics */
    FM_MET_COSINE,            /* cosine similarity of target and output rows (norms
                               * floored at 1e-7, as keras.ops.normalize) */
    /* stateful */
    FM_MET_CONFUSION_AT,      /* state[4 * n_thresholds]: tp, fp, tn, fn at each threshold
                               * of the spec's `thresholds` (positive: output > threshold,
                               * target != 0), over all units or unit class_id */
    FM_MET_R2,                /* state[4 * n_out + 1]: per unit sum w*y, sum w*y*y,
                               * sum w*(y - p)^2, sum w; then the number of targets
                               * (rows x units, as Keras counts them) */
    FM_MET_COUNT
};

/* Layer kinds: each is one file in csrc/kinds/ behind the table of functions in
 * csrc/kinds/kind.h, registered in csrc/kinds/registry.c.  The Python registry
 * (src/fastmlp/layers/registry.py) reads these names and values through Cython:
 * this enum is the only place the codes are written down.  Several Keras layer
 * classes may run as one engine kind (ReLU, Softmax, ELU and LeakyReLU are
 * ACTIVATION nodes). */
enum fm_kind {
    FM_KIND_INPUT = 0,        /* a model input: its rows are the node's output */
    FM_KIND_DENSE,            /* out = act(in @ W + b) */
    FM_KIND_DROPOUT,          /* inverted dropout in training, the identity otherwise */
    FM_KIND_BATCHNORM,        /* batch normalization over the feature axis */
    FM_KIND_ACTIVATION,       /* out = act(in) */
    FM_KIND_NOISE,            /* out = in + rate * N(0, 1) in training, the identity otherwise */
    FM_KIND_CONCATENATE,      /* inputs side by side along the feature axis */
    FM_KIND_ADD,              /* element-wise merges of inputs of one width */
    FM_KIND_SUBTRACT,
    FM_KIND_MULTIPLY,
    FM_KIND_AVERAGE,
    FM_KIND_MAXIMUM,
    FM_KIND_MINIMUM,
    FM_KIND_PRELU,            /* out = x > 0 ? x : alpha * x, alpha trainable per feature */
    FM_KIND_NORMALIZATION,    /* out = (x - mean) / max(sqrt(var), epsilon), or its inverse */
    FM_KIND_RESCALING,        /* out = x * scale + offset, per feature */
    FM_KIND_LAYER_NORM,       /* normalization over each sample's features */
    FM_KIND_UNIT_NORM,        /* out = x / |x| over each sample's features */
    FM_KIND_ACTIVITY_REG,     /* out = in, adding (l1 |out| + l2 out^2) / rows to the loss */
    FM_KIND_EMBEDDING,        /* each id of the row selects a row of a trainable table (param rows) */
    FM_KIND_GAUSSIAN_DROPOUT, /* out = in * N(1, rate / (1 - rate)) in training, the identity otherwise */
    FM_KIND_ALPHA_DROPOUT,    /* SELU-preserving dropout in training, the identity otherwise */
    FM_KIND_COUNT
};

#define FM_MAX_METRICS 64
#define FM_MAX_INPUTS 64
#define FM_MAX_OUTPUTS 16
#define FM_MAX_NODES 65536
#define FM_MAX_NODE_INPUTS 1024

/* One node of the network graph: one call of a layer.  A layer called twice is
 * two nodes that share their parameter offsets.  Nodes are stored in
 * topological order; the model inputs come first (kind INPUT). */
typedef struct {
    int kind;                 /* fm_kind */
    int n_inputs;             /* its inputs are edges[in_begin .. in_begin + n_inputs) */
    int64_t in_begin;
    int64_t n_out;            /* output width (features per row) */
    int activation;           /* fm_activation applied after the kind's own work (linear: none) */
    double act_alpha;         /* elu alpha, leaky_relu negative slope */
    int64_t w_off, b_off;     /* offsets into the flat parameter vector; < 0: absent */
    int64_t aux_off, var_off; /* batch normalization: moving mean and variance */
    double rate;              /* dropout rates, noise standard deviation */
    uint64_t seed;            /* dropout, noise: the layer's own seed, 0 = the network's */
    int64_t stream;           /* dropout, noise: the random stream's number (the node's
                               * place among the non-input nodes of a Sequential) */
    double momentum, epsilon; /* batch normalization */
    int64_t param;            /* a kind's own integer parameter (prelu: its number of slopes;
                               * embedding: the table's rows, input_dim) */
    int frozen;               /* batch normalization of a non-trainable layer: inference mode
                               * (moving statistics, not updated) in training too, as Keras 3 */
} fm_node;

/* One trainable variable: a segment of the flat parameter vector. */
typedef struct {
    int64_t off, size;
    double l1, l2;            /* regularization factors (0: none) */
} fm_var;

typedef struct {
    int kind;                 /* fm_loss */
    int from_logits;
    double label_smoothing;
    double delta;             /* huber */
    int sum_reduction;        /* Keras reduction "sum": a batch's loss is the sum over its rows,
                               * not the mean ("sum_over_batch_size") */
    double weight;            /* the output's loss weight (Keras loss_weights; 1 by default) */
} fm_loss_spec;

typedef struct {
    int kind;                 /* fm_metric */
    double param;             /* threshold (binary accuracy) or k (top-k) */
    int64_t class_id;         /* confusion: one unit only when >= 0 */
    double *state;            /* stateful metrics: their counts */
    int output;               /* the model output it watches */
    double param2;            /* a second parameter (threshold histogram: see above) */
    const double *thresholds; /* FM_MET_CONFUSION_AT: n_thresholds values */
    int64_t n_thresholds;
    fm_loss_spec loss;        /* FM_MET_LOSS: the loss whose per-row value is averaged */
    int weighted;             /* in a pass (fm_train, fm_evaluate): 1 when the sample weights
                               * apply (Keras's weighted_metrics), 0 when each row counts 1
                               * (Keras's metrics); fm_metrics_update uses the w it is given */
} fm_metric_spec;

typedef struct {
    int kind;                 /* fm_optimizer */
    double beta1, beta2, epsilon, rho, momentum;
    int nesterov, centered, amsgrad;
    double weight_decay;      /* 0: none */
    double clipnorm, clipvalue, global_clipnorm;   /* <= 0: off */
    int64_t iterations;       /* steps taken so far (state) */
    double u_product;         /* Nadam's running product (state) */
} fm_optim;

/* Sums a pass accumulates; the wrapper divides. */
typedef struct {
    double loss_sum;          /* sum over batches of batch_loss * batch_rows (all outputs,
                               * weighted, with regularization) */
    double output_loss_sum[FM_MAX_OUTPUTS];   /* the same for each output's loss, before its weight */
    double rows;              /* rows seen */
    double weight_sum;        /* sum of sample weights (metric denominator) */
    double metric_sum[FM_MAX_METRICS];
} fm_stats;

/* The rows a pass reads: one array per model input, targets per output (dense
 * targets Y or sparse labels y, as that output's loss wants), and one sample
 * weight per row (NULL: all 1). */
typedef struct {
    const void *const *X;     /* n_inputs arrays, rows x the input's width */
    const void *const *Y;     /* n_outputs: rows x the output's width, or NULL */
    const int64_t *const *y;  /* n_outputs: one label per row, or NULL */
    const void *w;
} fm_data;

/* The names by which Python knows the codes (NULL past the last): the layer
 * kinds' (their fm_kind tables) and the activations'. */
const char *fm_kind_name(int kind);
const char *fm_activation_name(int act);

/* The network: a graph of nodes over a flat parameter vector owned by the
 * caller, plus gradient and workspace buffers owned by the net. */
typedef struct fm_net fm_net;

/* Status FM_ERR_ARG (and NULL) when the graph is malformed: a node that reads a
 * later node, widths a kind does not accept, parameter segments outside the
 * vector, outputs that are not nodes. */
fm_net *fm_net_create(int is_f64, int n_nodes, const fm_node *nodes, int64_t n_edges, const int32_t *edges,
                      int n_outputs, const int32_t *outputs, int n_vars, const fm_var *vars, int64_t n_params,
                      int *status);
int fm_net_n_inputs(const fm_net *net);
int fm_net_n_outputs(const fm_net *net);
int64_t fm_net_input_width(const fm_net *net, int k);
int64_t fm_net_output_width(const fm_net *net, int k);
void fm_net_free(fm_net *net);
int fm_net_is_f64(const fm_net *net);
/* Runs Dense node `node` of a float32 network with the int8 kernel q at
 * inference (predict, evaluate; q NULL: back to float).  q must have the node's
 * widths and outlive its use; training never reads it.  FM_ERR_ARG for a
 * float64 network, a node that is not Dense, or other widths. */
struct fm_q8_dense;
int fm_net_set_q8(fm_net *net, int node, const struct fm_q8_dense *q);
/* The same for a bfloat16 kernel (bgemm.h: Keras's mixed_bfloat16 policy). */
struct fm_bf16_dense;
int fm_net_set_bf16(fm_net *net, int node, const struct fm_bf16_dense *b);
int64_t fm_net_n_params(const fm_net *net);
/* Gradient of the last loss_and_grads / train step (flat, like the parameters). */
void *fm_net_grads(fm_net *net);
/* Output k of the last training batch (its first `rows` rows x the output's
 * width, in training mode, before the step's update); NULL for a k out of range
 * or more rows than the training workspace holds.  Python metrics read a
 * batch's predictions here. */
const void *fm_net_output(const fm_net *net, int k, int64_t rows);

/* 1 when all n values are finite (no NaN, no infinity), else 0. */
int fm_all_finite_f32(const float *x, int64_t n);
int fm_all_finite_f64(const double *x, int64_t n);

/* Counter-based random numbers (resumable: depend only on seed and counters). */
uint64_t fm_hash64(uint64_t key, uint64_t counter);
void fm_permutation(uint64_t seed, uint64_t epoch, int64_t n, int64_t *out);

/* Instantiated for T = float (_f32) and T = double (_f64). */
#define FM_DECLARE(T, SFX)                                                              \
void fm_activation_forward##SFX(int act, double alpha, T *A__bo, T *Z__bo,              \
                                const T *b__o, int64_t n_rows, int64_t n_out);         \
void fm_activation_backward##SFX(int act, double alpha, const T *A__bo, const T *Z__bo, \
                                 T *dA__bo, int64_t n_rows, int64_t n_out);            \
/* A dense layer's forward as one GEMM: C = act(alpha*op(A)@op(B) + beta*C + b),  \
 * bias and activation applied to each tile of C as it is finished; Z__mn (row    \
 * stride ldc) receives the pre-activation when not NULL; b__n may be NULL.       \
 * Arguments after Z__mn as fm_gemm_*. */                                          \
void fm_gemm_bias_act##SFX(int act, double act_alpha, const T *b__n, T *Z__mn,          \
                           int ta, int tb, int64_t M, int64_t N, int64_t K, T alpha,    \
                           const T *A, int64_t lda, const T *B, int64_t ldb, T beta,    \
                           T *C, int64_t ldc);                                         \
/* C = (alpha*op(A)@op(B) + beta*C) * act'(.), the derivative taken from a layer's  \
 * output A__mn and pre-activation Z__mn (row stride ldc; Z__mn may be NULL where   \
 * fm_activation_backward allows) and applied to each tile of C as it is finished:  \
 * the gradient a layer hands back, already through the previous layer's activation. */ \
void fm_gemm_act_grad##SFX(int act, double act_alpha, const T *A__mn, const T *Z__mn,   \
                           int ta, int tb, int64_t M, int64_t N, int64_t K, T alpha,    \
                           const T *A, int64_t lda, const T *B, int64_t ldb, T beta,    \
                           T *C, int64_t ldc);                                         \
int fm_loss_forward_backward##SFX(const fm_loss_spec *loss, int act, const T *A__bo,   \
                                  const T *Z__bo, const T *Y__bo, const int64_t *y__b, \
                                  const T *w__b, int64_t n_rows, int64_t n_out,        \
                                  double grad_scale, double *loss_sum, T *dZ__bo,      \
                                  int *dz_is_pre_activation);                          \
void fm_metrics_update##SFX(int n_metrics, const fm_metric_spec *metrics,              \
                            const T *P__bo, const T *Y__bo, const int64_t *y__b,       \
                            const T *w__b, int64_t n_rows, int64_t n_out,              \
                            double *metric_sum);                                       \
/* max_threads: the most threads the update may use (0: the library's number); \
 * large variables are split over them. */                                            \
void fm_optimizer_step##SFX(fm_optim *opt, int n_vars, const fm_var *vars,             \
                            T *params, T *grads, T *slots, int64_t n_params, double lr, \
                            int max_threads);                                          \
/* Outputs of the network for n_rows rows (inference mode): out[k] is rows x \
 * output k's width. */                                                               \
void fm_predict##SFX(const fm_net *net, const T *params, const T *const *X, int64_t n_rows, \
                     T *const *out, int *status);                                     \
/* One batch: loss (with regularization) and the flat gradient (fm_net_grads). */      \
int fm_loss_and_grads##SFX(fm_net *net, const T *params, const fm_data *data,          \
                           int64_t n_rows, const fm_loss_spec *losses, uint64_t seed,  \
                           int64_t step, int training, double *loss_value);            \
int fm_evaluate##SFX(const fm_net *net, const T *params, const fm_data *data,          \
                     int64_t n_rows, int64_t batch_size, const fm_loss_spec *losses,   \
                     int n_metrics, const fm_metric_spec *metrics, fm_stats *stats);   \
/* Batches [batch_begin, batch_end) of an epoch (rows in `order`, or as they are). */  \
int fm_train##SFX(fm_net *net, T *params, T *slots, fm_optim *opt, const fm_data *data, \
                  const int64_t *order__n, int64_t n_rows, int64_t batch_size,         \
                  int64_t batch_begin, int64_t batch_end, const double *lr_per_batch,  \
                  const fm_loss_spec *losses, int n_metrics, const fm_metric_spec *metrics, \
                  uint64_t seed, fm_stats *stats);

FM_DECLARE(float, _f32)
FM_DECLARE(double, _f64)
#undef FM_DECLARE

#ifdef __cplusplus
}
#endif
#endif
