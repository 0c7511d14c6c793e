"""Int8 inference (csrc/qgemm*.c, fastmlp.models.quantization): every kernel target
against a NumPy reference of the same quantization (exact int32 sums, so results
are bit-identical), batch invariance, Model.quantize, int8 files, and the errors."""
import numpy as np
import pytest

import fastmlp
from fastmlp import _engine
from fastmlp.saving.format import _quantize_int8

TARGETS = ("avx512vnni", "avx2", "generic")


# ---------------------------------------------------------------- the NumPy reference
def ref_quantize_rows(x):
    """Per row: s = amax / 127, q = clip(rint(x * (127 / amax)), -127, 127) in float32;
    zeros (s = 0) below 1e-30, zeros with s = NaN for a row with a NaN or an infinity."""
    x = np.asarray(x, np.float32)
    a = np.abs(x)
    nan = np.isnan(x).any(axis=1)
    amax = np.where(np.isnan(a), np.float32(0), a).max(axis=1).astype(np.float32)
    bad = nan | np.isinf(amax)
    ok = ~bad & (amax >= np.float32(1e-30))
    safe = np.where(ok, amax, np.float32(1)).astype(np.float32)
    s = np.where(ok, safe / np.float32(127), np.float32(0)).astype(np.float32)
    s[bad] = np.nan
    inv = (np.float32(127) / safe).astype(np.float32)
    with np.errstate(invalid="ignore"):
        q = np.clip(np.rint(x * inv[:, None]), -127, 127)
    return np.where(ok[:, None], q, 0).astype(np.int8), s


def ref_dense(x, q, scale, bias=None):
    """((float)(qx @ q) * s_row) * scale (+ bias), float32 in that order."""
    qx, s = ref_quantize_rows(x)
    acc = qx.astype(np.int64) @ q.astype(np.int64)
    assert np.abs(acc).max(initial=0) < 2 ** 31
    with np.errstate(invalid="ignore"):
        y = (acc.astype(np.float32) * s[:, None]) * scale[None, :]
        return y + bias if bias is not None else y


@pytest.fixture(params=TARGETS)
def target(request):
    if request.param not in _engine.available_int8_targets():
        pytest.skip(f"this CPU cannot run the {request.param} int8 kernels")
    _engine.set_int8_target(request.param)
    yield request.param
    _engine.set_int8_target("auto")


def _inputs(rng, rows, k):
    x = rng.normal(size=(rows, k)).astype(np.float32) * rng.uniform(0.01, 100, size=(rows, 1)).astype(np.float32)
    if rows > 5:
        x[1] = 0                      # all zeros
        x[2, k // 2] = np.nan         # a NaN
        x[3, 0] = np.inf              # an infinity
        x[4] *= np.float32(1e-32)     # below FM_Q8_TINY
        x[5, :] = np.float32(0.5) * np.sign(x[5])   # ties: x * inv lands on .5 values
    return x


SHAPES = [(1, 1, 1), (3, 5, 7), (9, 4, 16), (37, 13, 21), (40, 130, 33), (300, 784, 64), (17, 64, 48)]


@pytest.mark.parametrize("rows,k,n", SHAPES)
def test_int8_dense_matches_numpy_reference_bit_for_bit(target, rows, k, n):
    rng = np.random.default_rng(rows * 1000 + k + n)
    x = _inputs(rng, rows, k)
    q, scale = _quantize_int8(rng.normal(size=(k, n)))
    bias = rng.normal(size=n).astype(np.float32)
    d = _engine.Int8Dense(q, scale)
    assert _engine.int8_target() == target
    np.testing.assert_array_equal(d.forward(x, bias), ref_dense(x, q, scale, bias))
    np.testing.assert_array_equal(d.forward(x), ref_dense(x, q, scale))


def test_int8_sums_of_extreme_values_are_exact(target):
    # every product at +-127 * 127, with the unsigned offset of vpdpbusd at its largest
    k, n = 1000, 20
    q = np.full((k, n), 127, np.int8)
    q[:, ::2] = -127
    scale = np.ones(n, np.float32)
    x = np.ones((3, k), np.float32)
    x[1] = -1
    x[2, ::2] = -1
    d = _engine.Int8Dense(q, scale)
    np.testing.assert_array_equal(d.forward(x), ref_dense(x, q, scale))
    assert d.forward(x)[0, 1] == 127 * 127 * k / 127


@pytest.mark.parametrize("k", [1, 3, 16, 17, 100])
def test_int8_row_quantization_matches_reference(target, k):
    x = _inputs(np.random.default_rng(k), 12, k)
    q, s = _engine.int8_quantize_rows(x)
    rq, rs = ref_quantize_rows(x)
    np.testing.assert_array_equal(q, rq)
    np.testing.assert_array_equal(s, rs)


def test_every_target_gives_the_same_values():
    rng = np.random.default_rng(1)
    x = _inputs(rng, 50, 70)
    q, scale = _quantize_int8(rng.normal(size=(70, 40)))
    d = _engine.Int8Dense(q, scale)
    outs = []
    try:
        for t in _engine.available_int8_targets():
            _engine.set_int8_target(t)
            outs.append(d.forward(x))
    finally:
        _engine.set_int8_target("auto")
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_int8_target_dispatch_and_errors():
    avail = _engine.available_int8_targets()
    assert avail[-1] == "generic" and _engine.int8_target() == avail[0]
    with pytest.raises(ValueError, match="int8 target 'sse9'"):
        _engine.set_int8_target("sse9")


def test_int8_dense_validates_its_kernel():
    with pytest.raises(ValueError, match="-127, 127"):
        _engine.Int8Dense(np.full((2, 2), -128, np.int8), np.ones(2, np.float32))
    with pytest.raises(TypeError, match="int8 kernel"):
        _engine.Int8Dense(np.zeros((2, 2), np.int16), np.ones(2, np.float32))
    with pytest.raises(TypeError, match="scale"):
        _engine.Int8Dense(np.zeros((2, 3), np.int8), np.ones(2, np.float32))
    d = _engine.Int8Dense(np.zeros((2, 3), np.int8), np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"\(rows, 2\)"):
        d.forward(np.zeros((4, 3), np.float32))


# ---------------------------------------------------------------- models
def _model(seed=0, activation="relu"):
    fastmlp.utils.set_random_seed(seed)
    return fastmlp.Sequential([fastmlp.Input((30,)), fastmlp.layers.Dense(24, activation=activation, name="a"),
                               fastmlp.layers.Dense(16, activation=activation, name="b"),
                               fastmlp.layers.Dense(5, name="c")])


def _reference_predict(model, x):
    """The int8 network in NumPy: int8 Dense layers, float activations (relu here)."""
    h = x
    for layer in model.layers:
        q, scale = layer._int8
        h = ref_dense(h, q, scale, layer.bias.numpy())
        if layer.name != "c":
            h = np.maximum(h, np.float32(0))
    return h


def test_quantize_runs_dense_layers_in_int8():
    model = _model()
    x = np.random.default_rng(2).normal(size=(64, 30)).astype(np.float32)
    before = model.predict(x, verbose=0)
    model.quantize("int8")
    assert [layer.quantization_mode for layer in model.layers] == ["int8"] * 3
    got = model.predict(x, verbose=0)
    np.testing.assert_array_equal(got, _reference_predict(model, x))
    # the float kernels now hold the dequantized values; float inference on them differs
    # from the int8 forward (its inputs are quantized too), and is close to the original
    float_copy = fastmlp.Sequential.from_config(model.get_config())
    float_copy.build((None, 30))
    float_copy.set_weights(model.get_weights())
    assert not np.array_equal(float_copy.predict(x, verbose=0), got)
    np.testing.assert_allclose(got, before, atol=0.05 * np.abs(before).max())


def test_int8_predict_is_batch_invariant(target):
    model = _model(activation="tanh")
    model.quantize("int8")
    x = np.random.default_rng(3).normal(size=(2100, 30)).astype(np.float32)
    full = model.predict(x, verbose=0)
    for i in (0, 7, 1500, 2099):
        np.testing.assert_array_equal(model.predict(x[i:i + 1], verbose=0), full[i:i + 1])
    np.testing.assert_array_equal(model.predict(x[5:30], verbose=0), full[5:30])
    np.testing.assert_array_equal(model.predict(x, batch_size=7, verbose=0), full)


def test_quantize_filters_select_layers_as_keras_does():
    model = _model()
    model.quantize("int8", filters="^b$")
    assert [layer.quantization_mode for layer in model.layers] == [None, "int8", None]
    model2 = _model()
    model2.quantize("int8", filters=lambda layer: layer.name != "a")
    assert [layer.quantization_mode for layer in model2.layers] == [None, "int8", "int8"]


def test_quantize_refuses_what_it_does_not_support():
    model = _model()
    with pytest.raises(ValueError, match="int4"):
        model.quantize("int4")
    with pytest.raises(ValueError, match="mode=None"):
        model.quantize()
    with pytest.raises(ValueError, match="config"):
        model.quantize("int8", config=object())
    with pytest.raises(ValueError, match="Unrecognized keyword"):
        model.quantize("int8", bogus=1)
    with pytest.raises(ValueError, match="filters"):
        model.quantize("int8", filters=3)
    unbuilt = fastmlp.Sequential([fastmlp.layers.Dense(3)])
    with pytest.raises(ValueError, match="built"):
        unbuilt.quantize("int8")
    assert all(layer.quantization_mode is None for layer in model.layers)


def test_training_an_int8_model_raises():
    model = _model()
    model.compile("sgd", "mse")
    model.quantize("int8")
    x, y = np.zeros((4, 30), np.float32), np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="quantized to int8"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="quantized to int8"):
        model.train_on_batch(x, y)
    loss = model.evaluate(x, y, verbose=0)   # inference works
    assert np.isfinite(loss)


def test_quantized_model_saves_and_loads_int8(tmp_path):
    model = _model()
    model.quantize("int8", filters=["a", "c"])
    x = np.random.default_rng(4).normal(size=(33, 30)).astype(np.float32)
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "m.fmlp")
    loaded = fastmlp.saving.load_model(tmp_path / "m.fmlp")
    assert [layer.quantization_mode for layer in loaded.layers] == ["int8", None, "int8"]
    for a, b in zip(model.layers, loaded.layers):
        if a._int8 is not None:
            np.testing.assert_array_equal(a._int8[0], b._int8[0])
            np.testing.assert_array_equal(a._int8[1], b._int8[1])
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    # a quantized model's file keeps no optimizer state (it cannot train), its float weights at full precision
    assert loaded.layers[1].kernel.numpy().dtype == np.float32
    np.testing.assert_array_equal(loaded.layers[1].kernel.numpy(), model.layers[1].kernel.numpy())


def test_float_model_saved_as_int8_predicts_in_int8(tmp_path):
    model = _model()
    x = np.random.default_rng(5).normal(size=(20, 30)).astype(np.float32)
    model.save(tmp_path / "q.fmlp", dtype="int8")
    loaded = fastmlp.saving.load_model(tmp_path / "q.fmlp")
    assert [layer.quantization_mode for layer in loaded.layers] == ["int8"] * 3
    model.quantize("int8")   # the same quantization in memory
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), _reference_predict(loaded, x))
    # explicitly float32: the dequantized kernels, run in float
    model.save(tmp_path / "f.fmlp", dtype="float32")
    f = fastmlp.saving.load_model(tmp_path / "f.fmlp")
    assert all(layer.quantization_mode is None for layer in f.layers)


def test_float64_models_keep_float_inference(tmp_path):
    fastmlp.utils.set_random_seed(0)
    model = fastmlp.Sequential([fastmlp.Input((4,)), fastmlp.layers.Dense(3, dtype="float64")])
    with pytest.raises(ValueError, match="float32"):
        model.quantize("int8")


def test_evaluate_uses_the_int8_outputs():
    model = _model()
    model.compile("sgd", "mse")
    model.quantize("int8")
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(50, 30)).astype(np.float32), rng.normal(size=(50, 5)).astype(np.float32)
    p = _reference_predict(model, x)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), np.mean((p - y) ** 2), rtol=1e-5)


def test_functional_model_quantizes_only_its_dense_layers():
    fastmlp.utils.set_random_seed(0)
    inp = fastmlp.Input((12,))
    a = fastmlp.layers.Dense(8, activation="relu", name="a")(inp)
    b = fastmlp.layers.BatchNormalization(name="bn")(fastmlp.layers.Dense(8, name="b")(inp))
    out = fastmlp.layers.Dense(3, name="out")(fastmlp.layers.Concatenate()([a, b]))
    model = fastmlp.Model(inp, out)
    x = np.random.default_rng(7).normal(size=(40, 12)).astype(np.float32)
    model.quantize("int8")
    la, lb, lo, bn = (model.get_layer(n) for n in ("a", "b", "out", "bn"))
    h_a = np.maximum(ref_dense(x, *la._int8, la.bias.numpy()), 0)
    h_b = ref_dense(x, *lb._int8, lb.bias.numpy())
    g, be, mm, mv = (w.numpy() for w in bn.weights)
    h_b = (h_b - mm) / np.sqrt(mv + bn.epsilon) * g + be
    want = ref_dense(np.concatenate([h_a, h_b], axis=1).astype(np.float32), *lo._int8, lo.bias.numpy())
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_weights_written_into_an_int8_layer_are_quantized_again():
    model, other = _model(seed=0), _model(seed=1)
    model.quantize("int8")
    x = np.random.default_rng(8).normal(size=(10, 30)).astype(np.float32)
    model.set_weights(other.get_weights())
    assert all(layer.quantization_mode == "int8" for layer in model.layers)
    for layer, o in zip(model.layers, other.layers):
        q, scale = _quantize_int8(o.kernel.numpy())
        np.testing.assert_array_equal(layer._int8[0], q)
        np.testing.assert_array_equal(layer.kernel.numpy(), q.astype(np.float32) * scale)
    np.testing.assert_array_equal(model.predict(x, verbose=0), _reference_predict(model, x))
    model.layers[2].kernel.assign(np.zeros((16, 5), np.float32))
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  np.broadcast_to(model.layers[2].bias.numpy(), (10, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        model.layers[0].kernel.assign(np.full((30, 24), np.nan, np.float32))


def test_int8_predict_does_not_depend_on_the_thread_count():
    fastmlp.utils.set_random_seed(0)
    model = fastmlp.Sequential([fastmlp.Input((200,)), fastmlp.layers.Dense(256, activation="relu"),
                                fastmlp.layers.Dense(7)])
    model.quantize("int8")
    x = np.random.default_rng(9).normal(size=(3000, 200)).astype(np.float32)
    before = fastmlp.get_num_threads()
    try:
        fastmlp.set_num_threads(1)
        one = model.predict(x, verbose=0)
        fastmlp.set_num_threads(2)
        two = model.predict(x, verbose=0)
    finally:
        fastmlp.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one[1234:1235], model.predict(x[1234:1235], verbose=0))
