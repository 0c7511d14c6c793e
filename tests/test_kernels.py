"""Every single C kernel (activations, losses, metrics, optimizer step) against
the float64 NumPy reference in tests/reference.py, once per dtype branch.

The float32 and float64 branches are separate compiled functions, so every
test is parametrized over the dtype; each also checks that the kernel really
changed its output (a branch that silently does nothing cannot pass).
Reference values are computed from the very inputs the kernel saw (float32
values widened to float64), so tolerances only cover the kernel's own rounding.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmlp
from fastmlp import _engine

import reference as ref

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]
# (rtol, atol) per dtype for values of order one
TOL = {np.float32: (2e-6, 2e-7), np.float64: (1e-13, 1e-14)}
GRAD_TOL = {np.float32: (5e-5, 5e-6), np.float64: (2e-6, 1e-7)}   # vs a central difference

SETTINGS = settings(deadline=None, max_examples=30, derandomize=True, database=None)
seeds = st.integers(0, 2**32 - 1)
rows_st = st.integers(1, 6)
cols_st = st.integers(1, 9)

ACT_NAMES = list(ref.ACTIVATION_CODES)


def _close(actual, expected, rtol, atol, what=""):
    """|actual - expected| <= atol + rtol * |expected| elementwise (atol may be an array)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    err = np.abs(actual - expected)
    bad = ~(err <= atol + rtol * np.abs(expected))
    if np.any(bad):
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} values differ; worst error "
                             f"{err.max():.3g}\nactual:\n{actual}\nexpected:\n{expected}")


per_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


# =========================================================================== activations
def _preact(rng, rows, cols, name, scale):
    z = rng.standard_normal((rows, cols)) * scale
    if name == "exponential":
        z = np.clip(z, -20, 20)
    return z


@per_dtype
@pytest.mark.parametrize("name", ACT_NAMES)
@SETTINGS
@given(seed=seeds, rows=rows_st, cols=cols_st, scale=st.sampled_from([0.5, 2.0, 6.0]))
def test_activation_forward_adds_bias_and_matches_reference(dtype, name, seed, rows, cols, scale):
    rng = np.random.default_rng(seed)
    x = _preact(rng, rows, cols, name, scale).astype(dtype)
    b = (rng.standard_normal(cols) * 0.5).astype(dtype)
    A, Z = x.copy(), np.zeros_like(x)
    out = _engine.activation_forward(ref.ACTIVATION_CODES[name], ref.DEFAULT_ALPHA.get(name, 0.0), A, b, Z)
    assert out is A and A.dtype == dtype
    rtol, atol = TOL[dtype]
    # Z receives x + b exactly as the dtype adds them
    np.testing.assert_array_equal(Z, x + b)
    expected = ref.activation(name, Z)
    _close(A, expected, rtol * 10, atol * np.maximum(1, np.abs(expected)), name)


@per_dtype
@pytest.mark.parametrize("name", ACT_NAMES)
def test_activation_forward_without_bias_or_z_applies_the_activation_in_place(dtype, name):
    rng = np.random.default_rng(7)
    x = _preact(rng, 4, 5, name, 2.0).astype(dtype)
    A = x.copy()
    _engine.activation_forward(ref.ACTIVATION_CODES[name], ref.DEFAULT_ALPHA.get(name, 0.0), A)
    rtol, atol = TOL[dtype]
    _close(A, ref.activation(name, x), rtol * 10, atol * 10, name)
    if name != "linear":
        assert not np.array_equal(A, x), "the kernel did not change its output"


@per_dtype
@pytest.mark.parametrize("name", ACT_NAMES)
@SETTINGS
@given(seed=seeds, rows=rows_st, cols=cols_st, scale=st.sampled_from([0.5, 2.0, 5.0]))
def test_activation_backward_multiplies_by_the_reference_derivative(dtype, name, seed, rows, cols, scale):
    rng = np.random.default_rng(seed)
    code, alpha = ref.ACTIVATION_CODES[name], ref.DEFAULT_ALPHA.get(name, 0.0)
    A = _preact(rng, rows, cols, name, scale).astype(dtype)
    b = (rng.standard_normal(cols) * 0.3).astype(dtype)
    Z = np.zeros_like(A)
    _engine.activation_forward(code, alpha, A, b, Z)
    dA = rng.standard_normal((rows, cols)).astype(dtype)
    expected = ref.activation_backward(name, Z, dA)
    got = _engine.activation_backward(code, alpha, A, Z, dA.copy())
    assert got.dtype == dtype
    rtol, atol = GRAD_TOL[dtype]
    scale_ = np.abs(dA) * (np.exp(np.clip(Z, None, 20)) if name == "exponential" else 1)
    _close(got, expected, rtol, atol * np.maximum(1, scale_), name)


@per_dtype
@pytest.mark.parametrize("name", [n for n in ACT_NAMES if n not in ("gelu", "swish")])
def test_activation_backward_works_from_the_output_alone_where_documented(dtype, name):
    rng = np.random.default_rng(3)
    code, alpha = ref.ACTIVATION_CODES[name], ref.DEFAULT_ALPHA.get(name, 0.0)
    Z = (rng.standard_normal((5, 4)) * 2).astype(dtype)
    A = Z.copy()
    _engine.activation_forward(code, alpha, A)
    dA = rng.standard_normal((5, 4)).astype(dtype)
    got = _engine.activation_backward(code, alpha, A, None, dA.copy())
    rtol, atol = GRAD_TOL[dtype]
    _close(got, ref.activation_backward(name, Z, dA), rtol, atol * 10, name)


@per_dtype
@pytest.mark.parametrize("name,alpha", [("elu", 0.3), ("elu", 2.5), ("leaky_relu", 0.01), ("leaky_relu", 0.7)])
def test_elu_and_leaky_relu_honour_their_alpha(dtype, name, alpha):
    rng = np.random.default_rng(11)
    code = ref.ACTIVATION_CODES[name]
    Z = (rng.standard_normal((6, 5)) * 3).astype(dtype)
    A = Z.copy()
    _engine.activation_forward(code, alpha, A)
    rtol, atol = TOL[dtype]
    _close(A, ref.activation(name, Z, alpha), rtol * 10, atol * 10)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    got = _engine.activation_backward(code, alpha, A, Z, dA.copy())
    _close(got, ref.activation_backward(name, Z, dA, alpha), GRAD_TOL[dtype][0], GRAD_TOL[dtype][1])


@per_dtype
@pytest.mark.parametrize("name,spread", [("softmax", 3), ("log_softmax", 30)])
@SETTINGS
@given(seed=seeds, rows=rows_st, cols=st.integers(1, 40), shift=st.floats(-50, 50))
def test_softmax_rows_sum_to_one_and_match_reference(dtype, name, spread, seed, rows, cols, shift):
    """Shifted far from 0 (and, for log_softmax, widely spread rows): no overflow; the
    probabilities (exp of log_softmax's log-probabilities) of a row sum to one."""
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((rows, cols)) * spread + shift).astype(dtype)
    Z = A.copy()
    _engine.activation_forward(ref.ACTIVATION_CODES[name], 0.0, A)
    rtol, atol = TOL[dtype]
    p = A if name == "softmax" else np.exp(A.astype(np.float64))
    assert name == "softmax" or np.all(A <= 0)
    _close(p.sum(axis=1), np.ones(rows), 0, 10 * cols * atol)
    _close(A, ref.activation(name, Z), rtol * 10, atol * (1 if name == "softmax" else 100))


@per_dtype
def test_softmax_exponential_is_within_a_few_ulp_over_the_whole_range(dtype):
    """Softmax takes its own vectorized e^x (x <= 0): rows (0, x) sweep every x down
    to underflow, where the small value becomes exactly 0; NaN stays NaN."""
    info = np.finfo(dtype)
    lo = np.log(info.tiny)
    x = np.concatenate([np.linspace(lo, 0, 200_001), -np.geomspace(1e-12, 1, 1001)]).astype(dtype)
    A = np.stack([np.zeros_like(x), x], axis=1)
    _engine.activation_forward(4, 0.0, A)
    e = np.exp(x.astype(np.longdouble))
    expected = np.stack([1 / (1 + e), e / (1 + e)], axis=1)
    err = np.abs(A - expected)
    normal = expected >= 4 * info.tiny
    ulps = err[normal] / np.spacing(expected[normal].astype(dtype)).astype(np.longdouble)
    assert float(ulps.max()) <= 4, float(ulps.max())
    assert float(err[~normal].max()) <= 4 * info.tiny
    B = np.array([[0.0, 2 * lo, -np.inf], [np.nan, 0.0, 1.0]], dtype)
    _engine.activation_forward(4, 0.0, B)
    np.testing.assert_array_equal(B[0], [1, 0, 0])
    assert np.isnan(B[1]).all()


@per_dtype
@pytest.mark.parametrize("name", ["sigmoid", "softmax", "softplus", "tanh", "swish", "softsign", "gelu"])
@pytest.mark.parametrize("sign", [1, -1])
def test_saturating_activations_stay_finite_for_inputs_up_to_80(dtype, name, sign):
    code, alpha = ref.ACTIVATION_CODES[name], ref.DEFAULT_ALPHA.get(name, 0.0)
    z = sign * np.array([[80.0, 79.5, 60.0, 40.0, 20.0, 0.0, -5.0, -80.0]])
    z = np.vstack([z, -z, sign * np.full((1, 8), 80.0)]).astype(dtype)
    A, Z = z.copy(), np.zeros_like(z)
    _engine.activation_forward(code, alpha, A, None, Z)
    assert np.all(np.isfinite(A)), A
    expected = ref.activation(name, z)
    _close(A, expected, TOL[dtype][0] * 10, TOL[dtype][1] * np.maximum(1, np.abs(expected)))
    dA = np.ones_like(A)
    g = _engine.activation_backward(code, alpha, A, Z, dA)
    assert np.all(np.isfinite(g)), g
    _close(g, ref.activation_backward(name, z, np.ones_like(z)), GRAD_TOL[dtype][0], 1e-5)
    if name in ("sigmoid", "softmax"):
        assert np.all((A >= 0) & (A <= 1))


# =========================================================================== losses
def _loss_data(name, rng, rows, C, dtype):
    """(Y dense or None, labels or None, predictions) suited to each loss."""
    Y = labels = None
    if name in ("mse", "mae", "huber", "log_cosh"):
        Y, P = rng.standard_normal((rows, C)), rng.standard_normal((rows, C)) * 1.5
    elif name == "mape":
        Y = rng.uniform(0.5, 2, (rows, C)) * rng.choice([-1, 1], (rows, C))
        P = rng.standard_normal((rows, C))
    elif name in ("msle", "poisson"):
        Y, P = rng.uniform(0, 3, (rows, C)), rng.uniform(0.1, 3, (rows, C))
    elif name == "bce":
        Y = rng.choice([0.0, 1.0], (rows, C)) if rng.random() < 0.5 else rng.uniform(0, 1, (rows, C))
        P = rng.uniform(0.03, 0.97, (rows, C))
    elif name in ("cce", "kld"):
        Y = (ref.one_hot(rng.integers(0, C, rows), C) if rng.random() < 0.5
             else ref.softmax(rng.standard_normal((rows, C))))
        P = rng.uniform(0.05, 1, (rows, C))
        if name == "kld":
            P = P / P.sum(axis=1, keepdims=True)
    elif name == "scce":
        labels = rng.integers(0, C, rows).astype(np.int64)
        P = rng.uniform(0.05, 1, (rows, C))
    elif name in ("hinge", "squared_hinge"):
        Y, P = rng.choice([-1.0, 1.0], (rows, C)), rng.standard_normal((rows, C)) * 1.5
    elif name == "categorical_hinge":
        Y, P = ref.one_hot(rng.integers(0, C, rows), C), rng.standard_normal((rows, C)) * 1.5
    else:
        raise AssertionError(name)
    return (None if Y is None else Y.astype(dtype)), labels, P.astype(dtype)


def _spec(name, from_logits=False, label_smoothing=0.0, delta=1.0):
    return (ref.LOSS_CODES[name], int(from_logits), float(label_smoothing), float(delta))


def _check_loss(dtype, name, act, P, Z, Y, labels, w, grad_scale, expected_rows, expected_grad,
                expect_pre, **spec):
    total, g, pre = _engine.loss_forward_backward(_spec(name, **spec), act, P, Z, Y, labels, w, grad_scale)
    assert pre is expect_pre
    assert g.dtype == dtype and g.shape == P.shape
    wr = np.ones(len(P)) if w is None else w.astype(np.float64)
    rtol, atol = GRAD_TOL[dtype]
    _close(total, np.sum(wr * expected_rows), rtol, atol * max(1, np.abs(expected_rows).sum()), "loss")
    expected_g = grad_scale * wr[:, None] * expected_grad
    _close(g, expected_g, rtol, atol * max(1, np.abs(expected_g).max()), "gradient")


LOSS_NAMES = list(ref.LOSS_CODES)


@pytest.mark.parametrize("name", LOSS_NAMES)
@SETTINGS
@given(seed=seeds, rows=rows_st, C=st.integers(2, 7), weighted=st.booleans(),
       grad_scale=st.sampled_from([1.0, 0.25, 1.7]))
@per_dtype
def test_loss_value_and_gradient_match_reference_on_probabilities(dtype, name, seed, rows, C, weighted,
                                                                  grad_scale):
    rng = np.random.default_rng(seed)
    Y, labels, P = _loss_data(name, rng, rows, C, dtype)
    w = rng.uniform(0, 3, rows).astype(dtype) if weighted else None
    delta = float(rng.uniform(0.3, 2.0)) if name == "huber" else 1.0
    y = labels if Y is None else Y
    _check_loss(dtype, name, 0, P, None, Y, labels, w, grad_scale,
                ref.loss_value(name, y, P, delta=delta), ref.loss_grad(name, y, P, delta=delta),
                False, delta=delta)


@pytest.mark.parametrize("name", ["bce", "cce", "scce"])
@SETTINGS
@given(seed=seeds, rows=rows_st, C=st.integers(1, 7), scale=st.sampled_from([1.0, 4.0, 30.0]),
       weighted=st.booleans())
@per_dtype
def test_cross_entropy_from_logits_matches_reference(dtype, name, seed, rows, C, scale, weighted):
    if name != "bce" and C == 1:
        C = 2
    rng = np.random.default_rng(seed)
    Y, labels, _ = _loss_data(name, rng, rows, C, dtype)
    X = (rng.standard_normal((rows, C)) * scale).astype(dtype)
    w = rng.uniform(0, 3, rows).astype(dtype) if weighted else None
    y = labels if Y is None else Y
    _check_loss(dtype, name, 0, X, None, Y, labels, w, 1.0,
                ref.loss_value(name, y, X, from_logits=True),
                ref.loss_grad(name, y, X, from_logits=True), False, from_logits=True)


@per_dtype
@pytest.mark.parametrize("name", ["bce", "cce"])
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@SETTINGS
@given(seed=seeds, rows=rows_st, C=st.integers(2, 7), ls=st.sampled_from([0.05, 0.1, 0.3, 1.0]))
def test_label_smoothing_matches_reference(dtype, name, from_logits, seed, rows, C, ls):
    rng = np.random.default_rng(seed)
    Y, _, P = _loss_data(name, rng, rows, C, dtype)
    if from_logits:
        P = (rng.standard_normal((rows, C)) * 2).astype(dtype)
    kw = dict(from_logits=from_logits, label_smoothing=ls)
    _check_loss(dtype, name, 0, P, None, Y, None, None, 1.0,
                ref.loss_value(name, Y, P, **kw), ref.loss_grad(name, Y, P, **kw), False, **kw)


@per_dtype
def test_label_smoothing_leaves_the_caller_targets_untouched(dtype):
    Y = np.eye(3, dtype=dtype)
    before = Y.copy()
    P = np.full((3, 3), 1 / 3, dtype=dtype)
    _engine.loss_forward_backward(_spec("cce", label_smoothing=0.2), 0, P, None, Y, None, None, 1.0)
    np.testing.assert_array_equal(Y, before)


@pytest.mark.parametrize("name", ["cce", "scce"])
@SETTINGS
@given(seed=seeds, rows=rows_st, C=st.integers(2, 8), ls=st.sampled_from([0.0, 0.0, 0.2]),
       weighted=st.booleans(), scale=st.sampled_from([1.0, 3.0]))
@per_dtype
def test_fused_softmax_cross_entropy_equals_the_unfused_math(dtype, name, seed, rows, C, ls, weighted,
                                                             scale):
    """act=softmax with Z: the gradient is w.r.t. Z and equals softmax'(Z)^T dl/dp."""
    if name == "scce":
        ls = 0.0
    rng = np.random.default_rng(seed)
    Y, labels, _ = _loss_data(name, rng, rows, C, dtype)
    Z = (rng.standard_normal((rows, C)) * scale).astype(dtype)
    P = Z.copy()
    _engine.activation_forward(4, 0.0, P)
    w = rng.uniform(0, 3, rows).astype(dtype) if weighted else None
    y = labels if Y is None else Y
    kw = dict(label_smoothing=ls)
    p64 = ref.softmax(Z)
    # the chain rule through the probability path ...
    expected_rows = ref.loss_value(name, y, p64, **kw)
    expected_grad = ref.activation_backward("softmax", Z, ref.loss_grad(name, y, p64, **kw))
    # ... except that the fused form does not clip: rows with a probability under
    # Keras's clip threshold are compared with the exact logits formula instead
    exact = (p64 < 1e-6).any(axis=1)
    expected_rows[exact] = ref.loss_value(name, y, Z, from_logits=True, **kw)[exact]
    expected_grad[exact] = ref.loss_grad(name, y, Z, from_logits=True, **kw)[exact]
    _check_loss(dtype, name, 4, P, Z, Y, labels, w, 0.5, expected_rows, expected_grad, True, **kw)


@SETTINGS
@given(seed=seeds, rows=rows_st, C=st.integers(1, 6), ls=st.sampled_from([0.0, 0.0, 0.2]),
       weighted=st.booleans())
@per_dtype
def test_fused_sigmoid_binary_cross_entropy_equals_the_unfused_math(dtype, seed, rows, C, ls, weighted):
    rng = np.random.default_rng(seed)
    Y, _, _ = _loss_data("bce", rng, rows, C, dtype)
    Z = (rng.standard_normal((rows, C)) * 3).astype(dtype)
    P = Z.copy()
    _engine.activation_forward(2, 0.0, P)
    w = rng.uniform(0, 3, rows).astype(dtype) if weighted else None
    p64 = ref.sigmoid(Z)
    expected_rows = ref.loss_value("bce", Y, p64, label_smoothing=ls)
    expected_grad = ref.activation_backward("sigmoid", Z, ref.loss_grad("bce", Y, p64, label_smoothing=ls))
    exact = ((p64 < 1e-6) | (p64 > 1 - 1e-6)).any(axis=1)   # beyond Keras's clip: the exact formula
    expected_rows[exact] = ref.loss_value("bce", Y, Z, from_logits=True, label_smoothing=ls)[exact]
    expected_grad[exact] = ref.loss_grad("bce", Y, Z, from_logits=True, label_smoothing=ls)[exact]
    _check_loss(dtype, "bce", 2, P, Z, Y, None, w, 2.0, expected_rows, expected_grad, True,
                label_smoothing=ls)


@per_dtype
@pytest.mark.parametrize("name,act", [("cce", 4), ("scce", 4), ("bce", 2)])
def test_fused_cross_entropy_stays_finite_for_saturated_logits(dtype, name, act):
    Z = np.array([[80.0, -80.0, 0.0], [-80.0, 80.0, 79.0]], dtype=dtype)
    P = Z.copy()
    _engine.activation_forward(act, 0.0, P)
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
    labels = np.array([1, 0], dtype=np.int64)
    total, g, pre = _engine.loss_forward_backward(_spec(name), act, P, Z, None if name == "scce" else Y,
                                                  labels if name == "scce" else None, None, 1.0)
    assert pre and np.isfinite(total) and np.all(np.isfinite(g))
    y = labels if name == "scce" else Y
    expected = ref.loss_value(name, y, Z, from_logits=True)   # the exact (unclipped) value
    _close(total, expected.sum(), 1e-5, 1e-3)


@per_dtype
@pytest.mark.parametrize("name,act,Zgiven,from_logits", [
    ("cce", 4, False, False), ("cce", 4, True, True), ("cce", 2, True, False),
    ("bce", 2, False, False), ("bce", 2, True, True), ("bce", 4, True, False), ("mse", 4, True, False)])
def test_fused_path_is_taken_only_for_matching_activation_with_z_and_probabilities(
        dtype, name, act, Zgiven, from_logits):
    Z = np.array([[0.3, -0.2, 0.9]], dtype=dtype)
    P = Z.copy()
    _engine.activation_forward(act, 0.0, P)
    Y = np.array([[0.0, 1.0, 0.0]], dtype=dtype)
    _, _, pre = _engine.loss_forward_backward(_spec(name, from_logits=from_logits), act, P,
                                              Z if Zgiven else None, Y, None, None, 1.0)
    assert pre is False


@per_dtype
def test_sample_weight_two_equals_the_row_counted_twice_and_zero_weight_gives_zero_gradient(dtype):
    rng = np.random.default_rng(5)
    P = rng.uniform(0.1, 0.9, (3, 4)).astype(dtype)
    Y = ref.one_hot([0, 2, 3], 4).astype(dtype)
    spec = _spec("cce")
    t_w, g_w, _ = _engine.loss_forward_backward(spec, 0, P, None, Y, None, np.array([2, 0, 1], dtype), 1.0)
    P2, Y2 = np.ascontiguousarray(P[[0, 0, 2]]), np.ascontiguousarray(Y[[0, 0, 2]])
    t_d, g_d, _ = _engine.loss_forward_backward(spec, 0, P2, None, Y2, None, None, 1.0)
    _close(t_w, t_d, 1e-6, 0)
    np.testing.assert_array_equal(g_w[1], 0)
    _close(g_w[0], g_d[0] + g_d[1], 1e-6, 1e-7)


@per_dtype
def test_sparse_label_outside_the_classes_raises(dtype):
    P = np.full((2, 3), 1 / 3, dtype=dtype)
    with pytest.raises(ValueError, match="sparse label"):
        _engine.loss_forward_backward(_spec("scce"), 0, P, None, None, np.array([0, 3]), None, 1.0)


@per_dtype
def test_hinge_losses_convert_zero_one_labels_like_keras(dtype):
    """The kernel takes {-1, 1}; the Loss objects convert {0, 1} first."""
    rng = np.random.default_rng(2)
    y01 = rng.integers(0, 2, (5, 3)).astype(dtype)
    p = rng.standard_normal((5, 3)).astype(dtype)
    for name, cls in (("hinge", fastmlp.losses.Hinge), ("squared_hinge", fastmlp.losses.SquaredHinge)):
        _close(cls()(y01, p), ref.loss_value(name, y01, p).mean(), 1e-5, 1e-6, name)


# =========================================================================== metrics
METRIC_NAMES = list(ref.METRIC_CODES)


def _metric_data(name, rng, rows, C, dtype, quantize):
    P = rng.uniform(0, 1, (rows, C))
    if quantize:                 # many ties: exercises argmax and top-k tie rules
        P = np.round(P * 3) / 3
    if name.startswith("sparse"):
        return P.astype(dtype), None, rng.integers(0, C, rows).astype(np.int64)
    if name == "binary_accuracy":
        return P.astype(dtype), rng.integers(0, 2, (rows, C)).astype(dtype), None
    if name in ("mae", "mse"):
        return P.astype(dtype), rng.standard_normal((rows, C)).astype(dtype), None
    return P.astype(dtype), ref.one_hot(rng.integers(0, C, rows), C).astype(dtype), None


@pytest.mark.parametrize("name", METRIC_NAMES)
@SETTINGS
@given(seed=seeds, rows=st.integers(1, 12), C=st.integers(1, 7), weighted=st.booleans(),
       quantize=st.booleans(), param=st.sampled_from([1, 2, 3, 0.5, 0.3]))
@per_dtype
def test_metric_weighted_sum_matches_reference(dtype, name, seed, rows, C, weighted, quantize, param):
    rng = np.random.default_rng(seed)
    P, Y, labels = _metric_data(name, rng, rows, C, dtype, quantize)
    w = rng.uniform(0, 2, rows).astype(dtype) if weighted else None
    if "top_k" in name:
        param = int(np.ceil(param))
    elif name == "binary_accuracy":
        param = float(param) if param < 1 else 0.5
    else:
        param = 0.0
    got = _engine.metrics_update([(ref.METRIC_CODES[name], param)], P, Y, labels, w)
    values = ref.metric_value(name, labels if Y is None else Y, P, param)
    wr = np.ones(rows) if w is None else w.astype(np.float64)
    _close(got[0], np.sum(wr * values), 1e-6, 1e-6)


@per_dtype
def test_several_metrics_are_summed_in_one_pass(dtype):
    rng = np.random.default_rng(9)
    P, Y, _ = _metric_data("categorical_accuracy", rng, 20, 5, dtype, False)
    specs = [(1, 0.0), (3, 2.0), (5, 0.0), (6, 0.0), (0, 0.5)]
    got = _engine.metrics_update(specs, P, Y, None, None)
    names = ["categorical_accuracy", "top_k_categorical_accuracy", "mae", "mse", "binary_accuracy"]
    for value, name, (_, param) in zip(got, names, specs):
        _close(value, ref.metric_value(name, Y, P, param).sum(), 1e-6, 1e-6, name)


@per_dtype
def test_top_k_counts_ties_in_favour_of_the_target(dtype):
    P = np.array([[0.2, 0.2, 0.2, 0.4], [0.5, 0.1, 0.1, 0.3], [0.1, 0.3, 0.3, 0.3]], dtype=dtype)
    labels = np.array([0, 2, 3], dtype=np.int64)
    # row 0: one score above the target -> in top 2; row 1: two above -> not; row 2: none above
    got = _engine.metrics_update([(4, 2.0)], P, None, labels, None)
    assert got == [2.0]


# =========================================================================== optimizers
OPT_CASES = {
    "sgd": ("sgd", dict(learning_rate=0.1)),
    "sgd_momentum": ("sgd", dict(learning_rate=0.1, momentum=0.9)),
    "sgd_nesterov": ("sgd", dict(learning_rate=0.1, momentum=0.8, nesterov=True)),
    "sgd_weight_decay": ("sgd", dict(learning_rate=0.1, weight_decay=0.05)),
    "sgd_clipvalue": ("sgd", dict(learning_rate=0.1, momentum=0.5, clipvalue=0.3)),
    "rmsprop": ("rmsprop", dict(learning_rate=0.01)),
    "rmsprop_momentum": ("rmsprop", dict(learning_rate=0.01, momentum=0.7)),
    "rmsprop_centered_momentum": ("rmsprop", dict(learning_rate=0.01, momentum=0.6, centered=True)),
    "rmsprop_global_clipnorm": ("rmsprop", dict(learning_rate=0.01, global_clipnorm=0.7)),
    "adagrad": ("adagrad", dict(learning_rate=0.1)),
    "adagrad_initial_accumulator": ("adagrad", dict(learning_rate=0.1, initial_accumulator_value=1.5)),
    "adadelta": ("adadelta", dict(learning_rate=1.0)),
    "adam": ("adam", dict(learning_rate=0.01)),
    "adam_amsgrad": ("adam", dict(learning_rate=0.01, amsgrad=True)),
    "adam_clipnorm": ("adam", dict(learning_rate=0.01, clipnorm=0.5)),
    "adam_weight_decay": ("adam", dict(learning_rate=0.01, weight_decay=0.1)),
    "adamw": ("adamw", dict(learning_rate=0.01)),
    "adamw_amsgrad_global_clipnorm": ("adamw", dict(learning_rate=0.01, weight_decay=0.2, amsgrad=True,
                                                    global_clipnorm=1.0)),
    "adamax": ("adamax", dict(learning_rate=0.01)),
    "adamax_clipvalue": ("adamax", dict(learning_rate=0.01, clipvalue=0.5)),
    "nadam": ("nadam", dict(learning_rate=0.01)),
    "nadam_clipnorm_weight_decay": ("nadam", dict(learning_rate=0.01, clipnorm=0.4, weight_decay=0.05)),
}
_FASTMLP_OPT = {"sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "Adadelta",
                "adam": "Adam", "adamw": "AdamW", "adamax": "Adamax", "nadam": "Nadam"}
# Two variables with a gap between them (as the model's aligned layout has).
SEGMENTS = [(0, 7), (8, 5)]
N_PARAMS = 16
OPT_TOL = {np.float32: (3e-5, 3e-6), np.float64: (1e-11, 1e-13)}


def _run_optimizer(dtype, name, config, seed, n_steps, regs=((0.0, 0.0), (0.0, 0.0)), grad_decay=None):
    """Run n_steps of the engine and the reference from the same start; returns both."""
    rng = np.random.default_rng(seed)
    opt = getattr(fastmlp.optimizers, _FASTMLP_OPT[name])(**config)
    opt.build(N_PARAMS, dtype)
    spec = opt._engine_spec()
    slots = opt._slots
    params = rng.standard_normal(N_PARAMS).astype(dtype)
    gap = [i for i in range(N_PARAMS) if not any(o <= i < o + s for o, s in SEGMENTS)]
    gap_before = params[gap].copy()
    variables = [(o, s, l1, l2) for (o, s), (l1, l2) in zip(SEGMENTS, regs)]
    w_ref = [params[o:o + s].astype(np.float64) for o, s in SEGMENTS]
    cfg = ref.optimizer_config(name, **config)
    state = ref.init_state(name, cfg, w_ref)
    for t in range(n_steps):
        lr = config["learning_rate"] * (1.0, 0.5, 2.0, 0.8)[t % 4]
        grads = (rng.standard_normal(N_PARAMS) * (grad_decay[t] if grad_decay else 1.0)).astype(dtype)
        g_ref = [grads[o:o + s].astype(np.float64) + ref.regularization_grad(w, l1, l2)
                 for (o, s), w, (l1, l2) in zip(SEGMENTS, w_ref, regs)]
        w_ref = ref.optimizer_step(name, {**cfg, "learning_rate": lr}, w_ref, g_ref, state, t)
        before = params.copy()
        _engine.optimizer_step(spec, variables, params, grads.copy(), slots, lr)
        assert spec["iterations"] == t + 1
        assert not np.array_equal(before, params), "the step did not change the parameters"
        assert params.dtype == dtype
    np.testing.assert_array_equal(params[gap], gap_before)   # untouched outside the variables
    return np.concatenate([params[o:o + s] for o, s in SEGMENTS]), np.concatenate(w_ref), spec, state


@per_dtype
@pytest.mark.parametrize("case", list(OPT_CASES))
@settings(deadline=None, max_examples=25, derandomize=True, database=None)
@given(seed=seeds)
def test_optimizer_steps_match_keras_rule_with_state_carried(dtype, case, seed):
    name, config = OPT_CASES[case]
    decay = [3.0, 1.0, 0.3, 0.1, 0.05] if "amsgrad" in case else None
    got, expected, spec, state = _run_optimizer(dtype, name, config, seed, 5, grad_decay=decay)
    rtol, atol = OPT_TOL[dtype]
    _close(got, expected, rtol * 5, atol * 5, case)
    if name == "nadam":
        _close(spec["u_product"], state["u_product"], 1e-12, 0)


@pytest.mark.parametrize("case", ["sgd", "sgd_momentum", "adam", "adam_clipnorm", "rmsprop_global_clipnorm",
                                  "sgd_clipvalue", "adamw", "adagrad"])
@per_dtype
@settings(deadline=None, max_examples=25, derandomize=True, database=None)
@given(seed=seeds, l1=st.sampled_from([0.0, 0.01, 0.3]), l2=st.sampled_from([0.0, 0.02, 0.5]))
def test_regularizer_gradients_are_added_before_clipping_and_the_rule(dtype, case, seed, l1, l2):
    name, config = OPT_CASES[case]
    regs = ((l1, l2), (l2, l1))
    got, expected, _, _ = _run_optimizer(dtype, name, config, seed, 3, regs=regs)
    rtol, atol = OPT_TOL[dtype]
    _close(got, expected, rtol * 5, atol * 5, case)


@per_dtype
def test_amsgrad_keeps_the_running_maximum_of_v(dtype):
    """After large then small gradients, amsgrad steps are smaller than plain Adam's."""
    decay = [10.0, 0.01, 0.01]
    got_ams, exp_ams, _, _ = _run_optimizer(dtype, "adam", dict(learning_rate=0.1, amsgrad=True), 1, 3,
                                            grad_decay=decay)
    got_adam, exp_adam, _, _ = _run_optimizer(dtype, "adam", dict(learning_rate=0.1), 1, 3, grad_decay=decay)
    assert not np.allclose(exp_ams, exp_adam)
    _close(got_ams, exp_ams, *OPT_TOL[dtype])
    _close(got_adam, exp_adam, *OPT_TOL[dtype])


@per_dtype
def test_optimizer_step_zero_learning_rate_leaves_weights_but_advances_iterations(dtype):
    opt = fastmlp.optimizers.Adam(learning_rate=0.0)
    opt.build(4, dtype)
    spec = opt._engine_spec()
    params = np.arange(4, dtype=dtype)
    _engine.optimizer_step(spec, [(0, 4, 0.0, 0.0)], params, np.ones(4, dtype), opt._slots, 0.0)
    np.testing.assert_array_equal(params, np.arange(4))
    assert spec["iterations"] == 1
    np.testing.assert_allclose(opt._slots[:4], 0.1, rtol=1e-6)   # m moved: (1 - beta_1) * g


@per_dtype
@pytest.mark.parametrize("name", ["bce", "cce"])
def test_label_smoothing_with_more_than_64_classes_matches_reference(dtype, name):
    """Over 64 classes the kernel allocates its smoothed-target buffer on the heap."""
    rng = np.random.default_rng(64)
    rows, C = 3, 100
    Y = ref.one_hot(rng.integers(0, C, rows), C).astype(dtype)
    P = rng.uniform(0.05, 1, (rows, C)).astype(dtype)
    kw = dict(label_smoothing=0.1)
    _check_loss(dtype, name, 0, P, None, Y, None, None, 1.0,
                ref.loss_value(name, Y, P, **kw), ref.loss_grad(name, Y, P, **kw), False, **kw)


# =========================================================================== public objects
_LOSS_OBJECTS = {
    "mse": fastmlp.losses.MeanSquaredError, "mae": fastmlp.losses.MeanAbsoluteError,
    "mape": fastmlp.losses.MeanAbsolutePercentageError, "msle": fastmlp.losses.MeanSquaredLogarithmicError,
    "huber": fastmlp.losses.Huber, "log_cosh": fastmlp.losses.LogCosh,
    "bce": fastmlp.losses.BinaryCrossentropy, "cce": fastmlp.losses.CategoricalCrossentropy,
    "scce": fastmlp.losses.SparseCategoricalCrossentropy, "hinge": fastmlp.losses.Hinge,
    "squared_hinge": fastmlp.losses.SquaredHinge, "categorical_hinge": fastmlp.losses.CategoricalHinge,
    "kld": fastmlp.losses.KLDivergence, "poisson": fastmlp.losses.Poisson,
}


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_objects_reduce_with_sum_over_batch_size_like_keras(name):
    rng = np.random.default_rng(31)
    Y, labels, P = _loss_data(name, rng, 6, 4, np.float64)
    y = labels if Y is None else Y
    w = rng.uniform(0, 2, 6)
    loss = _LOSS_OBJECTS[name]()
    expected = ref.loss_value(name, y, P)
    _close(loss(y, P), expected.mean(), 1e-10, 1e-12, name)
    _close(loss(y, P, sample_weight=w), np.sum(w * expected) / 6, 1e-10, 1e-12, name)
    _close(_LOSS_OBJECTS[name](reduction="sum")(y, P), expected.sum(), 1e-10, 1e-12, name)


@pytest.mark.parametrize("cls,name,kw", [
    (fastmlp.metrics.BinaryAccuracy, "binary_accuracy", dict(threshold=0.3)),
    (fastmlp.metrics.CategoricalAccuracy, "categorical_accuracy", {}),
    (fastmlp.metrics.SparseCategoricalAccuracy, "sparse_categorical_accuracy", {}),
    (fastmlp.metrics.TopKCategoricalAccuracy, "top_k_categorical_accuracy", dict(k=2)),
    (fastmlp.metrics.SparseTopKCategoricalAccuracy, "sparse_top_k_categorical_accuracy", dict(k=2)),
    (fastmlp.metrics.MeanAbsoluteError, "mae", {}),
    (fastmlp.metrics.MeanSquaredError, "mse", {}),
])
def test_metric_objects_accumulate_a_weighted_mean_over_updates(cls, name, kw):
    rng = np.random.default_rng(32)
    metric = cls(**kw)
    param = kw.get("threshold", kw.get("k"))
    num = den = 0.0
    for _ in range(3):
        P, Y, labels = _metric_data(name, rng, 5, 4, np.float64, True)
        y = labels if Y is None else Y
        w = rng.uniform(0, 2, 5)
        metric.update_state(y, P, sample_weight=w)
        num += np.sum(w * ref.metric_value(name, y, P, param))
        den += w.sum()
    _close(metric.result(), num / den, 1e-12, 1e-12, name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_weight_views_are_the_slices_numpy_gives(dtype, data):
    """weight_views(params, [(offset, shape)]) == params[off:off + size].reshape(shape):
    same values, sharing memory, writeable only when params is, bounds checked."""
    n = data.draw(st.integers(1, 300))
    params = np.arange(n, dtype=dtype)
    shapes = data.draw(st.lists(st.lists(st.integers(0, 6), max_size=3).map(tuple), max_size=5))
    segments = []
    for shape in shapes:
        size = int(np.prod(shape))
        if size <= n:
            segments.append((data.draw(st.integers(0, n - size)), shape))
    views = _engine.weight_views(params, segments)
    assert len(views) == len(segments)
    for (off, shape), v in zip(segments, views):
        expected = params[off:off + int(np.prod(shape))].reshape(shape)
        assert v.shape == shape and v.dtype == params.dtype and v.flags.c_contiguous
        assert np.array_equal(v, expected) and v.base is params
        if v.size:
            v.reshape(-1)[0] = -1
            assert params[off] == -1
            params[off] = off
    frozen = params.copy()
    frozen.flags.writeable = False
    assert not any(v.flags.writeable for v in _engine.weight_views(frozen, segments))
    with pytest.raises(ValueError, match="outside"):
        _engine.weight_views(params, [(n - 1, (2,))])
    with pytest.raises(ValueError, match="outside"):
        _engine.weight_views(params, [(-1, (1,))])
    with pytest.raises(ValueError, match="negative"):
        _engine.weight_views(params, [(0, (-1,))])
    with pytest.raises(TypeError):
        _engine.weight_views(params.reshape(1, -1), [])


@per_dtype
def test_log_softmax_keeps_minus_infinity_and_nan_as_torch_does(dtype):
    B = np.array([[0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0], [-1e30, 0.0, 0.0]], dtype)
    _engine.activation_forward(ref.ACTIVATION_CODES["log_softmax"], 0.0, B)
    np.testing.assert_allclose(B[0, [0, 2]], [-1 - np.log1p(np.exp(-1.0)), -np.log1p(np.exp(-1.0))], rtol=1e-6)
    assert B[0, 1] == -np.inf
    assert np.isnan(B[1]).all()
    np.testing.assert_allclose(B[2, 1:], [-np.log(2.0)] * 2, rtol=1e-6)
    assert B[2, 0] <= -1e29
