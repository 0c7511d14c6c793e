"""``serialize_keras_object``/``deserialize_keras_object`` and the custom-object registry
(``fastmlp.saving`` and ``fastmlp.utils``), in Keras 3's dict layout."""
import json
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import layers, saving

ser, de = saving.serialize_keras_object, saving.deserialize_keras_object


def _objects():
    return [layers.Dense(3, activation="relu", name="d", kernel_initializer=fastmlp.initializers.HeNormal(seed=2)),
            layers.BatchNormalization(momentum=0.9, name="bn"), fastmlp.losses.Huber(delta=2.0),
            fastmlp.losses.CategoricalCrossentropy(label_smoothing=0.1), fastmlp.metrics.AUC(num_thresholds=50),
            fastmlp.optimizers.Adam(learning_rate=0.01, beta_1=0.8), fastmlp.initializers.Orthogonal(gain=2.0),
            fastmlp.regularizers.L1L2(l1=0.01, l2=0.02), fastmlp.callbacks.EarlyStopping(patience=3)
            if hasattr(fastmlp.callbacks.EarlyStopping, "get_config") else fastmlp.initializers.Zeros()]


def test_objects_serialize_in_the_keras_layout_and_round_trip():
    for obj in _objects():
        cfg = ser(obj)
        assert set(cfg) == {"module", "class_name", "config", "registered_name"}
        assert cfg["class_name"] == type(obj).__name__ and cfg["registered_name"] is None
        assert cfg["module"].startswith("fastmlp.")
        json.dumps(cfg)
        back = de(json.loads(json.dumps(cfg)))
        assert type(back) is type(obj)
        assert ser(back) == json.loads(json.dumps(cfg))


def test_models_round_trip_with_their_structure():
    model = fastmlp.Sequential([fastmlp.Input((4,)), layers.Dense(3, name="h"), layers.Dense(1, name="o")], name="s")
    cfg = ser(model)
    assert cfg["class_name"] == "Sequential"
    back = de(cfg)
    assert isinstance(back, fastmlp.Sequential) and [l.name for l in back.layers] == ["h", "o"]
    dense = cfg["config"]["layers"][1]          # nested objects in the full layout too, as Keras writes them
    assert dense["module"] == "fastmlp.layers" and dense["registered_name"] is None
    assert dense["config"]["kernel_initializer"] == {
        "module": "fastmlp.initializers", "class_name": "GlorotUniform",
        "config": {"seed": None, "input_axes": None, "output_axes": None}, "registered_name": None}
    inp = fastmlp.Input((2,))
    func = fastmlp.Model(inp, layers.Dense(2, name="z")(inp), name="f")
    cfg = ser(func)
    assert cfg["class_name"] == "Functional"
    assert [w.shape for w in de(cfg).weights] == [(2, 2), (2,)]


def test_functions_plain_values_and_arrays():
    assert ser(fastmlp.activations.relu) == {"module": "builtins", "class_name": "function", "config": "relu",
                                             "registered_name": "function"}
    assert de(ser(fastmlp.activations.relu)) is fastmlp.activations.relu
    assert de(ser(fastmlp.losses.mean_squared_error)) is fastmlp.losses.mean_squared_error
    for v in (None, 3, 2.5, "relu", True):
        assert ser(v) == v and de(v) == v
    assert ser(np.float32(2.0)) == 2.0
    arr = np.array([[1, 2], [3, 4]], dtype="int32")
    cfg = ser(arr)
    assert cfg == {"class_name": "__numpy__", "config": {"value": [[1, 2], [3, 4]], "dtype": "int32"}}
    out = de(cfg)
    assert out.dtype == np.int32 and np.array_equal(out, arr)
    assert ser([1, fastmlp.regularizers.L2(0.5)])[1]["class_name"] == "L2"
    assert de({"a": 1, "b": [1, 2]}) == {"a": 1, "b": [1, 2]}


def test_registration_of_functions_and_classes():
    @saving.register_keras_serializable(package="tests")
    def scaled_init(shape, dtype=None):
        return np.full(shape, 0.25, dtype=dtype)

    @fastmlp.utils.register_keras_serializable(package="tests", name="MyReg")
    class MyReg(fastmlp.regularizers.L2):
        pass

    assert saving.get_registered_name(scaled_init) == "tests>scaled_init"
    assert saving.get_registered_name(MyReg) == "tests>MyReg"
    assert saving.get_registered_name(len) == "len"
    assert saving.get_registered_object("tests>scaled_init") is scaled_init
    assert fastmlp.utils.get_custom_objects() is saving.get_custom_objects()
    assert "tests>MyReg" in saving.get_custom_objects()
    cfg = ser(scaled_init)
    assert cfg["config"] == "tests>scaled_init" and de(cfg) is scaled_init
    reg = de(ser(MyReg(0.3)))
    assert type(reg) is MyReg and reg.l2 == pytest.approx(0.3)
    assert ser(MyReg(0.3))["registered_name"] == "tests>MyReg"
    # a registered initializer function is usable by name in a layer, and in the layer's config
    layer = layers.Dense(2, kernel_initializer="tests>scaled_init")
    layer.build((None, 3))
    np.testing.assert_array_equal(layer.kernel.numpy(), np.full((3, 2), 0.25))
    again = layers.Dense.from_config(layer.get_config())
    again.build((None, 3))
    np.testing.assert_array_equal(again.kernel.numpy(), np.full((3, 2), 0.25))

    class NoConfig:
        pass
    with pytest.raises(ValueError, match="get_config"):
        saving.register_keras_serializable()(NoConfig)


def test_custom_objects_and_scopes():
    def unregistered_init(shape, dtype=None):
        return np.ones(shape, dtype=dtype)
    cfg = {"module": "builtins", "class_name": "function", "config": "unregistered_init",
           "registered_name": "function"}
    with pytest.raises(ValueError, match="Unknown function"):
        de(cfg)
    assert de(cfg, custom_objects={"unregistered_init": unregistered_init}) is unregistered_init
    with saving.custom_object_scope({"unregistered_init": unregistered_init}):
        assert de(cfg) is unregistered_init
        assert saving.get_registered_object("unregistered_init") is unregistered_init
    assert saving.get_registered_object("unregistered_init") is None


def test_a_registered_python_activation_is_refused_with_the_alternatives():
    @saving.register_keras_serializable(package="tests")
    def my_act(x):
        return x * 2
    with pytest.raises(NotImplementedError, match="built-in activations.*relu"):
        layers.Dense(2, activation=my_act)
    with pytest.raises(NotImplementedError, match="built-in activations"):
        layers.Dense(2, activation="tests>my_act")


def test_bad_configs_raise_clear_errors():
    with pytest.raises(TypeError, match="Could not locate"):
        de({"module": "fastmlp.layers", "class_name": "NoSuchLayer", "config": {}, "registered_name": None})
    with pytest.raises(ValueError, match="lambda"):
        de({"class_name": "__lambda__", "config": {"code": "..."}})
    with pytest.raises(ValueError, match="Lambda"):
        ser(lambda x: x)
    with pytest.raises(TypeError, match="get_config"):
        ser(object())


# --------------------------------------------------------------------------- Keras's own dicts
def test_keras_dicts_deserialize_into_fastmlp_objects():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    cases = [keras.layers.Dense(3, activation="tanh", name="d"), keras.losses.Huber(delta=2.0),
             keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), keras.initializers.GlorotNormal(seed=1),
             keras.regularizers.L2(0.1), keras.activations.relu]
    for obj in cases:
        kcfg = json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))
        if kcfg.get("class_name") == "Dense":   # Keras-only arguments (quantization, LoRA)
            for k in ("quantization_config", "lora_alpha", "lora_rank", "kernel_constraint", "bias_constraint",
                      "activity_regularizer"):
                kcfg["config"].pop(k, None)
        f = de(kcfg)
        fcfg = ser(f)
        if callable(obj) and not hasattr(obj, "get_config"):
            assert fcfg == kcfg
        else:
            assert fcfg["class_name"] == kcfg["class_name"]
            shared = set(fcfg["config"]) & set(kcfg["config"]) - {"dtype", "kernel_initializer", "bias_initializer"}
            for key in shared:
                v = kcfg["config"][key]
                assert fcfg["config"][key] == (pytest.approx(v) if isinstance(v, float) else v), key
    for kl in (keras.layers.Dropout(0.2, name="dr"), keras.layers.ReLU(name="r"), keras.layers.PReLU(name="p")):
        kcfg = json.loads(json.dumps(keras.saving.serialize_keras_object(kl)))   # dtype: a DTypePolicy dict
        layer = de(kcfg)
        assert type(layer).__name__ == type(kl).__name__ and layer.name == kl.name and layer.dtype == "float32"
    with pytest.raises(ValueError, match="dtype"):
        layers.Dense(2, dtype={"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}})
    # and the same layout comes out of fastmlp for the same objects
    assert ser(fastmlp.regularizers.L2(0.1)) == {**keras.saving.serialize_keras_object(keras.regularizers.L2(0.1)),
                                                 "module": "fastmlp.regularizers"}
    # Keras's Huber config leaves `delta` out (so Keras loses it on a round trip); fastmlp keeps it
    k_huber = keras.saving.serialize_keras_object(keras.losses.Huber(delta=2.0))["config"]
    assert ser(fastmlp.losses.Huber(delta=2.0))["config"] == {**k_huber, "delta": 2.0}
