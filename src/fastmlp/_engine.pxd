# Declarations of the C11 engine in csrc/ — nothing else lives here.
from libc.stdint cimport int8_t, int32_t, int64_t, uint16_t, uint64_t

cdef extern from "fastmlp.h" nogil:
    enum: FM_OK, FM_ERR_NOMEM, FM_ERR_LABEL, FM_ERR_ARG
    enum: FM_MAX_METRICS
    enum: FM_MAX_INPUTS, FM_MAX_OUTPUTS, FM_MAX_NODES, FM_MAX_NODE_INPUTS
    enum: FM_ACT_GELU, FM_ACT_SWISH, FM_ACT_COUNT, FM_KIND_COUNT
    const char *fm_kind_name(int kind)
    const char *fm_activation_name(int act)

    ctypedef struct fm_node:
        int kind
        int n_inputs
        int64_t in_begin
        int64_t n_out
        int activation
        double act_alpha
        int64_t w_off, b_off, aux_off, var_off
        double rate
        uint64_t seed
        int64_t stream
        double momentum, epsilon
        int64_t param
        int frozen

    ctypedef struct fm_var:
        int64_t off, size
        double l1, l2

    ctypedef struct fm_loss_spec:
        int kind
        int from_logits
        double label_smoothing
        double delta
        int sum_reduction
        double weight

    ctypedef struct fm_metric_spec:
        int kind
        double param
        int64_t class_id
        double *state
        int output
        double param2
        const double *thresholds
        int64_t n_thresholds
        fm_loss_spec loss
        int weighted

    ctypedef struct fm_optim:
        int kind
        double beta1, beta2, epsilon, rho, momentum
        int nesterov, centered, amsgrad
        double weight_decay
        double clipnorm, clipvalue, global_clipnorm
        int64_t iterations
        double u_product

    ctypedef struct fm_stats:
        double loss_sum
        double output_loss_sum[16]
        double rows, weight_sum
        double metric_sum[64]

    ctypedef struct fm_data:
        const void *const *X
        const void *const *Y
        const int64_t *const *y
        const void *w

    ctypedef struct fm_net:
        pass

    fm_net *fm_net_create(int is_f64, int n_nodes, const fm_node *nodes, int64_t n_edges, const int32_t *edges,
                          int n_outputs, const int32_t *outputs, int n_vars, const fm_var *vars, int64_t n_params,
                          int *status)
    void fm_net_free(fm_net *net)
    int fm_net_n_inputs(const fm_net *net)
    int fm_net_n_outputs(const fm_net *net)
    int64_t fm_net_input_width(const fm_net *net, int k)
    int64_t fm_net_output_width(const fm_net *net, int k)
    void *fm_net_grads(fm_net *net)
    const void *fm_net_output(const fm_net *net, int k, int64_t rows)
    void fm_permutation(uint64_t seed, uint64_t epoch, int64_t n, int64_t *out)
    int fm_all_finite_f32(const float *x, int64_t n)
    int fm_all_finite_f64(const double *x, int64_t n)

    void fm_gemm_f32(int transa, int transb, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                     float *C, int64_t ldc)
    void fm_gemm_f64(int transa, int transb, int64_t M, int64_t N, int64_t K, double alpha,
                     const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                     double *C, int64_t ldc)
    const char *fm_gemm_target_name()
    int fm_gemm_set_target(const char *name)
    int fm_get_num_threads()
    void fm_set_num_threads(int n)
    int fm_have_openmp()

    void fm_predict_f32(const fm_net *net, const float *params, const float *const *X, int64_t n_rows,
                        float *const *out, int *status)
    void fm_predict_f64(const fm_net *net, const double *params, const double *const *X, int64_t n_rows,
                        double *const *out, int *status)
    int fm_loss_and_grads_f32(fm_net *net, const float *params, const fm_data *data, int64_t n_rows,
                              const fm_loss_spec *losses, uint64_t seed, int64_t step, int training,
                              double *loss_value)
    int fm_loss_and_grads_f64(fm_net *net, const double *params, const fm_data *data, int64_t n_rows,
                              const fm_loss_spec *losses, uint64_t seed, int64_t step, int training,
                              double *loss_value)
    int fm_evaluate_f32(const fm_net *net, const float *params, const fm_data *data, int64_t n_rows,
                        int64_t batch_size, const fm_loss_spec *losses, int n_metrics,
                        const fm_metric_spec *metrics, fm_stats *stats)
    int fm_evaluate_f64(const fm_net *net, const double *params, const fm_data *data, int64_t n_rows,
                        int64_t batch_size, const fm_loss_spec *losses, int n_metrics,
                        const fm_metric_spec *metrics, fm_stats *stats)
    int fm_train_f32(fm_net *net, float *params, float *slots, fm_optim *opt, const fm_data *data,
                     const int64_t *order, int64_t n_rows, int64_t batch_size, int64_t batch_begin,
                     int64_t batch_end, const double *lr_per_batch, const fm_loss_spec *losses, int n_metrics,
                     const fm_metric_spec *metrics, uint64_t seed, fm_stats *stats)
    int fm_train_f64(fm_net *net, double *params, double *slots, fm_optim *opt, const fm_data *data,
                     const int64_t *order, int64_t n_rows, int64_t batch_size, int64_t batch_begin,
                     int64_t batch_end, const double *lr_per_batch, const fm_loss_spec *losses, int n_metrics,
                     const fm_metric_spec *metrics, uint64_t seed, fm_stats *stats)

    void fm_activation_forward_f32(int act, double alpha, float *A, float *Z, const float *b,
                                   int64_t n_rows, int64_t n_out)
    void fm_activation_forward_f64(int act, double alpha, double *A, double *Z, const double *b,
                                   int64_t n_rows, int64_t n_out)
    void fm_activation_backward_f32(int act, double alpha, const float *A, const float *Z,
                                    float *dA, int64_t n_rows, int64_t n_out)
    void fm_activation_backward_f64(int act, double alpha, const double *A, const double *Z,
                                    double *dA, int64_t n_rows, int64_t n_out)
    void fm_gemm_bias_act_f32(int act, double act_alpha, const float *b, float *Z, int ta, int tb,
                              int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                              int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                              int64_t ldc)
    void fm_gemm_bias_act_f64(int act, double act_alpha, const double *b, double *Z, int ta,
                              int tb, int64_t M, int64_t N, int64_t K, double alpha,
                              const double *A, int64_t lda, const double *B, int64_t ldb,
                              double beta, double *C, int64_t ldc)
    void fm_gemm_act_grad_f32(int act, double act_alpha, const float *Aout, const float *Z, int ta,
                              int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                              int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                              int64_t ldc)
    void fm_gemm_act_grad_f64(int act, double act_alpha, const double *Aout, const double *Z,
                              int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
                              const double *A, int64_t lda, const double *B, int64_t ldb,
                              double beta, double *C, int64_t ldc)
    int fm_loss_forward_backward_f32(const fm_loss_spec *loss, int act, const float *A,
                                     const float *Z, const float *Y, const int64_t *y,
                                     const float *w, int64_t n_rows, int64_t n_out,
                                     double grad_scale, double *loss_sum, float *dZ, int *pre)
    int fm_loss_forward_backward_f64(const fm_loss_spec *loss, int act, const double *A,
                                     const double *Z, const double *Y, const int64_t *y,
                                     const double *w, int64_t n_rows, int64_t n_out,
                                     double grad_scale, double *loss_sum, double *dZ, int *pre)
    void fm_metrics_update_f32(int n_metrics, const fm_metric_spec *metrics, const float *P,
                               const float *Y, const int64_t *y, const float *w, int64_t n_rows,
                               int64_t n_out, double *metric_sum)
    void fm_metrics_update_f64(int n_metrics, const fm_metric_spec *metrics, const double *P,
                               const double *Y, const int64_t *y, const double *w, int64_t n_rows,
                               int64_t n_out, double *metric_sum)
    void fm_optimizer_step_f32(fm_optim *opt, int n_vars, const fm_var *vars, float *params,
                               float *grads, float *slots, int64_t n_params, double lr, int max_threads)
    void fm_optimizer_step_f64(fm_optim *opt, int n_vars, const fm_var *vars, double *params,
                               double *grads, double *slots, int64_t n_params, double lr, int max_threads)

cdef extern from "qgemm.h" nogil:
    ctypedef struct fm_q8_dense:
        pass
    int FM_Q8_MAX_IN
    fm_q8_dense *fm_q8_dense_create(const int8_t *W, const float *scale, int64_t n_in, int64_t n_out,
                                    int *status)
    void fm_q8_dense_free(fm_q8_dense *q)
    int fm_q8_dense_update(fm_q8_dense *q, const int8_t *W, const float *scale)
    int64_t fm_q8_dense_n_in(const fm_q8_dense *q)
    int64_t fm_q8_dense_n_out(const fm_q8_dense *q)
    int fm_q8_dense_forward(const fm_q8_dense *q, const float *X, int64_t ldx, int64_t rows,
                            const float *bias, float *out)
    void fm_q8_quantize_rows(const float *X, int64_t ldx, int64_t rows, int64_t n_in, int8_t *Q,
                             float *s)
    const char *fm_q8_target_name()
    int fm_q8_set_target(const char *name)
    int fm_net_set_q8(fm_net *net, int node, const fm_q8_dense *q)

cdef extern from "bgemm.h" nogil:
    ctypedef struct fm_bf16_dense:
        pass
    fm_bf16_dense *fm_bf16_dense_create(const float *W, int64_t n_in, int64_t n_out, int *status)
    void fm_bf16_dense_free(fm_bf16_dense *b)
    int fm_bf16_dense_update(fm_bf16_dense *b, const float *W)
    int fm_bf16_dense_forward(const fm_bf16_dense *b, const float *X, int64_t ldx, int64_t rows,
                              const float *bias, float *out)
    void fm_bf16_round_rows(const float *X, int64_t ldx, int64_t rows, int64_t n_in, uint16_t *B)
    const char *fm_bf16_target_name()
    int fm_bf16_set_target(const char *name)
    int fm_net_set_bf16(fm_net *net, int node, const fm_bf16_dense *b)
cdef extern from "optim_kernels.h" nogil:
    const char *fm_optim_target_name()
    int fm_optim_set_target(const char *name)
