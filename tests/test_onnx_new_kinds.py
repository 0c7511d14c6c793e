"""ONNX export and import of the preprocessing, normalization, pass-through and embedding kinds:
Normalization, Rescaling, LayerNormalization, UnitNormalization, Identity, Reshape,
ActivityRegularization, GaussianDropout, AlphaDropout and Embedding (integer ids as the graph's
integer inputs).

Exported graphs pass ``onnx.checker.check_model(full_check=True)`` and, run by onnxruntime on
1,000 rows, give ``model.predict``'s outputs to 1e-5.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import layers as L  # noqa: E402
from fastmlp.saving import onnx_io  # noqa: E402

ROWS = 1000
TOL = dict(rtol=1e-5, atol=1e-5)


def numbers(*shape, seed=0, scale=3.0, shift=1.0):
    return (np.random.default_rng(seed).normal(size=(ROWS,) + shape) * scale + shift).astype(np.float32)


def ids(*shape, high=11, seed=1, dtype=np.int32):
    return np.random.default_rng(seed).integers(0, high, size=(ROWS,) + shape).astype(dtype)


def run_ort(ort, proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def check_export(onnx, ort, model, xs, **kwargs):
    """Export, check the graph, run it in onnxruntime on ``xs`` (one array per input) and compare
    with ``model.predict``.  Returns the proto."""
    proto = onnx_io.to_onnx(model, **kwargs)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == list(model.input_names)
    got = run_ort(ort, proto, dict(zip(model.input_names, xs)))
    want = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    want = list(want) if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, **TOL)
    return proto


def ops(proto):
    return [n.op_type for n in proto.graph.node]


def input_types(onnx, proto):
    return {i.name: onnx.TensorProto.DataType.Name(i.type.tensor_type.elem_type) for i in proto.graph.input}


# =========================================================================== export
def all_kinds_model(x_num, lib=fastmlp):
    """Numbers → Normalization (adapted) → Rescaling → Dense → LayerNormalization →
    UnitNormalization, int32 ids → Embedding → Flatten, concatenated, with the dropouts and the
    pass-through kinds, into a softmax Dense (built with ``lib``: fastmlp or keras)."""
    L = lib.layers
    num = lib.Input(shape=(x_num.shape[1],), name="numbers")
    cat = lib.Input(shape=(4,), dtype="int32", name="ids")
    norm = L.Normalization()
    norm.adapt(x_num)
    h = norm(num)
    h = L.Rescaling(0.5, offset=0.25)(h)
    h = L.Dense(8, activation="tanh")(h)
    h = L.LayerNormalization()(h)
    h = L.UnitNormalization()(h)
    h = L.GaussianDropout(0.3)(h)
    e = L.Embedding(11, 3)(cat)
    e = L.Flatten()(e)
    e = L.AlphaDropout(0.2)(e)
    c = L.Concatenate()([h, e])
    c = L.ActivityRegularization(l1=0.01, l2=0.01)(c)
    c = L.Identity()(c)
    c = L.Dropout(0.5)(c)
    out = L.Dense(3, activation="softmax", name="probabilities")(c)
    return lib.Model([num, cat], out)


@pytest.mark.parametrize("opset", [17, 18])
def test_a_functional_model_of_all_the_new_kinds_exports_and_onnxruntime_predicts_the_same(onnx, ort, opset):
    fastmlp.utils.set_random_seed(0)
    x = numbers(6)
    model = all_kinds_model(x)
    proto = check_export(onnx, ort, model, [x, ids(4)], opset_version=opset)
    assert input_types(onnx, proto) == {"numbers": "FLOAT", "ids": "INT32"}
    kinds = ops(proto)
    assert "LayerNormalization" in kinds and "Gather" in kinds and "ReduceSumSquare" in kinds
    assert not {"Dropout", "RandomNormal", "RandomUniform"} & set(kinds)   # the dropouts are gone at inference
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim[1:]] == [3]


def test_the_exported_graph_computes_what_keras_computes_with_the_same_weights(onnx, ort):
    keras = pytest.importorskip("keras")
    keras.config.set_floatx("float32")
    keras.utils.set_random_seed(0)
    x, i = numbers(6), ids(4)
    k_model = all_kinds_model(x, keras)
    model = all_kinds_model(x)
    model.set_weights(k_model.get_weights())
    got = run_ort(ort, onnx_io.to_onnx(model), {"numbers": x, "ids": i})[0]
    want = keras.ops.convert_to_numpy(k_model.predict([x, i], verbose=0))
    np.testing.assert_allclose(got, want, **TOL)


def test_the_cli_style_sequential_model_exports(onnx, ort):
    fastmlp.utils.set_random_seed(1)
    x = numbers(4, scale=10.0, shift=-3.0)
    norm = L.Normalization()
    norm.adapt(x)
    model = fastmlp.Sequential([fastmlp.Input((4,)), norm, L.Dense(16, activation="relu"),
                                L.Dense(3, activation="softmax")])
    proto = check_export(onnx, ort, model, [x])
    assert ops(proto)[:2] == ["Sub", "Div"]


def test_normalization_uses_keras_std_floor_epsilon_and_inverts(onnx, ort):
    # a zero variance: std is epsilon (1e-7), so the feature is scaled by 1e7, not divided by zero
    mean, var = [1.0, -2.0, 0.5], [4.0, 0.0, 0.25]
    x = numbers(3, scale=1e-6, shift=0.0) + np.array(mean, np.float32)
    model = fastmlp.Sequential([fastmlp.Input((3,)), L.Normalization(mean=mean, variance=var)])
    check_export(onnx, ort, model, [x])
    assert np.abs(model.predict(x, verbose=0)[:, 1]).max() > 1.0   # the floor matters for these rows
    inverse = fastmlp.Sequential([fastmlp.Input((3,)), L.Normalization(mean=mean, variance=var, invert=True)])
    proto = check_export(onnx, ort, inverse, [numbers(3)])
    assert ops(proto) == ["Mul", "Add"]


def test_rescaling_with_per_feature_scale_and_offset_and_without_offset(onnx, ort):
    model = fastmlp.Sequential([fastmlp.Input((3,)), L.Rescaling([1.0, -2.0, 0.5], offset=[0.0, 1.0, -1.0]),
                                L.Rescaling(1.0 / 255), L.Dense(2)])
    proto = check_export(onnx, ort, model, [numbers(3)])
    assert ops(proto) == ["Mul", "Add", "Mul", "Gemm"]


@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False), (False, False)])
def test_layer_normalization_with_and_without_gamma_and_beta(onnx, ort, center, scale):
    fastmlp.utils.set_random_seed(2)
    ln = L.LayerNormalization(epsilon=1e-2, center=center, scale=scale)
    model = fastmlp.Sequential([fastmlp.Input((5,)), L.Dense(7), ln])
    weights = [np.random.default_rng(3).normal(size=w.shape).astype(np.float32) for w in ln.get_weights()]
    ln.set_weights(weights)   # gamma and beta other than ones and zeros
    proto = check_export(onnx, ort, model, [numbers(5)])
    node = [n for n in proto.graph.node if n.op_type == "LayerNormalization"][0]
    assert len(node.input) == (3 if center else 2)


def test_unit_normalization_keeps_zero_rows_zero_and_scales_tiny_ones(onnx, ort):
    x = numbers(4)
    x[:10] = 0.0
    x[10:20] *= 1e-20   # norms under 1e-12: fastmlp multiplies by 1e12
    model = fastmlp.Sequential([fastmlp.Input((4,)), L.UnitNormalization()])
    for opset in (17, 18):
        proto = onnx_io.to_onnx(model, opset_version=opset)
        onnx.checker.check_model(proto, full_check=True)
        got = run_ort(ort, proto, {model.input_names[0]: x})[0]
        want = model.predict(x, verbose=0)
        assert np.all(got[:10] == 0.0) and np.all(np.isfinite(got))
        np.testing.assert_allclose(got[20:], want[20:], **TOL)
        np.testing.assert_allclose(got[10:20], want[10:20], rtol=1e-5, atol=1e-25)
        np.testing.assert_allclose(np.linalg.norm(got[20:], axis=1), 1.0, rtol=1e-5)


def test_sample_shaped_inputs_normalize_over_the_last_axis_then_reshape_flat(onnx, ort):
    x = numbers(2, 3)
    norm = L.Normalization()
    norm.adapt(x)
    model = fastmlp.Sequential([fastmlp.Input((2, 3)), norm, L.Rescaling(2.0), L.LayerNormalization(),
                                L.UnitNormalization(), L.Identity(), L.Reshape((-1,)), L.Dense(4)])
    check_export(onnx, ort, model, [x])


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32"])
def test_embedding_then_flatten_gathers_by_the_input_ids(onnx, ort, dtype):
    fastmlp.utils.set_random_seed(4)
    model = fastmlp.Sequential([fastmlp.Input((5,), dtype=dtype), L.Embedding(13, 4), L.Flatten(),
                                L.Dense(3, activation="softmax")])
    x = ids(5, high=13, dtype=np.dtype(dtype))
    proto = check_export(onnx, ort, model, [x])
    assert input_types(onnx, proto)[model.input_names[0]] == dtype.upper().replace("FLOAT32", "FLOAT")
    assert ops(proto) == (["Gather"] if dtype == "int64" else ["Cast", "Gather"]) + ["Flatten", "Gemm", "Softmax"]


def test_one_int_input_feeds_an_embedding_and_as_numbers_a_dense(onnx, ort):
    fastmlp.utils.set_random_seed(5)
    cat = fastmlp.Input((3,), dtype="int64", name="cat")
    e = L.Flatten()(L.Embedding(7, 2)(cat))
    n = L.Rescaling(0.1)(cat)
    out = L.Dense(2)(L.Concatenate()([e, n]))
    model = fastmlp.Model(cat, out)
    x = ids(3, high=7, dtype=np.int64)
    proto = check_export(onnx, ort, model, [x])
    assert ops(proto).count("Cast") == 1
    from fastmlp.saving import onnx_import
    back = onnx_import.from_onnx(proto)   # the Cast to float is the identity; the Gather an Embedding
    assert "Embedding" in kinds(back) and back.inputs[0].dtype == "int64"
    np.testing.assert_allclose(back.predict(x, verbose=0), run_ort(ort, proto, {"cat": x})[0], **TOL)


def test_an_integer_input_signature_sets_the_ids_dtype(onnx, ort):
    model = fastmlp.Sequential([fastmlp.Input((2,), dtype="int32"), L.Embedding(5, 3), L.Flatten()])
    spec = type("Spec", (), {"shape": (None, 2), "dtype": "int64"})()
    proto = onnx_io.to_onnx(model, input_signature=[spec])
    assert input_types(onnx, proto)[model.input_names[0]] == "INT64"
    x = ids(2, high=5, dtype=np.int64)
    np.testing.assert_allclose(run_ort(ort, proto, {model.input_names[0]: x})[0], model.predict(x, verbose=0),
                               **TOL)
    bad = type("Spec", (), {"shape": (None, 2), "dtype": "float32"})()
    with pytest.raises(ValueError, match="integer dtype"):
        onnx_io.to_onnx(model, input_signature=[bad])


def test_the_fastmlp_export_command_writes_a_graph_onnxruntime_runs(onnx, ort, tmp_path, capsys):
    from fastmlp.__main__ import main
    fastmlp.utils.set_random_seed(6)
    x = numbers(4)
    norm = L.Normalization()
    norm.adapt(x)
    model = fastmlp.Sequential([fastmlp.Input((4,), name="features"), norm, L.Dense(16, activation="relu"),
                                L.Dense(3, activation="softmax")])
    path, out = str(tmp_path / "model.fmlp"), str(tmp_path / "model.onnx")
    model.save(path)
    assert main(["export", path, "--format", "onnx", "-o", out]) == 0
    assert "wrote" in capsys.readouterr().out
    proto = onnx.load(out)
    onnx.checker.check_model(proto, full_check=True)
    got = run_ort(ort, proto, {proto.graph.input[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), **TOL)
    # int8 weights: the graph computes what the model read back from an int8 file computes
    model.save(path, dtype="int8")
    assert main(["export", path, "--format", "onnx", "--dtype", "int8", "-o", out, "--force"]) == 0
    proto = onnx.load(out)
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node].count("MatMulInteger") == 2
    got = run_ort(ort, proto, {proto.graph.input[0].name: x})[0]
    np.testing.assert_allclose(got, fastmlp.models.load_model(path).predict(x, verbose=0), **TOL)


# =========================================================================== import
def kinds(model):
    return [type(layer).__name__ for layer in model.layers]


def test_an_exported_all_kinds_model_imports_back_and_predicts_what_onnxruntime_computes(onnx, ort):
    from fastmlp.saving import onnx_import
    fastmlp.utils.set_random_seed(7)
    x = numbers(6)
    for opset in (17, 18):
        proto = onnx_io.to_onnx(all_kinds_model(x), opset_version=opset)
        model = onnx_import.from_onnx(proto)
        found = kinds(model)
        assert {"LayerNormalization", "UnitNormalization", "Embedding", "BatchNormalization"} <= set(found)
        assert "ReduceSumSquare" in ops(proto)
        xs = [x, ids(4)]
        want = run_ort(ort, proto, dict(zip(model.input_names, xs)))[0]
        np.testing.assert_allclose(model.predict(xs, verbose=0), want, **TOL)


def test_the_cli_style_model_imports_its_normalization_as_a_per_feature_affine_layer(onnx, ort, tmp_path):
    fastmlp.utils.set_random_seed(8)
    x = numbers(4, scale=10.0)
    norm = L.Normalization()
    norm.adapt(x)
    model = fastmlp.Sequential([fastmlp.Input((4,)), norm, L.Dense(16, activation="relu"),
                                L.Dense(3, activation="softmax")])
    path = str(tmp_path / "m.onnx")
    model.export(path, format="onnx", verbose=False)
    back = fastmlp.models.load_model(path)
    assert kinds(back)[1:] == ["BatchNormalization", "Dense", "Dense"]
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0), **TOL)


@pytest.mark.parametrize("make", [
    lambda: L.Normalization(mean=np.arange(5.0), variance=np.arange(1.0, 6.0)),
    lambda: L.Normalization(mean=np.arange(5.0), variance=np.arange(1.0, 6.0), invert=True),
    lambda: L.Rescaling(0.5, offset=1.0),
    lambda: L.Rescaling(np.arange(1.0, 21.0).reshape(4, 5), offset=-2.0),
], ids=["normalization", "normalization_inverted", "rescaling", "rescaling_per_position"])
def test_normalization_and_rescaling_of_samples_of_more_axes_round_trip(onnx, ort, tmp_path, make):
    """On (samples, 4, 5) data the per-feature affine map imports as a Rescaling (fastmlp's
    BatchNormalization takes (samples, features) data)."""
    inp = fastmlp.Input(shape=(4, 5), name="x")
    model = fastmlp.Model(inp, L.Dense(2, name="y")(L.Flatten()(make()(inp))))
    path = str(tmp_path / "m.onnx")
    model.export(path, format="onnx", verbose=False)
    back = fastmlp.models.load_model(path)
    assert kinds(back)[1:] == ["Rescaling", "Flatten", "Dense"]
    x = numbers(4, 5)
    want = run_ort(ort, onnx.load(path), {"x": x})[0]
    np.testing.assert_allclose(back.predict(x, verbose=0), want, **TOL)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, **TOL)


def graph(onnx, nodes, inputs, output, inits=(), opset=18):
    h, T = onnx.helper, onnx.TensorProto
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info(n, t, ["b"] + list(s)) for n, t, s in inputs],
                     [h.make_tensor_value_info(output, T.FLOAT, ["b", "features"])],
                     initializer=[onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def test_onnx_layer_normalization_and_an_l2_normalization_import_as_fastmlp_layers(onnx, ort):
    from fastmlp.saving import onnx_import
    h, T = onnx.helper, onnx.TensorProto
    gamma = np.array([1.0, 2.0, -0.5, 3.0], np.float32)
    proto = graph(onnx, [h.make_node("LayerNormalization", ["x", "gamma"], ["n"], epsilon=1e-3),
                         h.make_node("ReduceSumSquare", ["n", "axes"], ["ss"], keepdims=1),
                         h.make_node("Sqrt", ["ss"], ["norm"]), h.make_node("Max", ["norm", "floor"], ["safe"]),
                         h.make_node("Div", ["n", "safe"], ["y"])],
                  [("x", T.FLOAT, (4,))], "y", [("gamma", gamma), ("axes", np.array([-1])),
                                                 ("floor", np.float32(1e-12))])
    model = onnx_import.from_onnx(proto)
    assert kinds(model)[1:] == ["LayerNormalization", "UnitNormalization"]
    ln = model.layers[1]
    assert ln.beta is None and ln.epsilon == pytest.approx(1e-3)
    x = numbers(4)
    np.testing.assert_allclose(model.predict(x, verbose=0), run_ort(ort, proto, {"x": x})[0], **TOL)


def l2_normalization(onnx, form, limit=None):
    """x / max(sqrt(ReduceSumSquare(x)), limit) ("norm"), x / sqrt(max(ReduceSumSquare(x), limit))
    ("squared"), x * min(1 / sqrt(ReduceSum(x * x)), limit) ("inverse", as Keras writes it), x /
    sqrt(ReduceSumSquare(x)) ("none") or ONNX's LpNormalization ("lp")."""
    h, T = onnx.helper, onnx.TensorProto
    if form == "lp":
        nodes = [h.make_node("LpNormalization", ["x"], ["y"], axis=-1, p=2, name="lp")]
    elif form == "inverse":
        nodes = [h.make_node("Mul", ["x", "x"], ["sq"]), h.make_node("ReduceSum", ["sq", "axes"], ["ss"]),
                 h.make_node("Sqrt", ["ss"], ["norm"]), h.make_node("Div", ["one", "norm"], ["inv"]),
                 h.make_node("Min", ["inv", "limit"], ["capped"]),
                 h.make_node("Mul", ["x", "capped"], ["y"], name="l2")]
    else:
        ss = "ss" if form != "squared" else "ss_floored"
        root = "norm" if form != "norm" else "norm_floored"
        nodes = [h.make_node("ReduceSumSquare", ["x", "axes"], ["ss"]), h.make_node("Sqrt", [ss], ["norm"]),
                 h.make_node("Div", ["x", root], ["y"], name="l2")]
        if form == "squared":
            nodes.insert(1, h.make_node("Max", ["ss", "limit"], ["ss_floored"]))
        if form == "norm":
            nodes.insert(2, h.make_node("Max", ["norm", "limit"], ["norm_floored"]))
    inits = [("axes", np.array([-1])), ("one", np.float32(1))] + ([] if limit is None else [("limit", limit)])
    return graph(onnx, nodes, [("x", T.FLOAT, (4,))], "y", inits)


@pytest.mark.parametrize("form,limit", [("norm", np.float32(1e-12)), ("squared", np.float32(1e-24)),
                                        ("inverse", np.float32(1e12))])
def test_l2_normalizations_bounded_as_fastmlp_bounds_them_import_as_unit_normalization(onnx, ort, form, limit):
    """The norm floored at 1e-12 (or 1 / norm capped at 1e12, or the sum of squares floored at
    1e-24): onnxruntime's numbers are fastmlp's, also for all-zero rows and norms below 1e-12."""
    from fastmlp.saving import onnx_import
    proto = l2_normalization(onnx, form, limit)
    x = numbers(4)
    x[:10] = 0.0
    x[10:20] *= 1e-20
    x[20:30] *= 1e-9
    model = onnx_import.from_onnx(proto)
    assert kinds(model)[1:] == ["UnitNormalization"]
    got, want = model.predict(x, verbose=0), run_ort(ort, proto, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)


@pytest.mark.parametrize("form,limit,message", [
    ("norm", np.float32(1e-6), "floors the norm at 1e-06; fastmlp's UnitNormalization floors the norm at 1e-12"),
    ("norm", np.float32(0.0), "floors the norm at 0;"),
    ("squared", np.float32(1e-12), "floors the sum of squares at 1e-12; fastmlp's UnitNormalization floors the "
                                   "sum of squares at 1e-24"),
    ("inverse", np.float32(1e7), "caps 1 / ||x|| at 1e[+]07"),
    ("none", None, "no floor"),
    ("lp", None, "LpNormalization divides by the norm with no floor"),
])
def test_l2_normalizations_bounded_otherwise_are_refused_naming_the_node_and_the_bound(onnx, ort, form, limit,
                                                                                        message):
    """Another bound, or none (x / ||x||: onnxruntime's LpNormalization), gives other numbers than
    fastmlp's x / max(||x||, 1e-12) for samples of small norm: refused, not imported."""
    from fastmlp.saving import onnx_import
    with pytest.raises(ValueError, match=r"ONNX node '(l2|lp)' .*" + message):
        onnx_import.from_onnx(l2_normalization(onnx, form, limit))


def test_a_gather_on_float_ids_cast_to_int64_imports_as_an_embedding(onnx, ort):
    from fastmlp.saving import onnx_import
    h, T = onnx.helper, onnx.TensorProto
    table = np.random.default_rng(9).normal(size=(6, 2)).astype(np.float32)
    proto = graph(onnx, [h.make_node("Cast", ["x"], ["i"], to=T.INT64), h.make_node("Gather", ["table", "i"], ["e"]),
                         h.make_node("Flatten", ["e"], ["y"], axis=1)],
                  [("x", T.FLOAT, (3,))], "y", [("table", table)])
    model = onnx_import.from_onnx(proto)
    assert kinds(model)[1:] == ["Embedding", "Flatten"]
    x = ids(3, high=6, dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), run_ort(ort, proto, {"x": x})[0], **TOL)


def test_gathers_and_casts_fastmlp_cannot_import_are_refused_by_name(onnx):
    from fastmlp.saving import onnx_import
    h, T = onnx.helper, onnx.TensorProto
    table = np.zeros((6, 2), np.float32)
    gather_floats = graph(onnx, [h.make_node("Gather", ["table", "x"], ["y"], name="g")],
                          [("x", T.FLOAT, (3,))], "y", [("table", table)])
    with pytest.raises(ValueError, match="must be integers"):
        onnx_import.from_onnx(gather_floats, verify=False)
    truncate = graph(onnx, [h.make_node("Cast", ["x"], ["i"], to=T.INT64),
                            h.make_node("Cast", ["i"], ["y"], to=T.FLOAT, name="back")],
                     [("x", T.FLOAT, (3,))], "y")
    with pytest.raises(ValueError, match="only as the indices of a Gather"):
        onnx_import.from_onnx(truncate)
    l1 = graph(onnx, [h.make_node("LpNormalization", ["x"], ["y"], axis=-1, p=1)], [("x", T.FLOAT, (3,))], "y")
    with pytest.raises(ValueError, match="p=2"):
        onnx_import.from_onnx(l1)
