"""``layers.Activation``: an activation as a layer of its own (engine layer kind 3).

A Dense layer followed by an Activation must train exactly as the Dense layer
with that activation (same kernels, the same fused stable cross-entropy when
it ends the model); after BatchNormalization or Dropout, where no Dense
activation can stand in, its gradients are checked by central differences.
"""
import numpy as np
import pytest

import fastmlp
from fastmlp.layers import Activation, BatchNormalization, Dense, Dropout

import reference as ref

ACTIVATIONS = ["relu", "sigmoid", "tanh", "elu", "selu", "leaky_relu", "gelu", "softplus", "softsign",
               "swish", "hard_sigmoid", "exponential", "relu6", "linear", "log_softmax"]


def _data(n=40, d=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, classes, n)


def _pair(act, out_act, dtype, units=3):
    """The same network with activations inside Dense layers and as Activation layers
    (no Dropout: its masks are keyed by the engine layer's index, which differs)."""
    fastmlp.config.set_floatx(dtype)
    fastmlp.utils.set_random_seed(4)
    fused = fastmlp.Sequential([fastmlp.Input(shape=(5,)), Dense(7, activation=act),
                                Dense(units, activation=out_act)])
    fastmlp.utils.set_random_seed(4)
    split = fastmlp.Sequential([fastmlp.Input(shape=(5,)), Dense(7), Activation(act), Dense(units),
                                Activation(out_act)])
    split.set_weights(fused.get_weights())
    return fused, split


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_dense_then_activation_trains_bit_identically_to_the_dense_activation(act, dtype):
    x, y = _data()
    scale = 0.3 if act == "exponential" else 1.0
    for out_act, loss, target in (("softmax", "sparse_categorical_crossentropy", y),
                                  ("sigmoid", "binary_crossentropy", (y == 1).astype(float)[:, None]),
                                  ("linear", "mse", x[:, :3])):
        fused, split = _pair(act, out_act, dtype, units=1 if out_act == "sigmoid" else 3)
        for m in (fused, split):
            m.compile(optimizer="adam", loss=loss)
        h1 = fused.fit(x * scale, target, epochs=2, batch_size=8, verbose=0)
        h2 = split.fit(x * scale, target, epochs=2, batch_size=8, verbose=0)
        assert h1.history == h2.history
        for a, b in zip(fused.get_weights(), split.get_weights()):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(fused.predict(x), split.predict(x))
        assert fused.evaluate(x * scale, target, verbose=0) == split.evaluate(x * scale, target, verbose=0)
    fastmlp.config.set_floatx("float32")


@pytest.mark.parametrize("act", ["relu", "gelu", "swish", "tanh", "leaky_relu", "softmax"])
def test_gradients_through_activation_layers_after_batchnorm_and_dropout_match_central_differences(act):
    fastmlp.config.set_floatx("float64")
    fastmlp.utils.set_random_seed(2)
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), Dense(6), BatchNormalization(), Activation(act),
                                Dropout(0.3, seed=5), Activation("tanh"), Dense(3), Activation("softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((9, 4))
    y = rng.integers(0, 3, 9).astype(np.int64)
    spec = model.loss._spec()
    ref.assert_gradient_by_central_difference(
        lambda p: model._net.loss_and_grads(p, X, None, y, None, spec, 7, 0, True), model._params, model._variables)
    fastmlp.config.set_floatx("float32")


def test_a_standalone_activation_layer_matches_the_reference_and_keeps_the_input():
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    before = x.copy()
    for act in ("relu", "tanh", "softmax", "gelu"):
        out = Activation(act)(x)
        np.testing.assert_allclose(out, ref.activation(act, x.astype(np.float64)), rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(x, before)


def test_activation_layers_save_load_summary_and_config(tmp_path):
    x, y = _data()
    fastmlp.utils.set_random_seed(0)
    model = fastmlp.Sequential([fastmlp.Input(shape=(5,)), Dense(8), BatchNormalization(),
                                Activation("relu", name="act"), Dense(3), Activation("softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.fmlp")
    assert open(tmp_path / "m.fmlp", "rb").read(16)[12:16] == b"\x01\x00\x02\x00"   # format 1.2
    loaded = fastmlp.load_model(tmp_path / "m.fmlp")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    lines = []
    model.summary(print_fn=lines.append)
    assert any("act (Activation)" in line and "(None, 8)" in line for line in lines)
    clone = fastmlp.Sequential.from_config(model.get_config())
    assert [type(l).__name__ for l in clone.layers] == [type(l).__name__ for l in model.layers]
    with pytest.raises(ValueError, match="Unknown activation"):
        Activation("no-such")


@pytest.mark.parametrize("make", [lambda: Activation("softmax"), lambda: Activation("log_softmax"),
                                  lambda: fastmlp.layers.Softmax()])
def test_softmax_on_samples_of_higher_rank_is_refused_in_a_graph_and_normalizes_the_last_axis_eagerly(make):
    """Keras normalizes (samples, 2, 3) data along the last axis; the engine's node would take the
    sample's 6 values as one row, so a model refuses it; the layer's own call does what Keras does."""
    x = np.random.default_rng(0).normal(size=(4, 2, 3)).astype(np.float32)
    inp = fastmlp.Input(shape=(2, 3))
    with pytest.raises(ValueError, match=r"softmax takes \(samples, features\) inputs; got shape \(None, 2, 3\)"):
        make()(inp)
    out = np.asarray(make()(x))
    want = np.exp(x - x.max(-1, keepdims=True))
    want = want / want.sum(-1, keepdims=True)
    np.testing.assert_allclose(out, np.log(want) if "log" in str(make().get_config()) else want, rtol=1e-5, atol=1e-7)
    model = fastmlp.Model(inp, fastmlp.layers.Flatten()(Activation("relu")(inp)))   # element-wise: fine
    np.testing.assert_allclose(model.predict(x, verbose=0), np.maximum(x, 0).reshape(4, 6))
