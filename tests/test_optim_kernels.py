"""The vectorized optimizer kernels (csrc/optim_kernels.h) on every target this
CPU runs ("avx512", "generic"), forced with set_optim_target().

The float32 Adam/AdamW kernel must leave m and v bit-identical to the plain
rule and put the update within one ulp of the correctly rounded
(m * alpha) / (sqrt(v) + eps), whatever the magnitudes, in full vectors and in
the tail, with v = 0, infinite or NaN taking the exact path.  The reference
is NumPy's float32 arithmetic (IEEE sqrt and division) with subnormals
flushed to zero as every optimizer rule does (DAZ/FTZ, optim_kernels.h).
"""
import numpy as np
import pytest

import fastmlp

_engine = pytest.importorskip("fastmlp._engine")

TARGETS = _engine.available_optim_targets()


@pytest.fixture(params=TARGETS)
def target(request):
    _engine.set_optim_target(request.param)
    assert _engine.optim_target() == request.param
    yield request.param
    _engine.set_optim_target("auto")


def _adam(cls=fastmlp.optimizers.Adam, n=0, **kw):
    opt = cls(**kw)
    opt.build(n, np.float32)
    return opt


def _step(opt, variables, w, g, m, v, lr):
    """One engine step; returns the new w, m, v (w, g, m, v are not modified)."""
    n = len(w)
    spec = opt._engine_spec()
    slots = opt._slots
    slots[:n], slots[n:2 * n] = m, v
    w1 = w.copy()
    _engine.optimizer_step(spec, variables, w1, g.copy(), slots, lr)
    return w1, slots[:n].copy(), slots[n:2 * n].copy()


def _ftz(x):
    """Subnormal float32 values to zero (of their sign): the optimizer's DAZ/FTZ."""
    x = np.asarray(x, np.float32)
    return np.where(np.abs(x) < np.finfo(np.float32).tiny, np.copysign(np.float32(0), x), x).astype(np.float32)


def _reference(w, g, m, v, lr, b1, b2, eps, t=1):
    """Keras's rule in float32 with every operand and result flushed as the engine does."""
    f, z = np.float32, _ftz
    one = f(1)
    alpha = f(lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t))
    g, m, v = z(g), z(m), z(v)
    with np.errstate(all="ignore"):
        m1 = z(m + z(z(g - m) * (one - f(b1))))
        v1 = z(v + z(z(z(g * g) - v) * (one - f(b2))))
        q = z(z(z(m1 * alpha)) / z(z(np.sqrt(v1)) + f(eps)))
    return q, m1, v1


def _ulps(a, b):
    """|a - b| in float32 ulps (monotone integer mapping), 0 where both are NaN."""
    def key(x):
        i = x.view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)
    d = np.abs(key(a) - key(b))
    return np.where(np.isnan(a) & np.isnan(b), 0, d)


def _draw(rng, n):
    """m, v, g over many decades, including exact zeros (dead units)."""
    g = (rng.standard_normal(n) * 10.0 ** rng.uniform(-12, 2, n)).astype(np.float32)
    m = (rng.standard_normal(n) * 10.0 ** rng.uniform(-12, 1, n)).astype(np.float32)
    v = (rng.random(n) * 10.0 ** rng.uniform(-30, 4, n)).astype(np.float32)
    zero = rng.random(n) < 0.05
    g[zero], m[zero], v[zero] = 0, 0, 0
    return g, m, v


@pytest.mark.parametrize("n", [1, 15, 16, 17, 33, 1000, 4099])
def test_adam_update_is_within_one_ulp_and_slots_are_exact(target, n):
    rng = np.random.default_rng(n)
    g, m, v = _draw(rng, n)
    w = np.zeros(n, np.float32)   # w - q = -q exactly: the update itself is seen
    lr = 3e-3
    opt = _adam(n=n, learning_rate=lr)
    w1, m1, v1 = _step(opt, [(0, n, 0.0, 0.0)], w, g, m, v, lr)
    q, m_ref, v_ref = _reference(w, g, m, v, lr, opt.beta_1, opt.beta_2, opt.epsilon)
    np.testing.assert_array_equal(m1, m_ref)
    np.testing.assert_array_equal(v1, v_ref)
    ulps = _ulps(-w1, q)
    assert ulps.max() <= (0 if target == "generic" else 1), (target, ulps.max())


def test_adam_kernel_is_taken_and_special_values_follow_the_exact_rule(target):
    """v = 0, subnormal, infinite and NaN; epsilon 0; then a large random draw, where
    the estimates round like the exact operations but for a few (so the kernel ran)."""
    f = np.float32
    tiny = np.float32(1e-42)   # subnormal
    g = np.array([0, 0, 1e-21, np.inf, np.nan, -np.inf, 3, 1e-30, 0, 2e-20, 5, -7, 1e19, 1e-3, 0, 1, 2],
                 np.float32)
    m = np.array([0, 1e-3, 0, 0, 0, 1, 2, 0, -1e-8, 0, 0, 1, 0, 0, 0, 0, 0], np.float32)
    v = np.array([0, 0, 0, 0, 0, 0, np.inf, tiny, tiny, 0, np.nan, 0, 0, 1e-38, 1e-38, 3e38, 1], np.float32)
    n = len(g)
    for eps in (1e-7, 0.0):
        opt = _adam(n=n, learning_rate=1e-2, epsilon=eps)
        w1, m1, v1 = _step(opt, [(0, n, 0.0, 0.0)], np.zeros(n, f), g, m, v, 1e-2)
        q, m_ref, v_ref = _reference(np.zeros(n, f), g, m, v, 1e-2, opt.beta_1, opt.beta_2, eps)
        np.testing.assert_array_equal(m1, m_ref)
        np.testing.assert_array_equal(v1, v_ref)
        np.testing.assert_array_equal(np.isnan(w1), np.isnan(q))
        assert _ulps(-w1, q).max() <= 1
    rng = np.random.default_rng(7)
    n = 1_000_000   # about one update in 10^5 rounds off by an ulp on AVX-512
    g, m, v = _draw(rng, n)
    opt = _adam(n=n, learning_rate=1e-3)
    w1, _, _ = _step(opt, [(0, n, 0.0, 0.0)], np.zeros(n, f), g, m, v, 1e-3)
    q, _, _ = _reference(np.zeros(n, f), g, m, v, 1e-3, opt.beta_1, opt.beta_2, opt.epsilon)
    ulps = _ulps(-w1, q)
    differ = np.count_nonzero(ulps)
    assert ulps.max() <= 1
    if target == "generic":
        assert differ == 0
    else:
        assert 0 < differ < n // 1000


@pytest.mark.parametrize("cls", [fastmlp.optimizers.Adam, fastmlp.optimizers.AdamW])
def test_adam_results_do_not_depend_on_where_a_variable_starts(target, cls):
    """Every element takes the same operations in a full vector or the tail."""
    rng = np.random.default_rng(3)
    n = 101
    g, m, v = _draw(rng, n)
    w = rng.standard_normal(n).astype(np.float32)
    runs = []
    for cut in ([n], [7, n - 7], [16, 1, n - 17], [50, 51]):
        variables, off = [], 0
        for size in cut:
            variables.append((off, size, 0.0, 0.0))
            off += size
        opt = _adam(cls, n=n, learning_rate=1e-2)
        runs.append(_step(opt, variables, w, g, m, v, 1e-2))
    for r in runs[1:]:
        for a, b in zip(r, runs[0]):
            np.testing.assert_array_equal(a, b)


def test_adam_training_matches_the_generic_rule_closely():
    """A few hundred Adam steps of a small net: the kernel's targets agree to float rounding."""
    if "avx512" not in TARGETS:
        pytest.skip("no AVX-512 on this CPU")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 20)).astype(np.float32)
    y = (x[:, :3].sum(1) > 0).astype(np.int64)
    weights = []
    for t in ("generic", "avx512"):
        _engine.set_optim_target(t)
        try:
            fastmlp.utils.set_random_seed(1)
            model = fastmlp.Sequential([fastmlp.Input(shape=(20,)), fastmlp.layers.Dense(32, activation="relu"),
                                        fastmlp.layers.Dense(2, activation="softmax")])
            model.compile(optimizer=fastmlp.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
            model.fit(x, y, batch_size=32, epochs=5, verbose=0)
            weights.append(model.get_weights())
        finally:
            _engine.set_optim_target("auto")
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_an_unknown_optimizer_target_is_refused():
    with pytest.raises(ValueError, match="optimizer target 'no-such-target'"):
        _engine.set_optim_target("no-such-target")
    assert _engine.optim_target() in TARGETS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["Adam", "SGD", "RMSprop", "Nadam"])
def test_every_rule_flushes_subnormal_slots_to_zero(target, dtype, name):
    """Subnormal slots (from a gradient that stayed zero) read as zero, and a
    result that would be subnormal is stored as zero: no value costs microcode
    assists in the next step."""
    info = np.finfo(dtype)
    n = 40
    kw = {"SGD": {"momentum": 0.9}, "RMSprop": {"momentum": 0.9, "centered": True}}.get(name, {})
    opt = getattr(fastmlp.optimizers, name)(learning_rate=1e-3, **kw)
    opt.build(n, dtype)
    spec = opt._engine_spec()
    slots = opt._slots
    n_slots = len(opt.slot_names)
    assert n_slots >= 1
    half = n // 2
    slots[:n_slots * n] = info.tiny / 4   # subnormal
    g = np.zeros(n, dtype)
    g[half:] = np.sqrt(info.tiny) / 8     # g * g is subnormal
    w = np.ones(n, dtype)
    _engine.optimizer_step(spec, [(0, n, 0.0, 0.0)], w, g, slots, 1e-3)
    s = slots[:n_slots * n].reshape(n_slots, n)
    assert np.all((s == 0) | (np.abs(s) >= info.tiny)), s
    np.testing.assert_array_equal(s[:, :half], 0)
    np.testing.assert_array_equal(w[:half], 1)
