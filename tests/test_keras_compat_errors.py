"""Keras arguments that have no effect here are accepted and kept; Keras features fastmlp
cannot run (Python layer code, Python losses, multi-device distribution) raise
NotImplementedError naming the built-in alternatives, at the moment they are used."""
import numpy as np
import pytest

import fastmlp
from fastmlp import layers


def _model():
    return fastmlp.Sequential([fastmlp.Input((3,)), layers.Dense(2)])


def test_compile_accepts_keras_execution_arguments_and_keeps_them():
    model = _model()
    model.compile("sgd", "mse", run_eagerly=True, jit_compile=False, steps_per_execution=4, auto_scale_loss=False)
    assert (model.run_eagerly, model.jit_compile, model.steps_per_execution) == (True, False, 4)
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    ref = _model()
    ref.set_weights(model.get_weights())
    ref.compile("sgd", "mse")
    assert (ref.run_eagerly, ref.jit_compile, ref.steps_per_execution) == (False, "auto", 1)
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    ref.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), ref.get_weights()):   # no effect on the computation
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs,name", [({"run_eagerly": "yes"}, "run_eagerly"), ({"jit_compile": 2}, "jit_compile"),
                                         ({"steps_per_execution": 0}, "steps_per_execution"),
                                         ({"steps_per_execution": 1.5}, "steps_per_execution"),
                                         ({"auto_scale_loss": None}, "auto_scale_loss")])
def test_compile_rejects_bad_execution_arguments_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        _model().compile("sgd", "mse", **kwargs)


def test_a_python_loss_function_raises_at_compile_naming_built_in_losses():
    def my_loss(y_true, y_pred):
        return ((y_true - y_pred) ** 2).mean()
    with pytest.raises(NotImplementedError, match="my_loss.*built-in losses.*mean_squared_error"):
        _model().compile("sgd", loss=my_loss)

    class MyLoss(fastmlp.losses.Loss):
        def call(self, y_true, y_pred):
            return y_pred
    with pytest.raises(NotImplementedError, match="MyLoss"):
        _model().compile("sgd", loss=MyLoss())
    _model().compile("sgd", loss=fastmlp.losses.mean_squared_error)     # fastmlp's own functions work


def test_a_layer_subclass_with_its_own_call_raises_when_used():
    class Scale(layers.Layer):
        def call(self, x):
            return 2 * x

    layer = Scale()                                   # defining and creating it is fine
    with pytest.raises(NotImplementedError, match="own `call`.*Dense"):
        layer(fastmlp.Input((3,)))
    with pytest.raises(NotImplementedError, match="own `call`"):
        layer(np.ones((2, 3)))
    with pytest.raises(NotImplementedError, match="own `call`"):
        layer.build((None, 3))
    with pytest.raises(NotImplementedError, match="own `call`"):
        fastmlp.Sequential([fastmlp.Input((3,)), Scale()])

    class WideDense(layers.Dense):                   # changing defaults only: fine
        def __init__(self, **kwargs):
            super().__init__(64, activation="relu", **kwargs)
    model = fastmlp.Sequential([fastmlp.Input((3,)), WideDense()])
    assert model.output_shape == (None, 64)


def test_distribution_names_exist_and_refuse_clearly():
    assert fastmlp.distribution.list_devices() == ["cpu:0"]
    assert fastmlp.distribution.list_devices("gpu") == []
    assert fastmlp.distribution.get_device_count() == 1
    assert fastmlp.distribution.distribution() is None
    for make in (lambda: fastmlp.distribution.DataParallel(), lambda: fastmlp.distribution.DeviceMesh((2,), ["b"]),
                 lambda: fastmlp.distribution.set_distribution(None),
                 lambda: fastmlp.distribution.ModelParallel(layout_map=None)):
        with pytest.raises(NotImplementedError, match="set_num_threads"):
            make()


def test_gradient_accumulation_is_refused_by_name():
    """Accepting it would train differently from Keras without a word."""
    with pytest.raises(NotImplementedError, match="gradient_accumulation_steps=2"):
        fastmlp.optimizers.Adam(0.01, gradient_accumulation_steps=2)
    for off in (None, 0, False):   # Keras's values that change nothing
        fastmlp.optimizers.Adam(gradient_accumulation_steps=off, use_ema=False, ema_momentum=0.9)


def test_a_loss_scale_factor_trains_as_without_one_as_in_keras():
    """Keras scales the loss by it and divides the gradients by it again: the same update."""
    x, y = np.linspace(-1, 1, 24).reshape(8, 3), np.linspace(0, 1, 16).reshape(8, 2)
    runs = []
    for factor in (None, 128.0):
        model = _model()
        model.set_weights([np.full((3, 2), 0.1), np.zeros(2)])
        model.compile(fastmlp.optimizers.Adam(0.01, loss_scale_factor=factor), "mse")
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [fastmlp.losses.CategoricalCrossentropy, fastmlp.losses.BinaryCrossentropy])
def test_a_cross_entropy_over_another_axis_is_refused(cls):
    with pytest.raises(ValueError, match="axis=-1 only.*axis=0"):
        cls(axis=0)
    assert cls(axis=-1).get_config()["axis"] == -1
