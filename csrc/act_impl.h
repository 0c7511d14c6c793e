/* Fused bias + activation (forward) and activation derivative (backward).
 * Template body: engine.c includes it with T (float/double) and SFX defined.
 *
 * forward:  A = act(A + b) in place, row by row; when Z__bo is not NULL the
 *           pre-activation A + b is kept there (needed by gelu, swish and the
 *           fused softmax/sigmoid cross-entropies).
 * backward: dA *= act'(.) in place.  As in scikit-learn, derivatives come from
 *           the layer's output A wherever that is a simple function of it; gelu
 *           and swish read Z.  Softmax applies its Jacobian-vector product.
 */
#define SELU_ALPHA 1.6732632423543772
#define SELU_SCALE 1.0507009873554805

static inline T FM_CAT(sigmoid, SFX)(T x) {
    if (x >= 0) { T e = exp(-x); return (T)1 / ((T)1 + e); }
    T e = exp(x);
    return e / ((T)1 + e);
}

static inline T FM_CAT(softplus, SFX)(T x) {
    return (x > 0 ? x : (T)0) + log1p(exp(-fabs(x)));
}

void FM_CAT(fm_activation_forward, SFX)(int act, double alpha, T *A__bo, T *Z__bo,
                                        const T *b__o, int64_t n_rows, int64_t n_out) {
    const T a = (T)alpha;
    for (int64_t r = 0; r < n_rows; r++) {
        T *row = A__bo + r * n_out;
        if (b__o) for (int64_t j = 0; j < n_out; j++) row[j] += b__o[j];
        if (Z__bo) memcpy(Z__bo + r * n_out, row, (size_t)n_out * sizeof(T));
        switch (act) {
        case FM_ACT_LINEAR: break;
        case FM_ACT_RELU:
            for (int64_t j = 0; j < n_out; j++) row[j] = row[j] < 0 ? (T)0 : row[j];   /* NaN passes */
            break;
        case FM_ACT_SIGMOID:
            for (int64_t j = 0; j < n_out; j++) row[j] = FM_CAT(sigmoid, SFX)(row[j]);
            break;
        case FM_ACT_TANH:
            for (int64_t j = 0; j < n_out; j++) row[j] = tanh(row[j]);
            break;
        case FM_ACT_SOFTMAX: {
            T mx = row[0];
            for (int64_t j = 1; j < n_out; j++) mx = row[j] > mx ? row[j] : mx;
            T s = 0;
            for (int64_t j = 0; j < n_out; j++) { row[j] = exp(row[j] - mx); s += row[j]; }
            T inv = (T)1 / s;
            for (int64_t j = 0; j < n_out; j++) row[j] *= inv;
            break;
        }
        case FM_ACT_ELU:
            for (int64_t j = 0; j < n_out; j++) row[j] = row[j] > 0 ? row[j] : a * expm1(row[j]);
            break;
        case FM_ACT_SELU:
            for (int64_t j = 0; j < n_out; j++)
                row[j] = (T)SELU_SCALE * (row[j] > 0 ? row[j] : (T)SELU_ALPHA * expm1(row[j]));
            break;
        case FM_ACT_LEAKY_RELU:
            for (int64_t j = 0; j < n_out; j++) row[j] = row[j] > 0 ? row[j] : a * row[j];
            break;
        case FM_ACT_GELU:
            for (int64_t j = 0; j < n_out; j++)
                row[j] = (T)0.5 * row[j] * ((T)1 + erf(row[j] * (T)0.70710678118654752440));
            break;
        case FM_ACT_SOFTPLUS:
            for (int64_t j = 0; j < n_out; j++) row[j] = FM_CAT(softplus, SFX)(row[j]);
            break;
        case FM_ACT_SOFTSIGN:
            for (int64_t j = 0; j < n_out; j++) row[j] = row[j] / ((T)1 + fabs(row[j]));
            break;
        case FM_ACT_SWISH:
            for (int64_t j = 0; j < n_out; j++) row[j] = row[j] * FM_CAT(sigmoid, SFX)(row[j]);
            break;
        case FM_ACT_HARD_SIGMOID:
            for (int64_t j = 0; j < n_out; j++) {
                T v = (row[j] + (T)3) / (T)6;
                row[j] = v < 0 ? (T)0 : (v > 1 ? (T)1 : v);
            }
            break;
        case FM_ACT_EXPONENTIAL:
            for (int64_t j = 0; j < n_out; j++) row[j] = exp(row[j]);
            break;
        case FM_ACT_RELU6:
            for (int64_t j = 0; j < n_out; j++) {
                T v = row[j];
                row[j] = v < 0 ? (T)0 : (v > 6 ? (T)6 : v);
            }
            break;
        default: break;
        }
    }
}

void FM_CAT(fm_activation_backward, SFX)(int act, double alpha, const T *A__bo, const T *Z__bo,
                                         T *dA__bo, int64_t n_rows, int64_t n_out) {
    const int64_t n = n_rows * n_out;
    const T a = (T)alpha;
    const T *A = A__bo;
    T *d = dA__bo;
    switch (act) {
    case FM_ACT_LINEAR: break;
    case FM_ACT_RELU:
        for (int64_t i = 0; i < n; i++) d[i] = A[i] > 0 ? d[i] : (T)0;
        break;
    case FM_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) d[i] *= A[i] * ((T)1 - A[i]);
        break;
    case FM_ACT_TANH:
        for (int64_t i = 0; i < n; i++) d[i] *= (T)1 - A[i] * A[i];
        break;
    case FM_ACT_SOFTMAX:
        for (int64_t r = 0; r < n_rows; r++) {
            const T *p = A + r * n_out;
            T *g = d + r * n_out;
            T dot = 0;
            for (int64_t j = 0; j < n_out; j++) dot += g[j] * p[j];
            for (int64_t j = 0; j < n_out; j++) g[j] = p[j] * (g[j] - dot);
        }
        break;
    case FM_ACT_ELU:
        for (int64_t i = 0; i < n; i++) d[i] *= A[i] > 0 ? (T)1 : A[i] + a;
        break;
    case FM_ACT_SELU:
        for (int64_t i = 0; i < n; i++)
            d[i] *= A[i] > 0 ? (T)SELU_SCALE : A[i] + (T)(SELU_SCALE * SELU_ALPHA);
        break;
    case FM_ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) d[i] *= Z__bo ? (Z__bo[i] > 0 ? (T)1 : a) : (A[i] > 0 ? (T)1 : a);
        break;
    case FM_ACT_GELU:
        for (int64_t i = 0; i < n; i++) {
            T z = Z__bo[i];
            T cdf = (T)0.5 * ((T)1 + erf(z * (T)0.70710678118654752440));
            T pdf = (T)0.39894228040143267794 * exp((T)-0.5 * z * z);
            d[i] *= cdf + z * pdf;
        }
        break;
    case FM_ACT_SOFTPLUS:
        for (int64_t i = 0; i < n; i++) d[i] *= -expm1(-A[i]);
        break;
    case FM_ACT_SOFTSIGN:
        for (int64_t i = 0; i < n; i++) { T t = (T)1 - fabs(A[i]); d[i] *= t * t; }
        break;
    case FM_ACT_SWISH:
        for (int64_t i = 0; i < n; i++) {
            T z = Z__bo[i];
            T s = FM_CAT(sigmoid, SFX)(z);
            d[i] *= s + z * s * ((T)1 - s);
        }
        break;
    case FM_ACT_HARD_SIGMOID:
        for (int64_t i = 0; i < n; i++) d[i] *= (A[i] > 0 && A[i] < 1) ? (T)(1.0 / 6.0) : (T)0;
        break;
    case FM_ACT_EXPONENTIAL:
        for (int64_t i = 0; i < n; i++) d[i] *= A[i];
        break;
    case FM_ACT_RELU6:
        for (int64_t i = 0; i < n; i++) d[i] = (A[i] > 0 && A[i] < 6) ? d[i] : (T)0;
        break;
    default: break;
    }
}
#undef SELU_ALPHA
#undef SELU_SCALE
