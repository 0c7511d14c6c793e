"""The vectorizable exp / log1p / sigmoid of csrc/act_impl.h, through the
kernels that use them: the sigmoid activation (a one-unit output runs down
its column) and binary cross-entropy on logits (the one-logit pass and the
general loop), against NumPy in float64 rounded to the element type.
"""
import numpy as np
import pytest

_engine = pytest.importorskip("fastmlp._engine")

SIGMOID = 2          # fm_activation codes (csrc/fastmlp.h)
BCE = 6              # fm_loss codes
ULP_LIMIT = {np.float32: 3, np.float64: 4}


def _ulps(a, b):
    a = np.asarray(a)
    it = np.int32 if a.dtype == np.float32 else np.int64

    def key(x):
        i = np.asarray(x, a.dtype).view(it).astype(np.int64)
        return np.where(i < 0, -(i & np.iinfo(it).max), i)
    return np.abs(key(a) - key(b))


def _logits(dtype, n=4001):
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-30, 30, n), rng.standard_normal(n) * 5,
                        [0.0, -0.0, 1e-8, -1e-8, 1e-30, 87.0, -87.0, 100.0, -100.0, 700.0, -700.0]])
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [1, 3, 16])
def test_sigmoid_activation_is_within_a_few_ulp(dtype, cols):
    x = _logits(dtype)
    x = x[: len(x) // cols * cols].reshape(-1, cols)
    with np.errstate(over="ignore"):
        ref = (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(dtype)
    got = _engine.activation_forward(SIGMOID, 0.0, x.copy())
    tiny = np.finfo(dtype).tiny   # below the smallest normal e^-|x| is 0 (exp_nonpos)
    normal = ref >= tiny
    assert _ulps(got[normal], ref[normal]).max() <= ULP_LIMIT[dtype]
    assert np.all(np.abs(got[~normal]) <= tiny)
    special = np.array([[np.inf], [-np.inf], [np.nan]], dtype)
    out = _engine.activation_forward(SIGMOID, 0.0, special)
    assert out[0, 0] == 1 and out[1, 0] == 0 and np.isnan(out[2, 0])


def _bce_reference(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    with np.errstate(over="ignore"):
        loss = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
        grad = 1.0 / (1.0 + np.exp(-x)) - y
    return loss, grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [1, 2])
def test_binary_crossentropy_on_logits_per_value(dtype, cols):
    """Each value's loss (rows of one value) and gradient, one-logit pass and general loop."""
    x = _logits(dtype, 301)
    x = x[: len(x) // cols * cols].reshape(-1, cols)
    y = (np.arange(x.size) % 3 == 0).astype(dtype).reshape(x.shape)
    loss_ref, grad_ref = _bce_reference(x, y)
    spec = (BCE, 1, 0.0, 1.0, 0, 1.0)
    _, g, pre = _engine.loss_forward_backward(spec, 0, x, None, y, None, None, 1.0)
    # sigmoid(x) - y cancels: the error is relative to the sigmoid, not to the difference
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(g * cols - grad_ref) <= (ULP_LIMIT[dtype] + 1) * eps * np.maximum(grad_ref + y, y)
                  + np.finfo(dtype).tiny)
    for r in range(0, len(x), 7):      # one row at a time: that row's loss
        total, _, _ = _engine.loss_forward_backward(spec, 0, x[r:r + 1], None, y[r:r + 1], None, None, 1.0)
        expect = loss_ref[r].sum() / cols
        assert abs(total - expect) <= 4 * np.finfo(dtype).eps * max(abs(expect), np.finfo(dtype).tiny) \
            + (np.abs(x[r]).max() + 1) * np.finfo(dtype).eps, (x[r], total, expect)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log1p_of_exp_matches_numpy_where_it_is_the_whole_loss(dtype):
    """y = 0 and x <= 0: the loss is log1p(exp(x)) alone, a test of exp_nonpos and log1p_unit."""
    x = -np.abs(_logits(dtype)).reshape(-1, 1)
    y = np.zeros_like(x)
    spec = (BCE, 1, 0.0, 1.0, 0, 1.0)
    ref = np.log1p(np.exp(x.astype(np.float64)))[:, 0]
    got = np.array([_engine.loss_forward_backward(spec, 0, x[r:r + 1], None, y[r:r + 1], None, None, 1.0)[0]
                    for r in range(0, len(x), 3)])
    ref = ref[::3]
    tiny = np.finfo(dtype).tiny
    keep = ref > tiny * 2 ** 10   # exp_nonpos returns 0 below the smallest normal
    assert _ulps(got[keep].astype(dtype), ref[keep].astype(dtype)).max() <= ULP_LIMIT[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_logit_pass_equals_the_general_loop_with_sample_weights(dtype):
    """The vectorized pass over one-logit rows and the per-row loop give the same bits:
    a two-column problem whose second column is a copy halves to the one-column one."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((700, 1)) * 4).astype(dtype)
    y = (rng.random((700, 1)) < 0.4).astype(dtype)
    w = rng.random(700).astype(dtype)
    spec = (BCE, 1, 0.0, 1.0, 0, 1.0)
    t1, g1, _ = _engine.loss_forward_backward(spec, 0, x, None, y, None, w, 0.5)
    x2, y2 = np.repeat(x, 2, axis=1), np.repeat(y, 2, axis=1)
    t2, g2, _ = _engine.loss_forward_backward(spec, 0, x2, None, y2, None, w, 0.5)
    np.testing.assert_allclose(t2, t1, rtol=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(g2[:, 0] * 2, g1[:, 0], rtol=1e-6 if dtype == np.float32 else 1e-14)
