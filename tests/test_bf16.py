"""bfloat16 inference under the mixed_bfloat16 dtype policy (csrc/bgemm*.c,
fastmlp.mixed_precision, fastmlp.models.bfloat16): every kernel target against a
NumPy reference of the same rounding (bit for bit), batch invariance, the policy
objects against Keras's, weights rounded again when written, accuracy, and
training (bfloat16 forward, float32 master weights and backward)."""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import _engine, mixed_precision

TARGETS = ("avx512bf16", "avx2", "generic")
L = fastmlp.layers


# ---------------------------------------------------------------- the NumPy reference
def ref_round(x):
    """float32 -> bfloat16 bits: round to nearest even, subnormals to signed zeros,
    NaNs quiet (vcvtne2ps2bf16)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    out = np.where((u & 0x7F800000) == 0, (u >> 16) & 0x8000, rounded)
    out = np.where((u & 0x7FFFFFFF) > 0x7F800000, (u >> 16) | 0x40, out)
    return out.astype(np.uint16)


def as_float(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def ref_dense(x, w, bias=None):
    """The formula of csrc/bgemm.h: per input pair, the odd product then the even one
    added to a float32 sum (each product of two bfloat16 values is exact in float32;
    data here stays far from the subnormal range), then + bias in float32."""
    a, b = as_float(ref_round(x)), as_float(ref_round(w))
    if a.shape[1] % 2:
        a = np.pad(a, ((0, 0), (0, 1)))
        b = np.pad(b, ((0, 1), (0, 0)))
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for g in range(a.shape[1] // 2):
        for k in (2 * g + 1, 2 * g):
            acc = acc + a[:, k:k + 1] * b[k:k + 1, :]
            acc = np.where(np.abs(acc) < np.finfo(np.float32).tiny, np.copysign(np.float32(0), acc), acc)
    return acc + bias if bias is not None else acc


@pytest.fixture(params=TARGETS)
def target(request):
    if request.param not in _engine.available_bf16_targets():
        pytest.skip(f"this CPU cannot run the {request.param} bfloat16 kernels")
    _engine.set_bf16_target(request.param)
    yield request.param
    _engine.set_bf16_target("auto")


@pytest.fixture(autouse=True)
def _global_policy():
    yield
    mixed_precision._GLOBAL[0] = None


def _mlp(policy, sizes=(33, 40, 10), seed=0, last="softmax"):
    fastmlp.utils.set_random_seed(seed)
    hidden = [L.Dense(u, activation="relu", dtype=policy) for u in sizes[1:-1]]
    return fastmlp.Sequential([fastmlp.Input((sizes[0],))] + hidden + [L.Dense(sizes[-1], activation=last,
                                                                                dtype=policy)])


# ---------------------------------------------------------------- kernels
def test_rounding_to_bfloat16_matches_reference(target):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2 ** 32, size=(7, 301), dtype=np.uint64).astype(np.uint32).view(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 1.0, 1.00390625, 1.01171875,
                        3.4e38, -3.4e38, np.float32(1.0) + np.float32(2 ** -8), 1.1754942e-38], np.float32)
    x[0, :len(special)] = special
    np.testing.assert_array_equal(_engine.bf16_round(x), ref_round(x))
    np.testing.assert_array_equal(_engine.bf16_round(special[None]), ref_round(special[None]))


@pytest.mark.parametrize("rows,k,n", [(1, 1, 1), (5, 3, 17), (13, 33, 40), (40, 64, 33), (300, 129, 48)])
def test_bf16_dense_matches_numpy_reference_bit_for_bit(target, rows, k, n):
    rng = np.random.default_rng(rows * 1000 + k + n)
    x = (rng.normal(size=(rows, k)) * rng.uniform(0.01, 100, size=(rows, 1))).astype(np.float32)
    w = rng.normal(size=(k, n)).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    b = _engine.BF16Dense(w)
    np.testing.assert_array_equal(b.forward(x, bias), ref_dense(x, w, bias))
    np.testing.assert_array_equal(b.forward(x), ref_dense(x, w))


def test_tiny_sums_are_flushed_to_signed_zero_on_every_target():
    x = np.array([[1e-20, 1e-19, -3e-20, 2e-20]], np.float32)
    w = np.array([[1e-19, -1e-19], [1e-20, 1e-20], [1e-19, 1e-19], [-1e-19, 1e-19]], np.float32)
    outs = []
    for t in _engine.available_bf16_targets():
        _engine.set_bf16_target(t)
        outs.append(_engine.BF16Dense(w).forward(x))
    _engine.set_bf16_target("auto")
    for o in outs:
        assert np.array_equal(o.view(np.uint32), outs[0].view(np.uint32))
    assert np.all(o == 0)
    # the avx2 target's flush-to-zero mode ends with its sums: float32 subnormals work again after it
    assert np.float32(1e-30) * np.float32(1e-10) != 0


def test_every_target_gives_the_same_values_with_nans_and_infinities():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 70)).astype(np.float32)
    x[1, 3], x[2, 5], x[3] = np.nan, np.inf, 0
    w = rng.normal(size=(70, 35)).astype(np.float32)
    outs = {}
    for t in _engine.available_bf16_targets():
        _engine.set_bf16_target(t)
        outs[t] = _engine.BF16Dense(w).forward(x)
    _engine.set_bf16_target("auto")
    for o in outs.values():
        np.testing.assert_array_equal(o, outs["generic"])
    g = outs["generic"]
    assert np.isnan(g[1]).all() and np.isinf(g[2]).all() and (g[3] == 0).all()


def test_bf16_target_dispatch_and_errors():
    assert _engine.bf16_target() in _engine.available_bf16_targets()
    assert "generic" in _engine.available_bf16_targets()
    with pytest.raises(ValueError, match="unknown or not supported"):
        _engine.set_bf16_target("avx9000")
    with pytest.raises(TypeError, match="float32"):
        _engine.BF16Dense(np.zeros((3, 2), np.float64))
    with pytest.raises(ValueError, match="at least one"):
        _engine.BF16Dense(np.zeros((0, 2), np.float32))
    b = _engine.BF16Dense(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        b.update(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(rows, 3\)"):
        b.forward(np.ones((4, 5), np.float32))


# ---------------------------------------------------------------- models
def _layer_by_layer(model, x):
    """The mixed_bfloat16 model computed by the reference: bfloat16 GEMM, float32 bias and activation."""
    for layer in model.layers:
        z = ref_dense(x, layer.kernel.numpy(), layer.bias.numpy())
        if layer.activation.__name__ == "relu":
            x = np.maximum(z, 0)
        else:
            assert layer.activation.__name__ == "linear"
            x = z
    return x


def test_mixed_bfloat16_predict_matches_the_reference_on_every_target(target):
    model = _mlp("mixed_bfloat16", (37, 50, 21, 9), last="linear")
    x = np.random.default_rng(1).normal(size=(77, 37)).astype(np.float32)
    expected = _layer_by_layer(model, x)
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    np.testing.assert_array_equal(model(x).numpy(), expected)
    h = x
    for layer in model.layers:   # each layer called on its own runs the same bfloat16 GEMM
        h = layer(h).numpy()
    np.testing.assert_array_equal(h, expected)


def test_mixed_bfloat16_differs_from_float32_by_bfloat16_rounding_only():
    m32, mbf = _mlp(None), _mlp("mixed_bfloat16")
    mbf.set_weights(m32.get_weights())
    x = np.random.default_rng(2).normal(size=(64, 33)).astype(np.float32)
    p32, pbf = m32.predict(x, verbose=0), mbf.predict(x, verbose=0)
    assert not np.array_equal(p32, pbf)   # it really computes in bfloat16
    np.testing.assert_allclose(pbf, p32, atol=2e-2)


def test_mixed_bfloat16_predict_is_batch_invariant(target):
    model = _mlp("mixed_bfloat16", (200, 256, 7))
    x = np.random.default_rng(9).normal(size=(3000, 200)).astype(np.float32)
    before = fastmlp.get_num_threads()
    try:
        fastmlp.set_num_threads(1)
        one = model.predict(x, verbose=0)
        fastmlp.set_num_threads(2)
        two = model.predict(x, verbose=0, batch_size=333)
    finally:
        fastmlp.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    for r in (0, 11, 1234, 2999):
        np.testing.assert_array_equal(one[r:r + 1], model.predict(x[r:r + 1], verbose=0))
    np.testing.assert_array_equal(one[5:18], model.predict(x[5:18], verbose=0))


def test_evaluate_uses_the_bfloat16_outputs():
    m32, mbf = _mlp(None), _mlp("mixed_bfloat16")
    mbf.set_weights(m32.get_weights())
    for m in (m32, mbf):
        m.compile(loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(4).normal(size=(200, 33)).astype(np.float32)
    y = np.random.default_rng(5).integers(0, 10, 200)
    p = mbf.predict(x, verbose=0)
    expected = -np.mean(np.log(p[np.arange(200), y].astype(np.float64)))
    got = mbf.evaluate(x, y, verbose=0)
    assert got == pytest.approx(expected, rel=1e-5)
    assert got != m32.evaluate(x, y, verbose=0)


def test_weights_written_into_a_bfloat16_layer_are_rounded_again():
    model = _mlp("mixed_bfloat16", (30, 24, 5), last="linear")
    x = np.random.default_rng(6).normal(size=(10, 30)).astype(np.float32)
    model.predict(x, verbose=0)
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    np.testing.assert_array_equal(model.predict(x, verbose=0), _layer_by_layer(model, x))
    model.layers[1].kernel.assign(np.zeros((24, 5), np.float32))
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  np.broadcast_to(model.layers[1].bias.numpy(), (10, 5)))
    model.layers[0].kernel[0, :] = 3.0
    np.testing.assert_array_equal(model.predict(x, verbose=0), _layer_by_layer(model, x))


def test_mixed_bfloat16_model_saves_and_loads_its_policy(tmp_path):
    model = _mlp("mixed_bfloat16", (30, 24, 5))
    x = np.random.default_rng(8).normal(size=(10, 30)).astype(np.float32)
    path = str(tmp_path / "m.fmlp")
    model.save(path)
    back = fastmlp.load_model(path)
    assert back.layers[0].dtype_policy.name == "mixed_bfloat16"
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    clone = fastmlp.Sequential.from_config(model.get_config())
    assert [layer.compute_dtype for layer in clone.layers] == ["bfloat16", "bfloat16"]


def test_accuracy_on_iris_stays_close_to_float32():
    (xtr, ytr), (xte, yte) = fastmlp.datasets.iris.load_data()
    mean, std = xtr.mean(axis=0), xtr.std(axis=0)
    xtr, xte = ((xtr - mean) / std).astype(np.float32), ((xte - mean) / std).astype(np.float32)
    m32 = _mlp(None, (4, 32, 16, 3))
    m32.compile(optimizer=fastmlp.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    m32.fit(xtr, ytr, epochs=60, batch_size=16, verbose=0)
    mbf = _mlp("mixed_bfloat16", (4, 32, 16, 3))
    mbf.set_weights(m32.get_weights())
    a32 = (m32.predict(xte, verbose=0).argmax(1) == yte).mean()
    abf = (mbf.predict(xte, verbose=0).argmax(1) == yte).mean()
    assert a32 >= 0.85 and abs(abf - a32) <= 1 / 30


def test_a_training_step_under_mixed_bfloat16_matches_the_reference(target):
    """One SGD step: the forward pass as inference computes it (bfloat16 GEMMs, float32 bias
    and activation), the backward pass in float32 on the float32 master kernels (here float64
    in NumPy), the update on the masters; after it the bfloat16 copies follow the new
    masters (predict equals the reference of the new weights bit for bit)."""
    model = _mlp("mixed_bfloat16", (13, 17, 5), last="linear")
    lr = 0.1
    model.compile(optimizer=fastmlp.optimizers.SGD(lr), loss="mse")
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(24, 13)).astype(np.float32), rng.normal(size=(24, 5)).astype(np.float32)
    (w1, b1, w2, b2) = [w.astype(np.float64) for w in model.get_weights()]
    h = np.maximum(ref_dense(x, model.layers[0].kernel.numpy(), model.layers[0].bias.numpy()), 0)
    out = ref_dense(h, model.layers[1].kernel.numpy(), model.layers[1].bias.numpy())
    expected_loss = np.mean((out.astype(np.float64) - y) ** 2)
    g_out = 2 * (out.astype(np.float64) - y) / out.size
    g_h = (g_out @ w2.T) * (h > 0)
    expected = [w1 - lr * x.T.astype(np.float64) @ g_h, b1 - lr * g_h.sum(0),
                w2 - lr * h.T.astype(np.float64) @ g_out, b2 - lr * g_out.sum(0)]
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(model.predict(x, verbose=0), _layer_by_layer(model, x))
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)   # fit's steps refresh the copies too
    np.testing.assert_array_equal(model.predict(x, verbose=0), _layer_by_layer(model, x))


def test_predict_on_another_thread_during_bfloat16_training_sees_whole_kernels():
    """The copies are rounded again after every step in place: a predict on another thread
    meanwhile sees the kernel before or after a step, never a cleared one (here the steps do
    not change the weights, learning rate 0, so every prediction is the same)."""
    import threading
    model = _mlp("mixed_bfloat16", (20, 64, 8), last="linear")
    model.compile(optimizer=fastmlp.optimizers.SGD(0.0), loss="mse")
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(512, 20)).astype(np.float32), rng.normal(size=(512, 8)).astype(np.float32)
    expected = model.predict(x[:16], verbose=0)
    trainer = threading.Thread(target=model.fit, args=(x, y), kwargs=dict(epochs=40, batch_size=8, verbose=0))
    trainer.start()
    wrong = total = 0
    while trainer.is_alive() and total < 5000:
        total += 1
        wrong += not np.array_equal(model.predict(x[:16], verbose=0), expected)
    trainer.join()
    assert total > 10 and wrong == 0


def test_training_under_mixed_bfloat16_follows_float32_within_bfloat16_noise():
    """From the same weights and shuffles, 40 epochs of Adam on iris: the loss curves stay
    within 3% of the first epoch's loss of each other (the trajectories part slowly, as any
    two roundings do), and the accuracies within one test sample."""
    (xtr, ytr), (xte, yte) = fastmlp.datasets.iris.load_data()
    mean, std = xtr.mean(axis=0), xtr.std(axis=0)
    xtr, xte = ((xtr - mean) / std).astype(np.float32), ((xte - mean) / std).astype(np.float32)
    curves, accuracy = {}, {}
    for policy in (None, "mixed_bfloat16"):
        m = _mlp(policy, (4, 32, 16, 3))
        m.compile(optimizer=fastmlp.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
        fastmlp.utils.set_random_seed(5)
        curves[policy] = np.array(m.fit(xtr, ytr, epochs=40, batch_size=16, verbose=0).history["loss"])
        accuracy[policy] = (m.predict(xte, verbose=0).argmax(1) == yte).mean()
    assert not np.array_equal(curves[None], curves["mixed_bfloat16"])   # it did compute in bfloat16
    np.testing.assert_allclose(curves["mixed_bfloat16"], curves[None], rtol=0, atol=0.03 * curves[None][0])
    assert accuracy[None] >= 0.85 and abs(accuracy["mixed_bfloat16"] - accuracy[None]) <= 1 / 30


# ---------------------------------------------------------------- the policy objects
def test_policy_objects_follow_keras_names():
    p = fastmlp.mixed_precision.DTypePolicy("mixed_bfloat16")
    assert (p.name, p.compute_dtype, p.variable_dtype, p.quantization_mode) == \
        ("mixed_bfloat16", "bfloat16", "float32", None)
    assert p.get_config() == {"name": "mixed_bfloat16"} and repr(p) == '<DTypePolicy "mixed_bfloat16">'
    assert fastmlp.mixed_precision.Policy is fastmlp.DTypePolicy
    assert fastmlp.mixed_precision.DTypePolicy.from_config(p.get_config()) == p
    assert fastmlp.config.dtype_policy().name == "float32"
    fastmlp.config.set_dtype_policy("mixed_bfloat16")
    assert fastmlp.mixed_precision.global_policy() == p
    d = L.Dense(3)
    assert (d.dtype, d.compute_dtype, d.variable_dtype, d.dtype_policy) == ("float32", "bfloat16", "float32", p)
    fastmlp.mixed_precision.set_global_policy("float32")
    assert L.Dense(3).compute_dtype == "float32"
    fastmlp.config.set_dtype_policy("mixed_bfloat16")
    fastmlp.config.set_dtype_policy(None)
    assert L.Dense(3).compute_dtype == "float32" and fastmlp.config.dtype_policy().name == "float32"
    d = L.Dense(3, dtype=p)
    assert d.get_config()["dtype"] == {"module": "keras", "class_name": "DTypePolicy",
                                       "config": {"name": "mixed_bfloat16"}, "registered_name": None}
    assert L.Dense.from_config(d.get_config()).dtype_policy == p


def test_policies_fastmlp_cannot_run_are_refused_by_name():
    for name in ("mixed_float16", "float16", "bfloat16"):
        with pytest.raises(ValueError, match="not supported by fastmlp"):
            fastmlp.config.set_dtype_policy(name)
        with pytest.raises(ValueError, match="not supported by fastmlp|Unsupported layer dtype"):
            L.Dense(3, dtype=name)
    with pytest.raises(ValueError, match="Cannot convert"):
        fastmlp.DTypePolicy("mixed_int3")
    with pytest.raises(TypeError, match="string"):
        fastmlp.DTypePolicy(3)
    fastmlp.config.set_floatx("float64")
    try:
        with pytest.raises(ValueError, match="variable dtype"):
            model = fastmlp.Sequential([fastmlp.Input((3,)), L.Dense(2, dtype="mixed_bfloat16"),
                                        L.Dense(2, dtype="float64")])
            model.predict(np.zeros((1, 3)), verbose=0)
    finally:
        fastmlp.config.set_floatx("float32")


def test_policy_attributes_match_keras():
    if os.environ.get("KERAS_BACKEND") != "torch":
        pytest.skip("set KERAS_BACKEND=torch to compare with Keras")
    keras = pytest.importorskip("keras")
    for name in ("mixed_bfloat16", "float32", "float64"):
        k, f = keras.mixed_precision.DTypePolicy(name), fastmlp.mixed_precision.DTypePolicy(name)
        assert (k.name, k.compute_dtype, k.variable_dtype, k.get_config(), repr(k)) == \
            (f.name, f.compute_dtype, f.variable_dtype, f.get_config(), repr(f))
        kd, fd = keras.layers.Dense(2, dtype=name), L.Dense(2, dtype=name)
        assert (kd.dtype, kd.compute_dtype, kd.variable_dtype) == (fd.dtype, fd.compute_dtype, fd.variable_dtype)
    kcfg = keras.layers.Dense(2, dtype="mixed_bfloat16").get_config()["dtype"]
    assert L.Dense(2, dtype=kcfg).dtype_policy.name == "mixed_bfloat16"
    assert L.Dense(2, dtype="mixed_bfloat16").get_config()["dtype"] == kcfg


def test_keras_files_carry_the_mixed_bfloat16_policy_both_ways(tmp_path):
    if os.environ.get("KERAS_BACKEND") != "torch":
        pytest.skip("set KERAS_BACKEND=torch to compare with Keras")
    keras = pytest.importorskip("keras")
    model = _mlp("mixed_bfloat16", (12, 16, 3))
    x = np.random.default_rng(10).normal(size=(20, 12)).astype(np.float32)
    model.save(str(tmp_path / "f.keras"))
    k = keras.saving.load_model(str(tmp_path / "f.keras"))
    assert [layer.dtype_policy.name for layer in k.layers] == ["mixed_bfloat16"] * 2
    np.testing.assert_allclose(np.asarray(k.predict(x, verbose=0), np.float32), model.predict(x, verbose=0),
                               atol=3e-2)   # Keras also computes activations in bfloat16
    k.save(str(tmp_path / "k.keras"))
    back = fastmlp.load_model(str(tmp_path / "k.keras"))
    assert [layer.compute_dtype for layer in back.layers] == ["bfloat16"] * 2
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
