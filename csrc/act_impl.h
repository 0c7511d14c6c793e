/* Bias + activation (forward) and activation derivative (backward), on whole
 * matrices and as GEMM epilogues.  Template body: engine.c includes it with T
 * (float/double) and SFX defined.
 *
 * forward:  A = act(A + b) in place, row by row; when Z is not NULL the
 *           pre-activation A + b is kept there (needed by gelu, swish and the
 *           fused softmax/sigmoid cross-entropies).
 * backward: dA *= act'(.) in place.  As in scikit-learn, derivatives come from
 *           the layer's output A wherever that is a simple function of it; gelu
 *           and swish read Z.  Softmax and log-softmax apply their Jacobian-vector
 *           products.
 *
 * Every function works on an m x n block with row strides, so that the same
 * code serves a whole matrix and one finished tile of a GEMM (the epilogues at
 * the end): fm_gemm_bias_act runs a dense layer's forward in one pass over C,
 * fm_gemm_act_grad multiplies a GEMM's result by the derivative of the layer
 * that receives it.  (Log-)softmax needs whole rows, which a tile may not hold, so
 * there the epilogue does the bias (or nothing) and one pass over C follows.
 */
#define SELU_ALPHA 1.6732632423543772
#define SELU_SCALE 1.0507009873554805

static inline T FM_CAT(softplus, SFX)(T x) {
    return (x > 0 ? x : (T)0) + log1p(exp(-fabs(x)));
}

/* e^x for x <= 0 in plain arithmetic that the compiler vectorizes (libm's exp
 * is one call per value): x = n ln2 + r with |r| <= ln2/2 (ln2 split in two
 * parts, Cody-Waite), e^r by its Taylor polynomial (degree 7 for float, 13 for
 * double: truncation below half an ulp), times 2^n built in the exponent bits.
 * n comes from adding 1.5 * 2^(mantissa bits), which rounds x / ln2 to an
 * integer and leaves it in the low bits (fm_pow2_* in engine.c).  Within 2 ulp
 * of e^x; 0 below the smallest normal number (libm gives subnormals there);
 * NaN stays NaN. */
static inline T FM_CAT(exp_nonpos, SFX)(T x) {
    const int f32 = sizeof(T) == 4;
    const T lo = f32 ? (T)-87.33654 : (T)-708.3964185322641;
    const T magic = f32 ? (T)12582912.0 : (T)6755399441055744.0;
    const int under = x < lo;
    x = under ? (T)0 : x;
    const T t = x * (T)1.44269504088896340736 + magic;
    const T n = t - magic;
    const T r = (x - n * (T)(f32 ? 0.693359375 : 6.93147180369123816490e-01))
                - n * (T)(f32 ? -2.12194440e-4 : 1.90821492927058770002e-10);
    T p = 1;   /* 1 + r (1 + r/2 (1 + r/3 (...))) */
#pragma GCC unroll 16
    for (int k = f32 ? 7 : 13; k >= 1; k--) p = p * (r * (T)(1.0 / k)) + (T)1;
    const T scale = f32 ? (T)fm_pow2_f32((float)t) : (T)fm_pow2_f64((double)t);
    return under ? (T)0 : p * scale;
}

/* log(1 + e) for 0 <= e <= 1 (NaN stays NaN) in plain arithmetic that the
 * compiler vectorizes (libm's log1p is one call per value): u = 1 + e rounded,
 * its rounding error e - (u - 1) (exact) added back as (e - (u - 1)) / u;
 * log u = k ln2 + log f with f = u / 2^k in [sqrt(1/2), sqrt(2)], and
 * log f = 2 atanh(s), s = (f - 1) / (f + 1), |s| <= 0.172, by its odd series
 * (to s^11 for float, s^21 for double: truncation below 2^-25 / 2^-54
 * relative).  Within 2 ulp of log1p (tests/test_kernels_vector_math.py). */
static inline T FM_CAT(log1p_unit, SFX)(T e) {
    const int f32 = sizeof(T) == 4;
    const T u = (T)1 + e;
    const T c = (e - (u - (T)1)) / u;
    const int big = u > (T)1.41421356237309504880;
    const T f = big ? u * (T)0.5 : u;
    const T s = (f - (T)1) / (f + (T)1);
    const T z = s * s;
    T q = 0;   /* 1/3 + z (1/5 + z (1/7 + ...)) */
#pragma GCC unroll 16
    for (int k = f32 ? 5 : 10; k >= 1; k--) q = q * z + (T)(1.0 / (2 * k + 1));
    const T two_s = s + s;
    const T r = (two_s + two_s * z * q) + c;
    const T ln2_hi = (T)(f32 ? 0.693359375 : 6.93147180369123816490e-01);
    const T ln2_lo = (T)(f32 ? -2.12194440e-4 : 1.90821492927058770002e-10);
    return big ? (r + ln2_lo) + ln2_hi : r;
}

/* 1 / (1 + e^-x) from e = e^-|x| (exp_nonpos): one division, no branch, so that
 * whole rows vectorize.  Within 3 ulp of the libm form (tests). */
static inline T FM_CAT(sigmoid, SFX)(T x) {
    const T e = FM_CAT(exp_nonpos, SFX)(-fabs(x));
    return (x >= 0 ? (T)1 : e) / ((T)1 + e);
}

/* Softmax of each row of an m x n block (row stride ld), in place: the
 * exponentials run as one vectorized pass over the block. */
static inline void FM_CAT(softmax_block, SFX)(T *C, int64_t ld, int64_t m, int64_t n) {
    for (int64_t r = 0; r < m; r++) {
        T *row = C + r * ld;
        T mx = row[0];
        for (int64_t j = 1; j < n; j++) mx = row[j] > mx ? row[j] : mx;
        for (int64_t j = 0; j < n; j++) row[j] -= mx;
    }
    if (ld == n) {
        for (int64_t i = 0; i < m * n; i++) C[i] = FM_CAT(exp_nonpos, SFX)(C[i]);
    } else {
        for (int64_t r = 0; r < m; r++)
            for (int64_t j = 0; j < n; j++) C[r * ld + j] = FM_CAT(exp_nonpos, SFX)(C[r * ld + j]);
    }
    for (int64_t r = 0; r < m; r++) {
        T *row = C + r * ld;
        T s = 0;
        for (int64_t j = 0; j < n; j++) s += row[j];
        const T inv = (T)1 / s;
        for (int64_t j = 0; j < n; j++) row[j] *= inv;
    }
}

/* Log-softmax of each row of an m x n block (row stride ld), in place:
 * v - max - log(sum(exp(v - max))), as keras.activations.log_softmax. */
static inline void FM_CAT(log_softmax_block, SFX)(T *C, int64_t ld, int64_t m, int64_t n) {
    for (int64_t r = 0; r < m; r++) {
        T *row = C + r * ld;
        T mx = row[0];
        for (int64_t j = 1; j < n; j++) mx = row[j] > mx ? row[j] : mx;
        T s = 0;
        for (int64_t j = 0; j < n; j++) {
            row[j] -= mx;
            s += FM_CAT(exp_nonpos, SFX)(row[j]);
        }
        const T shift = log(s);
        for (int64_t j = 0; j < n; j++) row[j] -= shift;
    }
}

/* Softmax and log-softmax need whole rows, which a GEMM tile may not hold. */
#define FM_ACT_ROWWISE(act) ((act) == FM_ACT_SOFTMAX || (act) == FM_ACT_LOG_SOFTMAX)

/* Forward on an m x n block (row stride ld), in one pass per row:
 * v = C + b, Z = v (Z may be NULL, b too), C = act(v).  Softmax normalizes
 * over the block's n columns.  The switch sits outside the loops so that every
 * activation gets its own simple, vectorizable loop: the block may be one GEMM
 * tile, and per-row overheads would then cost more than the arithmetic. */
#define FM_ACT_ROWS(EXPR)                                                       \
    {                                                                           \
    if (n == 1 && ld == 1) {   /* one unit (a binary output): down the column */ \
        T *restrict col = C, *restrict zc = Z;                                  \
        const T b0 = b ? b[0] : (T)0;                                           \
        for (int64_t r = 0; r < m; r++) {                                       \
            const T v = b ? col[r] + b0 : col[r];                               \
            if (zc) zc[r] = v;                                                  \
            col[r] = (EXPR);                                                    \
        }                                                                       \
    } else {                                                                    \
        for (int64_t r = 0; r < m; r++) {                                       \
            T *restrict row = C + r * ld;                                       \
            T *restrict zr = Z ? Z + r * ld : NULL;                             \
            for (int64_t j = 0; j < n; j++) {                                   \
                const T v = b ? row[j] + b[j] : row[j];                         \
                if (zr) zr[j] = v;                                              \
                row[j] = (EXPR);                                                \
            }                                                                   \
        }                                                                       \
    }                                                                           \
    }
static FM_CLONES void FM_CAT(act_forward_block, SFX)(int act, T a, T *C, T *Z, int64_t ld,
                                                     const T *restrict b, int64_t m, int64_t n) {
    switch (act) {
    case FM_ACT_RELU: FM_ACT_ROWS(v < 0 ? (T)0 : v); break;   /* NaN passes */
    case FM_ACT_SIGMOID: FM_ACT_ROWS(FM_CAT(sigmoid, SFX)(v)); break;
    case FM_ACT_TANH: FM_ACT_ROWS(tanh(v)); break;
    case FM_ACT_ELU: FM_ACT_ROWS(v > 0 ? v : a * expm1(v)); break;
    case FM_ACT_SELU: FM_ACT_ROWS((T)SELU_SCALE * (v > 0 ? v : (T)SELU_ALPHA * expm1(v))); break;
    case FM_ACT_LEAKY_RELU: FM_ACT_ROWS(v > 0 ? v : a * v); break;
    case FM_ACT_GELU: FM_ACT_ROWS((T)0.5 * v * ((T)1 + erf(v * (T)0.70710678118654752440))); break;
    case FM_ACT_SOFTPLUS: FM_ACT_ROWS(FM_CAT(softplus, SFX)(v)); break;
    case FM_ACT_SOFTSIGN: FM_ACT_ROWS(v / ((T)1 + fabs(v))); break;
    case FM_ACT_SWISH: FM_ACT_ROWS(v * FM_CAT(sigmoid, SFX)(v)); break;
    case FM_ACT_HARD_SIGMOID:
        FM_ACT_ROWS((v + (T)3) / (T)6 < 0 ? (T)0 : ((v + (T)3) / (T)6 > 1 ? (T)1 : (v + (T)3) / (T)6));
        break;
    case FM_ACT_EXPONENTIAL: FM_ACT_ROWS(exp(v)); break;
    case FM_ACT_RELU6: FM_ACT_ROWS(v < 0 ? (T)0 : (v > 6 ? (T)6 : v)); break;
    case FM_ACT_RELU_CAP: FM_ACT_ROWS(v < 0 ? (T)0 : (v > a ? a : v)); break;
    default:   /* linear, softmax, log_softmax */
        if (b || Z) FM_ACT_ROWS(v);
        if (act == FM_ACT_SOFTMAX) FM_CAT(softmax_block, SFX)(C, ld, m, n);
        if (act == FM_ACT_LOG_SOFTMAX) FM_CAT(log_softmax_block, SFX)(C, ld, m, n);
        break;
    }
}
#undef FM_ACT_ROWS

/* Backward on an m x n block: d *= act'(.) from the output A and, for gelu,
 * swish (and leaky_relu when given), the pre-activation Z; all with row
 * stride ld.  EXPR gives the new d from y = A, z = Z (or A where Z is not
 * needed or absent) and g = d. */
#define FM_GRAD_ROWS(S, EXPR)                                                   \
    for (int64_t r = 0; r < m; r++) {                                           \
        const T *restrict yr = A + r * ld, *restrict zr = (S) + r * ld;         \
        T *restrict dr = d + r * ld;                                            \
        for (int64_t j = 0; j < n; j++) {                                       \
            const T y = yr[j], z = zr[j], g = dr[j];                            \
            (void)y; (void)z;                                                   \
            dr[j] = (EXPR);                                                     \
        }                                                                       \
    }
static FM_CLONES void FM_CAT(act_backward_block, SFX)(int act, T a, const T *A, const T *Z,
                                                      T *d, int64_t ld, int64_t m, int64_t n) {
    switch (act) {
    case FM_ACT_RELU: FM_GRAD_ROWS(A, y > 0 ? g : (T)0); break;
    case FM_ACT_SIGMOID: FM_GRAD_ROWS(A, g * (y * ((T)1 - y))); break;
    case FM_ACT_TANH: FM_GRAD_ROWS(A, g * ((T)1 - y * y)); break;
    case FM_ACT_SOFTMAX:
        for (int64_t r = 0; r < m; r++) {
            const T *p = A + r * ld;
            T *gr = d + r * ld;
            T dot = 0;
            for (int64_t j = 0; j < n; j++) dot += gr[j] * p[j];
            for (int64_t j = 0; j < n; j++) gr[j] = p[j] * (gr[j] - dot);
        }
        break;
    case FM_ACT_LOG_SOFTMAX:   /* d - exp(y) * sum(d), row by row */
        for (int64_t r = 0; r < m; r++) {
            const T *y = A + r * ld;
            T *gr = d + r * ld;
            T sum = 0;
            for (int64_t j = 0; j < n; j++) sum += gr[j];
            for (int64_t j = 0; j < n; j++) gr[j] -= exp(y[j]) * sum;
        }
        break;
    case FM_ACT_ELU: FM_GRAD_ROWS(A, g * (y > 0 ? (T)1 : y + a)); break;
    case FM_ACT_SELU:
        FM_GRAD_ROWS(A, g * (y > 0 ? (T)SELU_SCALE : y + (T)(SELU_SCALE * SELU_ALPHA)));
        break;
    case FM_ACT_LEAKY_RELU: FM_GRAD_ROWS(Z ? Z : A, g * (z > 0 ? (T)1 : a)); break;
    case FM_ACT_GELU:
        FM_GRAD_ROWS(Z, g * ((T)0.5 * ((T)1 + erf(z * (T)0.70710678118654752440)) +
                             z * ((T)0.39894228040143267794 * exp((T)-0.5 * z * z))));
        break;
    case FM_ACT_SOFTPLUS: FM_GRAD_ROWS(A, g * -expm1(-y)); break;
    case FM_ACT_SOFTSIGN: FM_GRAD_ROWS(A, g * (((T)1 - fabs(y)) * ((T)1 - fabs(y)))); break;
    case FM_ACT_SWISH:
        FM_GRAD_ROWS(Z, g * (FM_CAT(sigmoid, SFX)(z) +
                             z * FM_CAT(sigmoid, SFX)(z) * ((T)1 - FM_CAT(sigmoid, SFX)(z))));
        break;
    case FM_ACT_HARD_SIGMOID: FM_GRAD_ROWS(A, g * ((y > 0 && y < 1) ? (T)(1.0 / 6.0) : (T)0)); break;
    case FM_ACT_EXPONENTIAL: FM_GRAD_ROWS(A, g * y); break;
    case FM_ACT_RELU6: FM_GRAD_ROWS(A, (y > 0 && y < 6) ? g : (T)0); break;
    case FM_ACT_RELU_CAP: FM_GRAD_ROWS(A, (y > 0 && y < a) ? g : (T)0); break;
    default: break;   /* linear */
    }
}
#undef FM_GRAD_ROWS

FM_CLONES void FM_CAT(fm_activation_forward, SFX)(int act, double alpha, T *A__bo, T *Z__bo,
                                        const T *b__o, int64_t n_rows, int64_t n_out) {
    FM_CAT(act_forward_block, SFX)(act, (T)alpha, A__bo, Z__bo, n_out, b__o, n_rows, n_out);
}

FM_CLONES void FM_CAT(fm_activation_backward, SFX)(int act, double alpha, const T *A__bo, const T *Z__bo,
                                         T *dA__bo, int64_t n_rows, int64_t n_out) {
    FM_CAT(act_backward_block, SFX)(act, (T)alpha, A__bo, Z__bo, dA__bo, n_out, n_rows, n_out);
}

/* ---- GEMM epilogues (gemm.h).  C is the GEMM's whole output; a block's
 * position in it, found from its pointer, locates its bias values and its
 * values of Z (forward) or of the layer's A and Z (backward), which share C's
 * row stride. */
typedef struct {
    fm_epilogue base;
    int act;
    T alpha;
    const T *C;
    const T *b;              /* forward: bias or NULL */
    T *Z;                    /* forward: receives the pre-activation, or NULL */
    const T *A, *Zin;        /* backward: the layer's output and pre-activation */
} FM_CAT(fm_act_epilogue, SFX);

FM_CLONES static void FM_CAT(act_forward_epilogue, SFX)(const fm_epilogue *ep, void *c, int64_t ldc,
                                              int64_t m, int64_t n) {
    const FM_CAT(fm_act_epilogue, SFX) *e = (const FM_CAT(fm_act_epilogue, SFX) *)ep;
    const int64_t off = (T *)c - e->C;
    FM_CAT(act_forward_block, SFX)(e->act, e->alpha, (T *)c, e->Z ? e->Z + off : NULL, ldc,
                                   e->b ? e->b + off % ldc : NULL, m, n);
}

FM_CLONES static void FM_CAT(act_backward_epilogue, SFX)(const fm_epilogue *ep, void *c, int64_t ldc,
                                               int64_t m, int64_t n) {
    const FM_CAT(fm_act_epilogue, SFX) *e = (const FM_CAT(fm_act_epilogue, SFX) *)ep;
    const int64_t off = (T *)c - e->C;
    FM_CAT(act_backward_block, SFX)(e->act, e->alpha, e->A + off, e->Zin ? e->Zin + off : NULL,
                                    (T *)c, ldc, m, n);
}

FM_CLONES void FM_CAT(fm_gemm_bias_act, SFX)(int act, double act_alpha, const T *b__n, T *Z__mn,
                                   int ta, int tb, int64_t M, int64_t N, int64_t K, T alpha,
                                   const T *A, int64_t lda, const T *B, int64_t ldb, T beta,
                                   T *C, int64_t ldc) {
    const int tiled = !FM_ACT_ROWWISE(act);   /* (log-)softmax: bias in the epilogue, then rows */
    FM_CAT(fm_act_epilogue, SFX) e = {{FM_CAT(act_forward_epilogue, SFX)}, tiled ? act : FM_ACT_LINEAR,
                                      (T)act_alpha, C, b__n, Z__mn, NULL, NULL};
    const int any = b__n || Z__mn || e.act != FM_ACT_LINEAR;
    FM_CAT(fm_gemm_ep, SFX)(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                            any ? &e.base : NULL);
    if (!tiled) FM_CAT(act_forward_block, SFX)(act, (T)act_alpha, C, NULL, ldc, NULL, M, N);
}

FM_CLONES void FM_CAT(fm_gemm_act_grad, SFX)(int act, double act_alpha, const T *A__mn, const T *Z__mn,
                                   int ta, int tb, int64_t M, int64_t N, int64_t K, T alpha,
                                   const T *A, int64_t lda, const T *B, int64_t ldb, T beta,
                                   T *C, int64_t ldc) {
    const int tiled = !FM_ACT_ROWWISE(act) && act != FM_ACT_LINEAR;
    FM_CAT(fm_act_epilogue, SFX) e = {{FM_CAT(act_backward_epilogue, SFX)}, act, (T)act_alpha, C,
                                      NULL, NULL, A__mn, Z__mn};
    FM_CAT(fm_gemm_ep, SFX)(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                            tiled ? &e.base : NULL);
    if (FM_ACT_ROWWISE(act))
        FM_CAT(act_backward_block, SFX)(act, (T)act_alpha, A__mn, Z__mn, C, ldc, M, N);
}
#undef FM_ACT_ROWWISE
#undef SELU_ALPHA
#undef SELU_SCALE
