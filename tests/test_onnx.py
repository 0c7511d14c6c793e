"""ONNX out (``model.export(path, format="onnx")``) and in (``load_model("model.onnx")``).

Exported graphs pass ``onnx.checker.check_model(full_check=True)`` and, run by onnxruntime on
1,000 rows, give ``model.predict``'s outputs to 1e-5; int8 layers give them bit for bit after
linear and relu-like activations and within one quantization step per layer after others
(sigmoid, tanh, ...: onnxruntime's differ by an ulp).  Imported graphs (torch.onnx.export,
skl2onnx when installed, fastmlp's own export, hand-made graphs of every supported operator)
predict what onnxruntime computes from the same file, to 1e-5.
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import layers  # noqa: E402
from fastmlp.saving import onnx_export, onnx_io  # noqa: E402

ROWS = 1000
TOL = dict(rtol=1e-5, atol=1e-5)


def data(*shape, seed=0, scale=1.5):
    return (np.random.default_rng(seed).normal(size=(ROWS,) + shape) * scale).astype(np.float32)


def run_ort(ort, proto, feeds, level=None):
    options = ort.SessionOptions()
    if level is not None:
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    sess = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def as_list(out):
    return list(out.values()) if isinstance(out, dict) else (list(out) if isinstance(out, list) else [out])


def check_export(onnx, ort, model, xs, **kwargs):
    """Export, check the graph, run it in onnxruntime on ``xs`` (one array per input) and compare with
    ``model.predict``, output by output in the model's output order.  Returns the proto."""
    proto = onnx_io.to_onnx(model, **kwargs)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == list(model.input_names)
    assert [o.name for o in proto.graph.output] == list(model.output_names)
    got = run_ort(ort, proto, dict(zip(model.input_names, xs)))
    want = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    want = [want[k] for k in model.output_names] if isinstance(want, dict) else as_list(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, **TOL)
    return proto


def ops(proto):
    return [n.op_type for n in proto.graph.node]


# =========================================================================== export: activations
def activation_model(name, lib=fastmlp):
    """Every activation twice: fused in a Dense, and as an Activation layer (or the ReLU layer for
    relu_cap), built with ``lib`` (fastmlp or keras)."""
    L = lib.layers
    if name == "relu_cap":
        return lib.Sequential([lib.Input(shape=(5,)), L.Dense(9), L.ReLU(max_value=2.5), L.Dense(4),
                               L.ReLU(max_value=0.75)])
    return lib.Sequential([lib.Input(shape=(5,)), L.Dense(9, activation=name), L.Dense(4), L.Activation(name)])


@pytest.mark.parametrize("name", sorted(fastmlp._engine.ACTIVATIONS))
def test_every_engine_activation_exports_and_matches_predict(onnx, ort, name):
    model = activation_model(name)
    x = data(5, scale=0.8 if name == "exponential" else 1.5)
    check_export(onnx, ort, model, [x])
    proto = check_export(onnx, ort, model, [x], opset_version=20)
    if name == "gelu":
        assert "Gelu" in ops(proto)
        assert "Erf" in ops(onnx_io.to_onnx(model)) and "Gelu" not in ops(onnx_io.to_onnx(model))


def test_exported_activations_compute_what_keras_computes(onnx, ort):
    keras = pytest.importorskip("keras")
    for name in sorted(fastmlp._engine.ACTIVATIONS):
        k_model, model = activation_model(name, keras), activation_model(name)
        model.set_weights(k_model.get_weights())
        x = data(5, scale=0.8)
        got = run_ort(ort, onnx_io.to_onnx(model), {model.input_names[0]: x})[0]
        np.testing.assert_allclose(got, k_model.predict(x, verbose=0), err_msg=name, **TOL)


def test_activation_constants_are_keras_ones(onnx):
    proto = onnx_io.to_onnx(fastmlp.Sequential([
        fastmlp.Input(shape=(3,)), layers.Dense(3, activation="leaky_relu"), layers.Dense(3, activation="hard_sigmoid"),
        layers.LeakyReLU()]))
    attrs = {n.op_type + str(i): {a.name: a.f for a in n.attribute} for i, n in enumerate(proto.graph.node)}
    leaky = [v for k, v in attrs.items() if k.startswith("LeakyRelu")]
    assert np.isclose(leaky[0]["alpha"], 0.2) and np.isclose(leaky[1]["alpha"], 0.3)   # activation vs layer
    hard = [v for k, v in attrs.items() if k.startswith("HardSigmoid")][0]
    assert np.isclose(hard["alpha"], 1 / 6) and hard["beta"] == 0.5


# =========================================================================== export: layer kinds
def kinds_model():
    """A functional model with every exportable layer kind, two inputs, a nested model and dict outputs."""
    a = fastmlp.Input(shape=(4, 5), name="grid")
    b = fastmlp.Input(shape=(6,), name="extra")
    pa = layers.PReLU(shared_axes=[1], alpha_initializer="random_normal")(a)
    fa = layers.Flatten()(pa)
    h1 = layers.Dense(8)(fa)
    h1 = layers.BatchNormalization(name="bn_folded")(h1)             # folded into the Dense
    h2 = layers.Dense(8, activation="relu")(b)
    h2 = layers.BatchNormalization(name="bn_op", center=False)(h2)   # after an activation: its own op
    h2 = layers.Dropout(0.5)(h2)
    h2 = layers.GaussianNoise(0.3)(h2)
    h3 = layers.Dense(8, activation="tanh")(layers.Concatenate()([h1, h2]))
    block = fastmlp.Sequential([fastmlp.Input(shape=(8,)), layers.Dense(8, activation="elu"),
                                layers.PReLU(alpha_initializer="random_normal")], name="block")
    h4 = block(h3)
    summed = layers.Add()([h1, h2, h4])
    merged = layers.Concatenate()([
        layers.Subtract()([h1, h2]), layers.Multiply()([h1, h2, h4]), layers.Average()([h1, h4]),
        layers.Maximum()([h2, h4, h1]), layers.Minimum()([h1, h4])])
    acts = layers.ReLU(max_value=3.0)(merged)
    acts = layers.LeakyReLU(0.1)(layers.ELU(0.7)(acts))
    acts = layers.ReLU(negative_slope=0.05)(acts)
    probs = layers.Softmax(name="probs")(layers.Dense(3)(acts))
    value = layers.Dense(1, name="value")(layers.BatchNormalization(name="bn_first", scale=False)(summed))
    return fastmlp.Model([a, b], {"value": value, "probs": probs}, name="kinds")


def randomize_batchnorm(model):
    rng = np.random.default_rng(7)
    for layer in model._all_layers():
        if isinstance(layer, layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if n == "moving_variance" or n == "gamma"
                               else rng.normal(0, 0.5, w.shape)
                               for n, w in zip([s.name for s in layer._wspecs], layer.get_weights())])


def test_every_layer_kind_in_a_functional_model_exports_and_matches_predict(onnx, ort):
    model = kinds_model()
    randomize_batchnorm(model)
    xs = [data(4, 5, seed=1), data(6, seed=2)]
    proto = check_export(onnx, ort, model, xs)
    kinds = ops(proto)
    assert kinds.count("BatchNormalization") == 2          # bn_op and bn_first; bn_folded is in its Dense
    for op in ("PRelu", "Flatten", "Concat", "Sum", "Sub", "Mul", "Mean", "Max", "Min", "Clip", "Elu",
               "LeakyRelu", "Softmax", "Gemm"):
        assert op in kinds, op
    assert "Dropout" not in kinds and "RandomNormalLike" not in kinds
    few = run_ort(ort, proto, {"grid": xs[0][:3], "extra": xs[1][:3]})   # the batch axis is dynamic
    np.testing.assert_allclose(few[0], model.predict([x[:3] for x in xs], verbose=0)["probs"], **TOL)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_sequential_with_batchnorm_folds_it_and_keeps_names(onnx, ort, tmp_path, capsys):
    model = fastmlp.Sequential([fastmlp.Input(shape=(6,)), layers.Dense(10), layers.BatchNormalization(),
                                layers.Activation("relu"), layers.Dropout(0.3), layers.Dense(3, activation="softmax")],
                               name="clf")
    randomize_batchnorm(model)
    path = tmp_path / "model.onnx"
    assert model.export(str(path), format="onnx") is None
    assert f"Saved artifact at '{path}'." in capsys.readouterr().out
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert ops(proto) == ["Gemm", "Relu", "Gemm", "Softmax"]
    assert proto.opset_import[0].version == onnx_export.DEFAULT_OPSET
    x = data(6)
    np.testing.assert_allclose(run_ort(ort, proto, {model.input_names[0]: x})[0], model.predict(x, verbose=0), **TOL)
    model.export(path, format="onnx", verbose=False)
    assert capsys.readouterr().out == ""


def test_batchnorm_read_twice_is_not_folded(onnx, ort):
    x = fastmlp.Input(shape=(4,))
    d = layers.Dense(5)(x)
    out1 = layers.BatchNormalization()(d)
    out2 = layers.Dense(2)(d)                   # the Dense output has a second reader
    out3 = layers.Dropout(0.5)(out2)            # the same value as out2: an Identity gives it its own name
    model = fastmlp.Model(x, [out1, out2, out3])
    randomize_batchnorm(model)
    proto = check_export(onnx, ort, model, [data(4)])
    assert "BatchNormalization" in ops(proto) and "Identity" in ops(proto)
    back = onnx_io.from_onnx(proto)
    assert back.output_names == model.output_names
    for g, w in zip(back.predict(data(4), verbose=0), model.predict(data(4), verbose=0)):
        np.testing.assert_allclose(g, w, **TOL)


def test_float64_model_exports_float32_graph(onnx, ort):
    fastmlp.config.set_floatx("float64")
    model = fastmlp.Sequential([fastmlp.Input(shape=(3,)), layers.Dense(4, activation="selu"), layers.Dense(2)])
    proto = onnx_io.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    x = data(3)
    np.testing.assert_allclose(run_ort(ort, proto, {model.input_names[0]: x})[0],
                               model.predict(x.astype(np.float64), verbose=0), **TOL)


def test_input_signature_fixes_the_batch_axis(onnx, ort):
    model = fastmlp.Sequential([fastmlp.Input(shape=(3,)), layers.Dense(2)])
    proto = onnx_io.to_onnx(model, input_signature=[fastmlp.InputSpec(shape=(7, 3))])
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 7
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 7
    with pytest.raises(ValueError, match="input_signature"):
        onnx_io.to_onnx(model, input_signature=[fastmlp.Input(shape=(4,))])
    with pytest.raises(ValueError, match="1 input"):
        onnx_io.to_onnx(model, input_signature=[fastmlp.Input(shape=(3,)), fastmlp.Input(shape=(3,))])


def test_tensors_in_an_input_signature_give_their_shape_and_dtype_as_keras_s_torch_backend(onnx, ort, tmp_path):
    """As Keras's torch backend exports them: a tensor (a torch tensor, an array, fastmlp.Input,
    keras.Input) gives its shape as it is -- a batch size fixes the batch axis, None leaves it
    dynamic -- and its dtype (torch.float32 is float32)."""
    torch = pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    model = fastmlp.Sequential([fastmlp.Input(shape=(6,)), layers.Dense(3)])
    path = tmp_path / "m.onnx"
    for spec, onnx_type in [(torch.zeros(4, 6), "FLOAT"), (torch.zeros(4, 6, dtype=torch.float64), "DOUBLE"),
                            (fastmlp.Input(shape=(6,), batch_size=4), "FLOAT"), (fastmlp.Input(shape=(6,)), "FLOAT"),
                            (keras.Input(shape=(6,), batch_size=4), "FLOAT"), (np.zeros((4, 6)), "DOUBLE")]:
        model.export(path, format="onnx", input_signature=[spec], verbose=False)
        proto = onnx.load(path)
        onnx.checker.check_model(proto, full_check=True)
        t = proto.graph.input[0].type.tensor_type
        fixed = spec.shape[0] == 4
        assert [d.dim_param or d.dim_value for d in t.shape.dim] == [4 if fixed else "batch", 6]
        assert onnx.TensorProto.DataType.Name(t.elem_type) == onnx_type
        x = data(6)[:4] if fixed else data(6)
        np.testing.assert_allclose(run_ort(ort, proto, {model.input_names[0]: x.astype(
            np.float64 if onnx_type == "DOUBLE" else np.float32)})[0], model.predict(x, verbose=0), **TOL)
    with pytest.raises(ValueError, match="has dtype float16$"):
        model.export(path, format="onnx", input_signature=[torch.zeros(4, 6, dtype=torch.float16)])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_input_spec_as_keras_documents_it_sets_the_graph_input(onnx, ort, tmp_path, dtype):
    """``keras.InputSpec`` (also ``keras.layers.InputSpec``); a float64 spec makes a float64 graph
    input, cast to float32 at once."""
    keras = pytest.importorskip("keras")
    spec = fastmlp.InputSpec(dtype=dtype, shape=(None, 3))
    assert fastmlp.layers.InputSpec is fastmlp.InputSpec and spec.ndim == 2
    assert repr(spec) == repr(keras.InputSpec(dtype=dtype, shape=(None, 3)))
    assert spec.get_config() == keras.InputSpec(dtype=dtype, shape=(None, 3)).get_config()
    model = fastmlp.Sequential([fastmlp.Input(shape=(3,)), layers.Dense(2, activation="tanh")])
    model.export(tmp_path / "m.onnx", format="onnx", input_signature=[spec], verbose=False)
    proto = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    x = data(3).astype(dtype)
    np.testing.assert_allclose(run_ort(ort, proto, {model.input_names[0]: x})[0], model.predict(x, verbose=0), **TOL)
    back = fastmlp.models.load_model(tmp_path / "m.onnx")   # a float32 model again
    assert back.layers[-1].dtype == "float32"
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="float32 or float64 inputs"):
        model.export(tmp_path / "m.onnx", format="onnx", input_signature=[fastmlp.InputSpec(dtype="float16",
                                                                                             shape=(None, 3))])


def _int8_rows():
    """Rows int8 inference treats apart: ordinary, all zero, below its 1e-30 floor, with a NaN,
    with an infinity."""
    x = data(6)
    x[1] = 0
    x[2] = 1e-35
    x[3, 2] = np.nan
    x[4, 0] = -np.inf
    return x


@pytest.mark.parametrize("how", ["quantized_model", "int8_file", "dtype_int8"])
def test_int8_export_computes_what_int8_inference_computes(onnx, ort, tmp_path, how):
    """An int8 Dense is its input quantized per row (as the engine does) times the int8 kernel
    (MatMulInteger: exact int32 sums), scaled back: onnxruntime gives predict's outputs, at its
    basic and its default optimization levels, and the graph imports back as int8 layers."""
    model = fastmlp.Sequential([fastmlp.Input(shape=(6,)), layers.Dense(12, activation="relu"),
                                layers.BatchNormalization(), layers.Dense(3)])
    randomize_batchnorm(model)
    model.save(tmp_path / "m.fmlp", dtype="int8")
    int8_model = fastmlp.models.load_model(tmp_path / "m.fmlp")
    if how == "quantized_model":
        model.quantize("int8")
        proto = onnx_io.to_onnx(model)
    elif how == "int8_file":
        proto = onnx_io.to_onnx(int8_model)
    else:   # a float model written as its int8 file would hold it
        proto = onnx_io.to_onnx(model, dtype="int8")
    onnx.checker.check_model(proto, full_check=True)
    assert ops(proto).count("MatMulInteger") == 2 and "Gemm" not in ops(proto)
    assert ops(proto).count("Abs") == 2   # each Dense quantizes its own input
    assert sum(i.data_type == onnx.TensorProto.INT8 for i in proto.graph.initializer) == 2
    x = _int8_rows()
    want = int8_model.predict(x, verbose=0)
    assert np.isnan(want[3]).all() and np.isnan(want[4]).all() and np.isfinite(want[[0, 1, 2, 5]]).all()
    feeds = {int8_model.input_names[0]: x}
    for level in ("ORT_ENABLE_BASIC", None):
        np.testing.assert_allclose(run_ort(ort, proto, feeds, level)[0], want, **TOL)
    back = onnx_io.from_onnx(proto)
    assert [layer.quantization_mode for layer in back.layers if hasattr(layer, "units")] == ["int8"] * 2
    np.testing.assert_array_equal(back.predict(x, verbose=0), want)
    assert ops(onnx_io.to_onnx(back)).count("MatMulInteger") == 2


def _int8_mlp(activations, seed=0):
    fastmlp.utils.set_random_seed(seed)
    model = fastmlp.Sequential([fastmlp.Input(shape=(12,))] + [layers.Dense(16, activation=a) for a in activations]
                               + [layers.Dense(3)])
    model.quantize("int8")
    return model


def test_int8_export_is_bit_exact_after_linear_and_relu_activations(onnx, ort):
    """Between int8 layers, linear, relu (capped or not) and leaky_relu are computed by onnxruntime
    exactly as by fastmlp: the graph gives predict's outputs bit for bit."""
    x = (np.random.default_rng(0).normal(size=(20000, 12)) * 2).astype(np.float32)
    for activations in (["relu", "relu"], ["linear", "leaky_relu"], ["relu6", "relu"]):
        model = _int8_mlp(activations)
        got = run_ort(ort, onnx_io.to_onnx(model), {model.input_names[0]: x})[0]
        np.testing.assert_array_equal(got, model.predict(x, verbose=0))


def test_int8_export_after_sigmoid_is_within_one_quantization_step_per_layer(onnx, ort):
    """onnxruntime's Sigmoid differs from fastmlp's by an ulp on some values, which rounds a few
    of the next int8 layer's inputs to the neighbouring int8 value: each int8 layer's quantized
    input is within one int8 step of predict's, and the outputs within one quantization step of
    the last layer's input (its row scale amax / 127 times the sum of |w| over the column).
    Measured on these 20,000 rows: 6,431 rows not bit-exact, the largest difference 2.0e-3, 0.09 of
    that step (0.4 after tanh, gelu, swish or softsign layers)."""
    x = (np.random.default_rng(0).normal(size=(20000, 12)) * 2).astype(np.float32)
    model = _int8_mlp(["sigmoid", "sigmoid"])
    proto = onnx_io.to_onnx(model)
    quantized = [n.output[0] for n in proto.graph.node if n.op_type == "Cast" and n.output[0].endswith("/q8/int8")]
    assert len(quantized) == 3
    for name in quantized[1:]:   # the quantized inputs of the second and third int8 layers, as outputs too
        proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT8, None))
    got, *q_ort = run_ort(ort, proto, {model.input_names[0]: x})
    want = model.predict(x, verbose=0)
    for k, q in enumerate(q_ort, 1):
        h = fastmlp.Sequential([fastmlp.Input(shape=(12,))] + model.layers[:k]).predict(x, verbose=0)
        amax = np.abs(h).max(axis=1, keepdims=True)
        q_fastmlp = np.clip(np.round(h * (np.float32(127) / np.maximum(amax, np.float32(1e-30)))), -127, 127)
        assert np.abs(q.astype(np.int32) - q_fastmlp).max() <= 1
    kernel, scale = model.layers[-1]._int8
    step = amax / 127 * (np.abs(kernel.astype(np.float64)) * scale).sum(axis=0)
    assert np.any(got != want)
    assert np.max(np.abs(got - want) / step) < 0.5


def test_int8_dense_layers_reading_one_value_share_its_quantization(onnx, ort):
    x_in = fastmlp.Input(shape=(5,), name="x")
    a, b = layers.Dense(4, name="a")(x_in), layers.Dense(3, activation="relu", use_bias=False, name="b")(x_in)
    model = fastmlp.Model(x_in, layers.Concatenate()([a, layers.Dense(4, name="c")(b)]))
    model.quantize("int8")
    proto = check_export(onnx, ort, model, [data(5)])
    assert ops(proto).count("MatMulInteger") == 3 and ops(proto).count("Abs") == 2
    np.testing.assert_array_equal(onnx_io.from_onnx(proto).predict(data(5), verbose=0), model.predict(data(5)))


def test_float32_export_of_an_int8_model_and_bfloat16_export(onnx, ort):
    """dtype="float32": an int8 layer's dequantized kernel in float; a mixed_bfloat16 model: its
    Dense inputs and kernels rounded to bfloat16, as its inference does."""
    model = fastmlp.Sequential([fastmlp.Input(shape=(6,)), layers.Dense(12, activation="relu"), layers.Dense(3)])
    float_twin = fastmlp.Sequential.from_config(model.get_config())
    model.quantize("int8")
    float_twin.set_weights(model.get_weights())   # the dequantized kernels
    proto = onnx_io.to_onnx(model, dtype="float32")
    assert "MatMulInteger" not in ops(proto)
    np.testing.assert_allclose(run_ort(ort, proto, {model.input_names[0]: data(6)})[0],
                               float_twin.predict(data(6), verbose=0), **TOL)
    try:
        fastmlp.config.set_dtype_policy("mixed_bfloat16")
        fastmlp.utils.set_random_seed(0)
        mixed = fastmlp.Sequential([fastmlp.Input(shape=(6,)), layers.Dense(12, activation="relu"),
                                    layers.Dense(3)])
    finally:
        fastmlp.config.set_dtype_policy(None)
    proto = check_export(onnx, ort, mixed, [data(6)])
    assert ops(proto).count("Cast") == 4   # each Dense input to bfloat16 and back
    back = onnx_io.from_onnx(proto)   # mixed_bfloat16 Dense layers again
    assert [layer.dtype_policy.name for layer in back.layers[1:]] == ["mixed_bfloat16"] * 2
    np.testing.assert_array_equal(back.predict(data(6), verbose=0), mixed.predict(data(6), verbose=0))
    plain = onnx_io.to_onnx(mixed, dtype="float32")
    assert "Cast" not in ops(plain)
    assert np.abs(run_ort(ort, plain, {mixed.input_names[0]: data(6)})[0] - mixed.predict(data(6))).max() > 1e-4


# =========================================================================== export: errors
def test_export_formats_and_arguments_follow_keras(onnx, tmp_path):
    model = fastmlp.Sequential([fastmlp.Input(shape=(3,)), layers.Dense(2)])
    path = str(tmp_path / "m.onnx")
    with pytest.raises(NotImplementedError, match="format='onnx'"):
        model.export(path)                        # Keras's default format is tf_saved_model
    for fmt in ("openvino", "litert", "torch"):
        with pytest.raises(NotImplementedError, match=fmt):
            model.export(path, format=fmt)
    with pytest.raises(ValueError, match="Unrecognized format"):
        model.export(path, format="pickle")
    with pytest.raises(ValueError, match="opset_version"):
        model.export(path, format="onnx", opset_version=16)
    with pytest.raises(ValueError, match="opset_version"):
        model.export(path, format="onnx", opset_version=10_000)
    with pytest.raises(ValueError, match="jax2tf_kwargs"):
        model.export(path, format="onnx", jax2tf_kwargs={})
    with pytest.raises(ValueError, match="dtype"):
        model.export(path, format="onnx", dtype="float16")
    assert not os.path.exists(path)
    model.export(path, format="onnx", opset_version=17, verbose=False)
    assert onnx.load(path).opset_import[0].version == 17


def test_unbuilt_model_and_layer_kind_without_exporter_are_refused(onnx, monkeypatch):
    with pytest.raises(ValueError, match="not built"):
        onnx_io.to_onnx(fastmlp.Sequential([layers.Dense(2)]))
    model = fastmlp.Sequential([fastmlp.Input(shape=(3,)), layers.Dense(4), layers.PReLU()])
    monkeypatch.delitem(onnx_export.LAYER_EXPORTERS, "PReLU")
    with pytest.raises(ValueError, match="PReLU"):
        onnx_io.to_onnx(model)


def test_exporter_does_not_import_onnxruntime(onnx, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # importing it would now raise
    model = fastmlp.Sequential([fastmlp.Input(shape=(3,)), layers.Dense(2, activation="gelu")])
    model.export(tmp_path / "m.onnx", format="onnx", verbose=False)
    fastmlp.models.load_model(tmp_path / "m.onnx")


def test_missing_onnx_package_names_the_extra(monkeypatch, tmp_path):
    model = fastmlp.Sequential([fastmlp.Input(shape=(3,)), layers.Dense(2)])
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install fastmlp\[onnx\]"):
        model.export(tmp_path / "m.onnx", format="onnx")
    (tmp_path / "x.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(ImportError, match=r"pip install fastmlp\[onnx\]"):
        fastmlp.models.load_model(tmp_path / "x.onnx")


# =========================================================================== import: round trips
@pytest.mark.parametrize("opset", [17, 20])
def test_every_activation_round_trips(onnx, opset):
    for name in sorted(fastmlp._engine.ACTIVATIONS):
        model = activation_model(name)
        back = onnx_io.from_onnx(onnx_io.to_onnx(model, opset_version=opset))
        x = data(5, scale=0.8)
        np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0), err_msg=name, **TOL)
        if name not in ("relu_cap", "linear"):   # the fused activation comes back fused
            assert back.layers[1].activation is model.layers[0].activation, name


def test_functional_model_round_trips_through_load_model(onnx, ort, tmp_path):
    model = kinds_model()
    randomize_batchnorm(model)
    path = tmp_path / "kinds.onnx"
    model.export(path, format="onnx", verbose=False)
    back = fastmlp.models.load_model(path)
    same = fastmlp.load_model(str(path))
    assert back.input_names == model.input_names and back.output_names == model.output_names
    assert same.output_names == model.output_names
    xs = [data(4, 5, seed=1), data(6, seed=2)]
    want = model.predict(xs, verbose=0)
    got = back.predict(xs, verbose=0)
    for key, w in zip(back.output_names, got):
        np.testing.assert_allclose(w, want[key], **TOL)


# =========================================================================== import: torch, sklearn
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript_exporter", "dynamo_exporter"])
def test_torch_onnx_export_of_a_sequential_mlp_imports(onnx, ort, dynamo):
    """Both of torch.onnx's exporters (the dynamo one, torch's default, needs onnxscript)."""
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.BatchNorm1d(16), nn.Tanh(),
                        nn.Dropout(0.3), nn.Linear(16, 12), nn.LeakyReLU(0.1), nn.ELU(0.5), nn.Linear(12, 12),
                        nn.Sigmoid(), nn.Linear(12, 12), nn.Softplus(), nn.SELU(), nn.Hardsigmoid(), nn.Linear(12, 10),
                        nn.GELU(), nn.SiLU(), nn.PReLU(10), nn.ReLU6(), nn.Linear(10, 4), nn.Softmax(dim=1))
    with torch.no_grad():
        net[4].running_mean.normal_()
        net[4].running_var.uniform_(0.5, 2)
        net[4].weight.normal_()
    net.eval()
    import io
    import warnings
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(2, 2, 3), buf, dynamo=dynamo, input_names=["features"],
                          output_names=["probs"], dynamic_axes={"features": {0: "batch"}, "probs": {0: "batch"}},
                          opset_version=17 if not dynamo else None)
    proto = onnx.load_from_string(buf.getvalue())
    model = onnx_io.from_onnx(proto)
    assert model.input_names == ["features"] and model.output_names == ["probs"]
    x = data(2, 3)
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, run_ort(ort, proto, {"features": x})[0], **TOL)
    with torch.no_grad():
        np.testing.assert_allclose(got, net(torch.from_numpy(x)).numpy(), **TOL)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript_exporter", "dynamo_exporter"])
@pytest.mark.parametrize("opset", [11, 17, 18])
def test_torch_s_f_normalize_imports_as_unit_normalization(onnx, ort, dynamo, opset):
    """F.normalize(x, dim=1) (an embedding model's head) exports as x / Expand(Clip(ReduceL2(x), 1e-12),
    Shape(x)): the norm floored at 1e-12, which is fastmlp's UnitNormalization.  Another floor
    (eps=1e-6) is refused."""
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")
        if opset < 18:
            pytest.skip("torch's dynamo exporter writes opset 18 and later")
    nn, F = torch.nn, torch.nn.functional
    import io
    import warnings

    class Net(nn.Module):
        def __init__(self, eps):
            super().__init__()
            self.l1, self.l2, self.eps = nn.Linear(6, 8), nn.Linear(8, 5), eps

        def forward(self, x):
            return F.normalize(self.l2(torch.relu(self.l1(x))), dim=1, eps=self.eps)

    def export(net):
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net.eval(), torch.zeros(2, 6), buf, dynamo=dynamo, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=opset)
        return onnx.load_from_string(buf.getvalue())
    torch.manual_seed(0)
    net = Net(1e-12)
    proto = export(net)
    model = onnx_io.from_onnx(proto)
    assert [type(layer).__name__ for layer in model.layers][-1] == "UnitNormalization"
    x = np.vstack([data(6), np.zeros((1, 6), np.float32)])
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, run_ort(ort, proto, {"x": x})[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="floors the norm at 1e-06"):
        onnx_io.from_onnx(export(Net(1e-6)))


def test_a_torch_classifier_ending_in_log_softmax_imports(onnx, ort):
    """The PyTorch examples' MNIST classifier: log-probabilities out (for NLLLoss)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4),
                        nn.LogSoftmax(dim=1)).eval()
    import io
    import warnings
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(2, 2, 3), buf, dynamo=False, input_names=["image"],
                          output_names=["log_probs"], dynamic_axes={"image": {0: "n"}, "log_probs": {0: "n"}})
    proto = onnx.load_from_string(buf.getvalue())
    assert "LogSoftmax" in ops(proto)
    model = onnx_io.from_onnx(proto)
    x = data(2, 3)
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, run_ort(ort, proto, {"image": x})[0], **TOL)
    with torch.no_grad():
        np.testing.assert_allclose(got, net(torch.from_numpy(x)).numpy(), **TOL)
    # and back out: fastmlp's export of the imported model is LogSoftmax again
    assert "LogSoftmax" in ops(check_export(onnx, ort, model, [x]))


def test_keras_onnx_export_imports_and_matches_keras(onnx, ort, tmp_path):
    keras = pytest.importorskip("keras")
    import warnings
    net = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(12, activation="gelu"),
                            keras.layers.BatchNormalization(), keras.layers.Dropout(0.2),
                            keras.layers.Dense(8, activation="relu"), keras.layers.LeakyReLU(),
                            keras.layers.Dense(6, activation="softsign"),
                            keras.layers.PReLU(alpha_initializer=keras.initializers.RandomUniform(-1, 1, seed=2)),
                            keras.layers.UnitNormalization(),
                            keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(5)
    bn = net.layers[1]
    bn.set_weights([rng.uniform(0.5, 1.5, 12), rng.normal(size=12), rng.normal(size=12), rng.uniform(0.5, 2, 12)])
    x = data(5)
    want = net.predict(x, verbose=0)
    path = tmp_path / "keras.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.export(str(path), format="onnx", verbose=False)
    model = fastmlp.models.load_model(path)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, **TOL)


def test_skl2onnx_mlp_regressor_imports(onnx, ort):
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPRegressor
    x = data(5)
    reg = MLPRegressor(hidden_layer_sizes=(8, 6), max_iter=20, random_state=0).fit(x[:200], x[:200, 0])
    proto = skl2onnx.convert_sklearn(reg, initial_types=[("input", FloatTensorType([None, 5]))])
    got = onnx_io.from_onnx(proto).predict(x, verbose=0)
    np.testing.assert_allclose(got.reshape(-1), run_ort(ort, proto, {"input": x})[0].reshape(-1), **TOL)


# =========================================================================== import: hand-made graphs
RNG = np.random.default_rng(3)
W = RNG.normal(size=(4, 3)).astype(np.float32)
W2 = RNG.normal(size=(4, 3)).astype(np.float32)
B = RNG.normal(size=(3,)).astype(np.float32)
W6 = RNG.normal(size=(6, 2)).astype(np.float32)
BN = [RNG.uniform(0.5, 1.5, 3), RNG.normal(size=3), RNG.normal(size=3), RNG.uniform(0.5, 2, 3)]


def make_model(onnx, nodes, inits, inputs=(("x", [4]),), outputs=("y",), opset=18, elem=1):
    h = onnx.helper
    ins = [h.make_tensor_value_info(n, elem, ["N"] + list(shape)) for n, shape in inputs]
    outs = [h.make_tensor_value_info(n, 1, ["N", None]) for n in outputs]
    tensors = [onnx.numpy_helper.from_array(np.asarray(v, np.float32) if np.asarray(v).dtype.kind == "f"
                                            else np.asarray(v), k) for k, v in inits.items()]
    opsets = [h.make_opsetid("", opset)]
    return h.make_model(h.make_graph(nodes, "hand", ins, outs, initializer=tensors), opset_imports=opsets,
                        ir_version=h.find_min_ir_version_for(opsets))


def node(op, ins, outs, name=None, **attrs):
    from onnx import helper
    return helper.make_node(op, ins, outs, name=name or f"{op.lower()}_{outs[0]}", **attrs)


def gemm_then(op, opset=18, **attrs):
    """Gemm(x, W, B) then ``op`` (a dense layer and its activation)."""
    def build(onnx):
        return make_model(onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node(op, ["h"], ["y"], **attrs)],
                          {"W": W, "B": B}, opset=opset)
    return build


def binary(op, n=2):
    def build(onnx):
        names = [f"h{i}" for i in range(n)]
        nodes = [node("Gemm", ["x", "W" if i % 2 == 0 else "W2", "B"], [h]) for i, h in enumerate(names)]
        return make_model(onnx, nodes + [node(op, names, ["y"])], {"W": W, "W2": W2, "B": B})
    return build


def clip(low, high):
    def build(onnx):
        inits = {"W": W, "B": B, "lo": np.float32(low)}
        ins = ["h", "lo"]
        if high is not None:
            inits["hi"] = np.float32(high)
            ins.append("hi")
        return make_model(onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("Clip", ins, ["y"])], inits)
    return build


HAND_GRAPHS = {
    "gemm_transB_alpha_beta": lambda onnx: make_model(
        onnx, [node("Gemm", ["x", "Wt", "C"], ["y"], transB=1, alpha=0.5, beta=2.0)], {"Wt": W.T, "C": B[None]}),
    "gemm_without_bias": lambda onnx: make_model(onnx, [node("Gemm", ["x", "W"], ["y"])], {"W": W}),
    "matmul_add": lambda onnx: make_model(
        onnx, [node("MatMul", ["x", "W"], ["m"]), node("Add", ["m", "B"], ["y"])], {"W": W, "B": B}),
    "matmul_add_bias_first": lambda onnx: make_model(
        onnx, [node("MatMul", ["x", "W"], ["m"]), node("Add", ["B", "m"], ["y"])], {"W": W, "B": B}),
    "matmul_sub_relu": lambda onnx: make_model(
        onnx, [node("MatMul", ["x", "W"], ["m"]), node("Sub", ["m", "B"], ["s"]), node("Relu", ["s"], ["y"])],
        {"W": W, "B": B}),
    "relu": gemm_then("Relu"), "sigmoid": gemm_then("Sigmoid"), "tanh": gemm_then("Tanh"),
    "softmax": gemm_then("Softmax"), "softmax_axis_1": gemm_then("Softmax", axis=1),
    "softmax_opset_11": gemm_then("Softmax", opset=11),
    "log_softmax": gemm_then("LogSoftmax"), "log_softmax_opset_11": gemm_then("LogSoftmax", opset=11),
    "leaky_relu_onnx_default": gemm_then("LeakyRelu"), "leaky_relu_keras_default": gemm_then("LeakyRelu", alpha=0.2),
    "elu": gemm_then("Elu"), "elu_alpha": gemm_then("Elu", alpha=0.5), "selu": gemm_then("Selu"),
    "softplus": gemm_then("Softplus"), "softsign": gemm_then("Softsign"), "exp": gemm_then("Exp"),
    "hard_sigmoid": gemm_then("HardSigmoid", alpha=1 / 6), "gelu": gemm_then("Gelu", opset=20),
    "softplus_torch_threshold": lambda onnx: make_model(   # torch.onnx's dynamo export of nn.Softplus()
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("Softplus", ["h"], ["s"]),
               node("Greater", ["h", "T"], ["big"]), node("Where", ["big", "h", "s"], ["y"])],
        {"W": W * 30, "B": B, "T": np.float32(20)}),
    "identity": gemm_then("Identity"), "dropout": gemm_then("Dropout"),
    "softsign_decomposed": lambda onnx: make_model(   # as Keras's export writes softsign
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("Abs", ["h"], ["a"]), node("Add", ["One", "a"], ["d"]),
               node("Div", ["h", "d"], ["y"])], {"W": W, "B": B, "One": np.float32(1)}),
    "prelu_decomposed": lambda onnx: make_model(   # relu(x) + c * relu(-x), as Keras's export writes PReLU
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("Cast", ["h"], ["hc"], to=1), node("Relu", ["hc"], ["p"]),
               node("Neg", ["hc"], ["n"]), node("Cast", ["n"], ["nc"], to=1), node("Relu", ["nc"], ["r"]),
               node("Mul", ["C", "r"], ["m"]), node("Add", ["p", "m"], ["y"])],
        {"W": W, "B": B, "C": np.array([-0.1, 0.5, -2.0], np.float32)}),
    "prelu_decomposed_beside_a_value_named_like_its_slope": lambda onnx: make_model(
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("Relu", ["h"], ["p"]), node("Neg", ["h"], ["n"]),
               node("Relu", ["n"], ["r"]), node("Mul", ["C", "r"], ["m"]), node("Add", ["p", "m"], ["z"]),
               node("Add", ["z", "z/slope"], ["y"])],
        {"W": W, "B": B, "C": np.array([-0.1, 0.5, -2.0]), "z/slope": np.array([100.0, 200.0, 300.0])}),
    "unit_normalization_decomposed": lambda onnx: make_model(   # x * min(1 / ||x||, 1e12), as Keras writes it
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("Mul", ["h", "h"], ["sq"]),
               node("ReduceSum", ["sq", "axes"], ["ss"], keepdims=1), node("Sqrt", ["ss"], ["norm"]),
               node("Div", ["One", "norm"], ["inv"]), node("Min", ["inv", "Big"], ["lim"]),
               node("Mul", ["h", "lim"], ["y"])],
        {"W": W, "B": B, "One": np.float32(1), "Big": np.float32(1e12), "axes": np.array([-1], np.int64)}),
    "unused_node_of_an_unsupported_op": lambda onnx: make_model(   # onnxruntime skips it too
        onnx, [node("Gemm", ["x", "W", "B"], ["y"]), node("Cos", ["x"], ["unused"])], {"W": W, "B": B}),
    "relu6_clip": clip(0, 6), "capped_relu_clip": clip(0, 2.5), "clip_at_zero": clip(0, None),
    "relu_of_input": lambda onnx: make_model(onnx, [node("Relu", ["x"], ["y"])], {}),
    "batch_normalization": lambda onnx: make_model(
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("BatchNormalization", ["h", "s", "b", "m", "v"], ["y"],
                                                          epsilon=1e-3)],
        {"W": W, "B": B, "s": BN[0], "b": BN[1], "m": BN[2], "v": BN[3]}),
    "batch_normalization_of_input": lambda onnx: make_model(
        onnx, [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
        {"s": np.ones(4), "b": np.zeros(4), "m": np.arange(4.0), "v": np.full(4, 2.0)}),
    "flatten": lambda onnx: make_model(
        onnx, [node("Flatten", ["x"], ["f"]), node("MatMul", ["f", "W6"], ["y"])], {"W6": W6},
        inputs=(("x", [2, 3]),)),
    "reshape": lambda onnx: make_model(
        onnx, [node("Reshape", ["x", "shape"], ["f"]), node("MatMul", ["f", "W6"], ["y"])],
        {"W6": W6, "shape": np.array([0, -1], np.int64)}, inputs=(("x", [2, 3]),)),
    "concat": lambda onnx: make_model(
        onnx, [node("Gemm", ["x", "W", "B"], ["a"]), node("Gemm", ["x", "W2"], ["b"]),
               node("Concat", ["a", "b"], ["y"], axis=1)], {"W": W, "W2": W2, "B": B}),
    "add": binary("Add"), "sub": binary("Sub"), "mul": binary("Mul"), "max": binary("Max", 3),
    "min": binary("Min", 3), "sum": binary("Sum", 3), "mean": binary("Mean", 3),
    "matmul_scale_and_bias": lambda onnx: make_model(
        onnx, [node("MatMul", ["x", "W"], ["m"]), node("Mul", ["m", "S"], ["s"]), node("Div", ["s", "D"], ["d"]),
               node("Add", ["d", "B"], ["y"])], {"W": W, "B": B, "S": BN[0], "D": np.float32(1.5)}),
    "affine_after_activation": lambda onnx: make_model(   # Keras's inference BatchNormalization
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("Tanh", ["h"], ["t"]), node("Sub", ["t", "M"], ["c"]),
               node("Mul", ["c", "S"], ["s"]), node("Add", ["s", "B"], ["y"])],
        {"W": W, "B": B, "M": BN[2], "S": BN[0]}),
    "constant_minus_data": lambda onnx: make_model(
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("Relu", ["h"], ["r"]), node("Sub", ["B", "r"], ["y"])],
        {"W": W, "B": B}),
    "cast_to_float": lambda onnx: make_model(
        onnx, [node("Cast", ["x"], ["c"], to=1), node("Gemm", ["c", "W", "B"], ["h"]),
               node("Cast", ["h"], ["y"], to=1)],
        {"W": W, "B": B}),
    "prelu": lambda onnx: make_model(
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("PRelu", ["h", "slope"], ["y"])],
        {"W": W, "B": B, "slope": np.array([0.1, -0.5, 2.0])}),
    "dequantized_weights": lambda onnx: make_model(
        onnx, [node("DequantizeLinear", ["q", "scale"], ["Wd"], axis=1), node("Gemm", ["x", "Wd", "B"], ["y"])],
        {"q": RNG.integers(-127, 128, size=(4, 3)).astype(np.int8), "scale": np.array([0.01, 0.02, 0.005]), "B": B}),
    "dequantized_weights_per_row_zero_point": lambda onnx: make_model(   # axis 0 of a 4 x 3 kernel
        onnx, [node("DequantizeLinear", ["q", "scale", "zero"], ["Wd"], axis=0), node("Gemm", ["x", "Wd", "B"], ["y"])],
        {"q": RNG.integers(-100, 100, size=(4, 3)).astype(np.int8), "scale": np.array([0.01, 0.02, 0.03, 0.04]),
         "zero": np.array([1, -5, 10, 3], np.int8), "B": B}),
    "dequantized_weights_blocked": lambda onnx: make_model(   # opset 21: blocks of 3 rows of a 4 x 3 kernel
        onnx, [node("DequantizeLinear", ["q", "scale", "zero"], ["Wd"], axis=0, block_size=3),
               node("Gemm", ["x", "Wd", "B"], ["y"])],
        {"q": RNG.integers(-100, 100, size=(4, 3)).astype(np.int8), "scale": np.array([[0.01, 0.02, 0.03],
                                                                                      [0.04, 0.05, 0.06]]),
         "zero": np.array([[1, -5, 10], [3, 0, -2]], np.int8), "B": B}, opset=21),
    "flatten_of_a_constant_to_one_column": lambda onnx: make_model(   # axis == rank: shape (4, 1)
        onnx, [node("Flatten", ["w"], ["W1"], axis=1), node("MatMul", ["x", "W1"], ["y"])], {"w": W[:, 0]}),
    "flatten_last_axis_of_features": lambda onnx: make_model(   # axis=-1 of (samples, features): axis 1
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("Flatten", ["h"], ["y"], axis=-1)], {"W": W, "B": B}),
    "clip_at_zero_and_infinity": clip(0, np.inf),
    "batch_normalization_epsilon_0": lambda onnx: make_model(
        onnx, [node("Gemm", ["x", "W", "B"], ["h"]), node("BatchNormalization", ["h", "s", "b", "m", "v"], ["y"],
                                                          epsilon=0.0)],
        {"W": W, "B": B, "s": BN[0], "b": BN[1], "m": BN[2], "v": BN[3]}),
    "constant_node_weights": lambda onnx: make_model(
        onnx, [node("Constant", [], ["Wc"], value=onnx.numpy_helper.from_array(W, "Wc")),
               node("Transpose", ["Wc"], ["Wt"], perm=[1, 0]), node("Gemm", ["x", "Wt"], ["y"], transB=1)], {}),
}


@pytest.mark.parametrize("case", sorted(HAND_GRAPHS))
def test_hand_made_graph_imports_and_matches_onnxruntime(onnx, ort, case):
    proto = HAND_GRAPHS[case](onnx)
    onnx.checker.check_model(proto)
    shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = data(*shape)
    model = onnx_io.from_onnx(proto)
    got = model.predict(x, verbose=0)
    # onnxruntime's extended optimizations run DequantizeLinear + Gemm as an integer kernel that quantizes
    # the activations too: the graph's exact semantics are its basic level's
    level = "ORT_ENABLE_BASIC" if case.startswith("dequantized_weights") else None
    np.testing.assert_allclose(got, run_ort(ort, proto, {"x": x}, level)[0], **TOL)
    assert model.output_names == ["y"]


def test_fused_activations_come_back_as_one_dense(onnx):
    model = onnx_io.from_onnx(HAND_GRAPHS["matmul_sub_relu"](onnx))
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense"]
    assert model.layers[1].activation is fastmlp.activations.relu
    model = onnx_io.from_onnx(HAND_GRAPHS["leaky_relu_onnx_default"](onnx))   # alpha 0.01: its own layer
    assert isinstance(model.layers[-1], layers.LeakyReLU) and np.isclose(model.layers[-1].negative_slope, 0.01)


def test_two_inputs_two_outputs_and_pass_through_outputs(onnx, ort):
    proto = make_model(onnx, [node("Gemm", ["x", "W", "B"], ["a"]), node("Add", ["a", "z"], ["sum"]),
                              node("Relu", ["a"], ["act"]), node("Identity", ["act"], ["act_again"]),
                              node("Identity", ["z"], ["z_out"])],
                       {"W": W, "B": B}, inputs=(("x", [4]), ("z", [3])), outputs=("sum", "act", "act_again", "z_out"))
    onnx.checker.check_model(proto)
    model = onnx_io.from_onnx(proto)
    assert model.input_names == ["x", "z"] and model.output_names == ["sum", "act", "act_again", "z_out"]
    xs = {"x": data(4), "z": data(3, seed=1)}
    for g, w in zip(model.predict([xs["x"], xs["z"]], verbose=0), run_ort(ort, proto, xs)):
        np.testing.assert_allclose(g, w, **TOL)


def test_inputs_keep_their_names_and_outputs_get_distinct_ones(onnx, ort):
    """An input that is also an output stays "x" (its output gets a layer of its own, "x_1");
    outputs "y/1" and "y_1" (one name once '/' is '_') become "y_1" and "y_1_1"."""
    proto = make_model(onnx, [node("Gemm", ["x", "W"], ["y/1"]), node("Relu", ["x"], ["y_1"])], {"W": W},
                       outputs=("y/1", "x", "y_1"))
    onnx.checker.check_model(proto, full_check=True)
    model = onnx_io.from_onnx(proto)
    assert model.input_names == ["x"] and model.output_names == ["y_1", "x_1", "y_1_1"]
    x = data(4)
    for g, w in zip(model.predict({"x": x}, verbose=0), run_ort(ort, proto, {"x": x})):
        np.testing.assert_allclose(g, w, **TOL)


# =========================================================================== import: errors
def bad(onnx, nodes, inits=None, **kwargs):
    return make_model(onnx, nodes, {"W": W, "B": B, **(inits or {})}, **kwargs)


@pytest.mark.parametrize("case,message", [
    ("unsupported_op", "'Cos'.*my_cos|my_cos.*'Cos'"),
    ("matmul_of_two_inputs", "must be a constant"),
    ("gemm_transA", "transA"),
    ("hard_sigmoid_onnx_default", r"alpha=0\.2"),
    ("softmax_first_axis", "axis=0"),
    ("softplus_low_threshold", "'Greater'"),
    ("leaky_relu_negative_slope", r"\(LeakyRelu\).*negative_slope"),
    ("division_by_a_constant_zero", "Div by a constant holding 0"),
    ("scale_by_infinity", "inf or NaN"),
    ("prelu_like_of_two_values", "'Neg'"),
    ("bfloat16_rounding_not_into_a_dense", "rounded to bfloat16"),
    ("bfloat16_input_with_float32_weights", "weights are not bfloat16 values"),
    ("dequantize_scales_of_the_wrong_axis", "needs 4 values"),
    ("log_softmax_first_axis", "log_softmax.*axis=0"),
    ("softmax_of_rank_3_samples", "softmax .*rank-3"),
    ("clip_below_zero", "Clip"),
    ("constant_divided_by_data", "supported as"),
    ("training_batch_normalization", "training_mode"),
    ("batch_normalization_epsilon_0_variance_0", "epsilon=0.0 with a variance of 0"),
    ("flatten_to_one_column", r"axis=2 on a rank-2 input"),
    ("integer_input", "float32 or float64"),
    ("unknown_feature_size", "fixed size"),
    ("custom_domain", "domain 'com.example'"),
])
def test_unsupported_graphs_are_refused_naming_the_problem(onnx, case, message):
    h = onnx.helper
    gemm = node("Gemm", ["x", "W", "B"], ["h"])
    protos = {
        "unsupported_op": lambda: bad(onnx, [gemm, h.make_node("Cos", ["h"], ["y"], name="my_cos")]),
        "matmul_of_two_inputs": lambda: bad(onnx, [node("MatMul", ["x", "z"], ["y"])],
                                            inputs=(("x", [4]), ("z", [4, 3]))),
        "gemm_transA": lambda: bad(onnx, [node("Gemm", ["x", "W"], ["y"], transA=1)], inputs=(("x", [4]),)),
        "hard_sigmoid_onnx_default": lambda: bad(onnx, [gemm, node("HardSigmoid", ["h"], ["y"])]),
        "softmax_first_axis": lambda: bad(onnx, [gemm, node("Softmax", ["h"], ["y"], axis=0)]),
        "dequantize_scales_of_the_wrong_axis": lambda: bad(
            onnx, [node("DequantizeLinear", ["q", "s"], ["Wd"], axis=0), node("Gemm", ["x", "Wd"], ["y"])],
            {"q": np.ones((4, 3), np.int8), "s": np.full(3, 0.1, np.float32)}),
        "bfloat16_input_with_float32_weights": lambda: bad(   # (fastmlp's bfloat16 Dense rounds both)
            onnx, [node("Cast", ["x"], ["b"], to=16), node("Cast", ["b"], ["f"], to=1),
                   node("Gemm", ["f", "W", "B"], ["y"])], {"W": np.full((4, 3), 0.1, np.float32)}),
        "bfloat16_rounding_not_into_a_dense": lambda: bad(
            onnx, [gemm, node("Cast", ["h"], ["b"], to=16), node("Cast", ["b"], ["f"], to=1),
                   node("Relu", ["f"], ["y"])]),
        "prelu_like_of_two_values": lambda: bad(   # relu(h) + c * relu(-x): not a PReLU of anything
            onnx, [gemm, node("Relu", ["h"], ["p"]), node("Neg", ["x"], ["n"]), node("Relu", ["n"], ["r"]),
                   node("Mul", ["C", "r"], ["m"]), node("Gemm", ["m", "W"], ["m3"]), node("Add", ["p", "m3"], ["y"])],
            {"C": np.float32(0.5)}),
        "division_by_a_constant_zero": lambda: bad(
            onnx, [node("MatMul", ["x", "W"], ["m"]), node("Div", ["m", "D"], ["y"])], {"D": np.array([1, 0, 2.0])}),
        "scale_by_infinity": lambda: bad(onnx, [gemm, node("Mul", ["h", "S"], ["y"])], {"S": np.float32(np.inf)}),
        "leaky_relu_negative_slope": lambda: bad(onnx, [gemm, node("LeakyRelu", ["h"], ["y"], alpha=-0.5)]),
        "softplus_low_threshold": lambda: bad(onnx, [gemm, node("Softplus", ["h"], ["s"]),  # not softplus then
                                                     node("Greater", ["h", "T"], ["big"]),
                                                     node("Where", ["big", "h", "s"], ["y"])], {"T": np.float32(1)}),
        "log_softmax_first_axis": lambda: bad(onnx, [gemm, node("LogSoftmax", ["h"], ["y"], axis=0)]),
        "softmax_of_rank_3_samples": lambda: bad(onnx, [node("Softmax", ["x"], ["s"], axis=-1),
                                                        node("Flatten", ["s"], ["y"])], inputs=(("x", [2, 3]),)),
        "clip_below_zero": lambda: bad(onnx, [gemm, node("Clip", ["h", "lo"], ["y"])], {"lo": np.float32(-1)}),
        "constant_divided_by_data": lambda: bad(onnx, [gemm, node("Relu", ["h"], ["r"]),
                                                       node("Div", ["B", "r"], ["y"])]),
        "training_batch_normalization": lambda: bad(
            onnx, [gemm, node("BatchNormalization", ["h", "s", "b", "m", "v"], ["y"], training_mode=1)],
            {"s": BN[0], "b": BN[1], "m": BN[2], "v": BN[3]}),
        "batch_normalization_epsilon_0_variance_0": lambda: bad(
            onnx, [gemm, node("BatchNormalization", ["h", "s", "b", "m", "v"], ["y"], epsilon=0.0)],
            {"s": BN[0], "b": BN[1], "m": BN[2], "v": np.array([1.0, 0.0, 2.0])}),
        "flatten_to_one_column": lambda: bad(onnx, [gemm, node("Flatten", ["h"], ["y"], axis=2)]),
        "integer_input": lambda: bad(onnx, [gemm, node("Relu", ["h"], ["y"])], elem=7),
        "unknown_feature_size": lambda: bad(onnx, [gemm, node("Relu", ["h"], ["y"])], inputs=(("x", ["F"]),)),
        "custom_domain": lambda: bad(onnx, [gemm, h.make_node("Swish", ["h"], ["y"], domain="com.example")]),
    }
    proto = protos[case]()
    with pytest.raises(ValueError, match=message):
        onnx_io.from_onnx(proto, verify=case != "custom_domain")


def test_a_sparse_initializer_is_refused_as_such(onnx, ort):
    h = onnx.helper
    proto = make_model(onnx, [node("Gemm", ["x", "Ws", "B"], ["y"], name="g")], {"B": B})
    values = onnx.numpy_helper.from_array(np.array([1.0, -2.0], np.float32), "Ws")
    proto.graph.sparse_initializer.append(h.make_sparse_tensor(values, onnx.numpy_helper.from_array(
        np.array([0, 5], np.int64), "Ws_indices"), [4, 3]))
    onnx.checker.check_model(proto)
    x = data(4)
    assert run_ort(ort, proto, {"x": x})[0].shape == (ROWS, 3)
    with pytest.raises(ValueError, match=r"'g' \(Gemm\): its weight \(B\) \('Ws'\) is a sparse initializer"):
        onnx_io.from_onnx(proto)


def test_weights_in_an_external_data_file_load_and_a_missing_one_is_a_clear_error(onnx, tmp_path):
    proto = HAND_GRAPHS["matmul_add"](onnx)
    x = data(4)
    want = onnx_io.from_onnx(proto).predict(x, verbose=0)
    onnx.save_model(proto, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.weights", size_threshold=0)
    np.testing.assert_array_equal(fastmlp.models.load_model(tmp_path / "ext.onnx").predict(x, verbose=0), want)
    (tmp_path / "ext.weights").unlink()
    with pytest.raises(ValueError, match="ext.onnx.*external weight data"):
        fastmlp.models.load_model(tmp_path / "ext.onnx")


def test_load_model_refuses_bad_onnx_files_and_mmap(onnx, tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"this is not a protobuf \xff\xfe")
    with pytest.raises(ValueError, match="junk.onnx"):
        fastmlp.models.load_model(path)
    good = tmp_path / "good.onnx"
    good.write_bytes(HAND_GRAPHS["relu"](onnx).SerializeToString())
    with pytest.raises(ValueError, match="mmap"):
        fastmlp.models.load_model(good, mmap=True)
    assert fastmlp.saving.load_onnx(good).output_names == ["y"]


def test_a_nested_model_called_on_two_tensors_gives_each_call_its_own_output(onnx, ort):
    """The nested model's layers run twice, on different inputs; its BatchNormalization folds into
    its Dense at both calls."""
    inner_in = fastmlp.Input(shape=(5,))
    h = layers.BatchNormalization(name="bn")(layers.Dense(6, name="d")(inner_in))
    block = fastmlp.Model(inner_in, layers.Dense(4, activation="relu", name="top")(h), name="block")
    block.layers[2].set_weights([w + np.random.default_rng(3).uniform(0.5, 1.5, w.shape)
                                 for w in block.layers[2].get_weights()])
    a, b = fastmlp.Input(shape=(5,), name="a"), fastmlp.Input(shape=(5,), name="b")
    model = fastmlp.Model([a, b], layers.Subtract()([block(a), block(b)]))
    x = [data(5), data(5, seed=1)]
    want = model.predict(x, verbose=0)
    assert np.abs(want).max() > 0.1
    proto = check_export(onnx, ort, model, x)
    assert "BatchNormalization" not in ops(proto) and ops(proto).count("Gemm") == 4


def test_a_layer_called_twice_writes_its_weights_once(onnx, ort):
    shared = layers.Dense(4, activation="relu", name="shared")
    a, b = fastmlp.Input(shape=(3,), name="a"), fastmlp.Input(shape=(3,), name="b")
    out = layers.Dense(2, name="out")(layers.Concatenate()([shared(a), shared(b)]))
    model = fastmlp.Model([a, b], out)
    proto = check_export(onnx, ort, model, [data(3), data(3, seed=1)])
    assert [i.name for i in proto.graph.initializer].count("shared/kernel") == 1
    assert ops(proto).count("Gemm") == 3 and len(proto.graph.initializer) == 4


@pytest.mark.parametrize("op", ["Add", "MatMul", "Concat", "Gather"])
def test_folding_constants_past_what_the_weights_could_need_is_refused_before_computing(onnx, op):
    """Two 2,000-value initializers folded by Add (broadcast) or MatMul into a 2000 x 2000 bias took
    gigabytes (and a stray MemoryError at 100,000) from a small file: a folded constant may hold at
    most twice the graph's weights (plus 2**20 values)."""
    n = 2000
    a, b = np.ones((n, 1), np.float32), np.ones((1, n), np.float32)
    if op == "Concat":   # one initializer read many times
        fold = [node("Concat", ["a"] * 600, ["c"], axis=0)]
    elif op == "Gather":   # rows of a table, many times over
        fold = [node("Gather", ["b", "ids"], ["c"], axis=0)]
    else:
        fold = [node(op, ["a", "b"], ["c"])]
    proto = bad(onnx, fold + [node("Gemm", ["x", "W", "c"], ["y"])],
                {"a": a, "b": b, "ids": np.zeros(600, np.int64)})
    with pytest.raises(ValueError, match="folding its constants would make"):
        onnx_io.from_onnx(proto, verify=False)


def test_weights_in_constant_nodes_count_towards_what_folding_may_make(onnx, ort):
    """MatMul(x, Mul(W, 0.5)) with a 1100 x 1000 W held in a Constant node (not an initializer):
    folding the Mul makes as many values as W holds, which a graph's weights allow."""
    h = onnx.helper
    w = np.random.default_rng(0).normal(size=(1100, 1000)).astype(np.float32)
    nodes = [h.make_node("Constant", [], ["W"], value=onnx.numpy_helper.from_array(w)),
             node("Mul", ["W", "half"], ["Wh"]), node("MatMul", ["x", "Wh"], ["y"])]
    proto = make_model(onnx, nodes, {"half": np.float32(0.5)}, inputs=(("x", [1100]),))
    x = np.random.default_rng(1).normal(size=(8, 1100)).astype(np.float32)
    np.testing.assert_allclose(onnx_io.from_onnx(proto).predict(x, verbose=0), run_ort(ort, proto, {"x": x})[0],
                               rtol=1e-4, atol=1e-4)


def test_an_unused_constant_node_does_not_raise_the_folding_bound(onnx):
    """Only the values the file holds, in Constant nodes something reads, count: an unused sparse
    Constant declaring 10**6 x 10**6 values lifted the bound by 2 * 10**12 before."""
    h = onnx.helper
    n = 2000
    sparse = h.make_sparse_tensor(onnx.numpy_helper.from_array(np.zeros(0, np.float32), "v"),
                                  onnx.numpy_helper.from_array(np.zeros((0, 2), np.int64), "i"), [10**6, 10**6])
    nodes = [h.make_node("Constant", [], ["unused"], sparse_value=sparse), node("Add", ["a", "b"], ["c"]),
             node("Gemm", ["x", "W", "c"], ["y"])]
    proto = bad(onnx, nodes, {"a": np.ones((n, 1), np.float32), "b": np.ones((1, n), np.float32)})
    with pytest.raises(ValueError, match="folding its constants would make"):
        onnx_io.from_onnx(proto, verify=False)
