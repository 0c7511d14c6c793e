"""Functional models on the graph engine (csrc/engine.c, csrc/net_impl.h,
models/functional.py): gradients by central differences in float64 through the
graph features (shared layers, tensors with several readers, outputs that are also
read, loss weights, BatchNormalization and Dropout, activations that keep Z), the
forward against a NumPy walk of the graph, saving and resuming, configs, weight
sharing between models, errors, the summary and the layer kinds Keras files use.

tests/test_functional_keras.py checks the same API against Keras itself; this file
needs only NumPy and the reference formulas of tests/reference.py."""
import json
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import layers
from fastmlp.models import plan as plan_module

import reference as ref
from test_saving import seal, split

L = layers


@pytest.fixture
def float64():
    fastmlp.config.set_floatx("float64")
    yield
    fastmlp.config.set_floatx("float32")


# =========================================================================== helpers
def randomize(model, seed=1, scale=0.9):
    """Random weights (moving variances positive), so that no gradient is trivially zero."""
    rng = np.random.default_rng(seed)
    plan_module.ensure_attached(model)
    for w in model._plan.weights:
        value = getattr(w.layer, w.spec.name)
        if w.spec.name == "moving_variance":
            value[...] = rng.uniform(0.5, 1.5, value.shape)
        else:
            value[...] = rng.uniform(-scale, scale, value.shape)


def engine_args(model, y):
    """(Y, labels) per model output from y (a list in output order): float targets go to
    Y, integer labels to labels, as the engine reads them."""
    ys = y if isinstance(y, list) else [y]
    assert len(ys) == len(model.outputs)
    return ([t if t.dtype.kind == "f" else None for t in ys],
            [t.astype(np.int64) if t.dtype.kind != "f" else None for t in ys])


def loss_and_grads(model, x, y, training=False, seed=0, step=0):
    """model._net.loss_and_grads with lists, as tests/test_prelu.py calls it."""
    plan_module.ensure_attached(model)
    xs = x if isinstance(x, list) else [x]
    Y, labels = engine_args(model, y)
    specs = model._loss_specs()
    return lambda p: model._net.loss_and_grads(p, xs, Y, labels, None, specs, seed, step, training)


def check_gradients(model, x, y, training=False, seed=0, step=0):
    f = loss_and_grads(model, x, y, training, seed, step)
    ref.assert_gradient_by_central_difference(f, model._params, model._variables)
    return f


def grads_by_weight(model, x, y, **kwargs):
    """{(layer name, weight name): gradient array} of one loss_and_grads call."""
    f = loss_and_grads(model, x, y, **kwargs)
    _, g = f(model._params.copy())
    return {(w.layer.name, w.spec.name): g[w.offset:w.offset + w.size].reshape(w.shape)
            for w in model._plan.weights if w.trainable}


def numpy_forward(model, xs):
    """The model's outputs computed in float64 NumPy by walking its nodes with the
    reference formulas (inference: Dropout is the identity, BatchNormalization uses
    the moving statistics)."""
    vals = {id(t): np.asarray(x, np.float64).reshape(len(x), -1) for t, x in zip(model.inputs, xs)}
    for node in model._nodes:
        layer = node.layer
        ins = [vals[id(t)] for t in node.inputs]
        kind = type(layer).__name__
        if getattr(layer, "_is_model", False):
            for t, o in zip(node.outputs, numpy_forward(layer, ins)):
                vals[id(t)] = o
            continue
        if kind == "Dense":
            z = ins[0] @ np.float64(layer.kernel) + (0 if layer.bias is None else np.float64(layer.bias))
            out = ref.activation(fastmlp.activations.serialize(layer.activation), z)
        elif kind == "Activation":
            out = ref.activation(fastmlp.activations.serialize(layer.activation), ins[0])
        elif kind == "ReLU":
            out = np.clip(ins[0], 0, layer.max_value) if layer.max_value is not None else \
                np.where(ins[0] > 0, ins[0], layer.negative_slope * ins[0])
        elif kind == "LeakyReLU":
            out = np.where(ins[0] > 0, ins[0], layer.negative_slope * ins[0])
        elif kind == "ELU":
            out = ref.activation("elu", ins[0], layer.alpha)
        elif kind == "Softmax":
            out = ref.softmax(ins[0])
        elif kind == "Add":
            out = np.sum(ins, axis=0)
        elif kind == "Subtract":
            out = ins[0] - ins[1]
        elif kind == "Multiply":
            out = np.prod(ins, axis=0)
        elif kind == "Average":
            out = np.mean(ins, axis=0)
        elif kind == "Maximum":
            out = np.max(ins, axis=0)
        elif kind == "Minimum":
            out = np.min(ins, axis=0)
        elif kind == "Concatenate":
            out = np.concatenate(ins, axis=-1)
        elif kind in ("Dropout", "GaussianNoise", "Flatten"):
            out = ins[0]
        elif kind == "PReLU":
            out = np.where(ins[0] > 0, ins[0], np.float64(layer.alpha) * ins[0])
        elif kind == "BatchNormalization":
            out = (np.float64(layer.gamma) * (ins[0] - layer.moving_mean) /
                   np.sqrt(np.float64(layer.moving_variance) + layer.epsilon) + layer.beta)
        else:
            raise NotImplementedError(kind)
        vals[id(node.outputs[0])] = np.asarray(out, np.float64)
    return [vals[id(t)] for t in model.outputs]


def as_list(out):
    return out if isinstance(out, list) else [out]


# =========================================================================== 1. gradients
def shared_branches(separate=False):
    """x -> p (relu), q (sigmoid); one Dense(4, tanh) applied to both (or two layers,
    'left' and 'right', when separate) -> multiply -> Dense(3)."""
    fastmlp.utils.set_random_seed(0)
    x = fastmlp.Input(shape=(5,), name="x")
    p = L.Dense(5, activation="relu", name="p")(x)
    q = L.Dense(5, activation="sigmoid", name="q")(x)
    if separate:
        left, right = L.Dense(4, activation="tanh", name="left"), L.Dense(4, activation="tanh", name="right")
    else:
        left = right = L.Dense(4, activation="tanh", name="shared")
    return fastmlp.Model(x, L.Dense(3, name="out")(L.multiply([left(p), right(q)], name="prod")))


def test_a_layer_shared_by_two_branches_gets_the_sum_of_both_branches_gradients(float64):
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((7, 5)), rng.standard_normal((7, 3))
    shared = shared_branches()
    shared.compile(optimizer="sgd", loss="mse")
    randomize(shared)
    assert len(shared.get_weights()) == 8            # the shared layer's weights once
    check_gradients(shared, X, Y)
    twin = shared_branches(separate=True)            # the same weights in two separate layers
    twin.compile(optimizer="sgd", loss="mse")
    for name in ("p", "q", "out"):
        twin.get_layer(name).set_weights(shared.get_layer(name).get_weights())
    for name in ("left", "right"):
        twin.get_layer(name).set_weights(shared.get_layer("shared").get_weights())
    np.testing.assert_allclose(twin.predict(X, verbose=0), shared.predict(X, verbose=0), rtol=1e-13)
    g_shared, g_twin = grads_by_weight(shared, X, Y), grads_by_weight(twin, X, Y)
    for w in ("kernel", "bias"):
        np.testing.assert_allclose(g_shared[("shared", w)], g_twin[("left", w)] + g_twin[("right", w)],
                                   rtol=1e-12, atol=1e-15)
        assert np.abs(g_twin[("left", w)]).max() > 1e-3 and np.abs(g_twin[("right", w)]).max() > 1e-3
    # repeated calls give the same gradient: nothing accumulates from one step into the next
    f = loss_and_grads(shared, X, Y)
    np.testing.assert_array_equal(f(shared._params.copy())[1], f(shared._params.copy())[1])


def test_a_tensor_read_by_two_nodes_gets_both_readers_gradients(float64):
    x = fastmlp.Input(shape=(5,), name="x")
    h = L.Dense(4, activation="tanh", name="h")(x)
    a = L.Dense(3, name="a")(h)
    b = L.Dense(3, activation="relu", name="b")(h)
    model = fastmlp.Model(x, L.add([a, b]))
    model.compile(optimizer="sgd", loss="mse")
    randomize(model)
    rng = np.random.default_rng(3)
    check_gradients(model, rng.standard_normal((6, 5)), rng.standard_normal((6, 3)))


@pytest.mark.parametrize("merge, numpy", [("add", lambda h: 2 * h), ("multiply", lambda h: h * h),
                                          ("average", lambda h: h), ("maximum", lambda h: h),
                                          ("concatenate", lambda h: np.hstack([h, h]))])
def test_one_node_reading_the_same_tensor_twice_computes_and_differentiates_right(merge, numpy, float64):
    x = fastmlp.Input(shape=(5,), name="x")
    h = L.Dense(4, activation="sigmoid", name="h")(x)
    twice = getattr(L, merge)([h, h], name="twice")
    model = fastmlp.Model(x, [twice, L.Dense(2, name="o")(twice)])
    model.compile(optimizer="sgd", loss="mse", loss_weights=[0.5, 1.0])
    randomize(model)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 5))
    k, b = model.get_layer("h").get_weights()
    np.testing.assert_allclose(model.predict(X, verbose=0)[0], numpy(ref.sigmoid(X @ k + b)), rtol=1e-12)
    check_gradients(model, X, [rng.standard_normal((6, twice.shape[1])), rng.standard_normal((6, 2))])


def _output_read_by_another(act, order):
    x = fastmlp.Input(shape=(5,), name="x")
    h = L.Dense(3, activation=act, name="h")(L.Dense(4, activation="relu", name="pre")(x))
    reader = L.Dense(2, name="reader")(h)
    return fastmlp.Model(x, [h, reader] if order == "output_first" else [reader, h])


OUTPUT_LOSSES = {"softmax": "sparse_categorical_crossentropy", "sigmoid": "binary_crossentropy",
                 "tanh": "mse", "gelu": "mse", "swish": "mae"}


@pytest.mark.parametrize("order", ["output_first", "reader_first"])
@pytest.mark.parametrize("act", list(OUTPUT_LOSSES))
def test_an_output_also_read_by_another_layer_gets_its_loss_plus_its_reader_s_gradient(act, order, float64):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 5))
    t_h = rng.integers(0, 3, 8) if act == "softmax" else rng.uniform(0, 1, (8, 3)) if act == "sigmoid" \
        else rng.standard_normal((8, 3))
    t_r = rng.standard_normal((8, 2))
    weights = {"h": 0.7, "reader": 1.9}
    model = _output_read_by_another(act, order)
    model.compile(optimizer="sgd", loss={"h": OUTPUT_LOSSES[act], "reader": "mse"}, loss_weights=weights)
    randomize(model)
    y = [t_h, t_r] if order == "output_first" else [t_r, t_h]
    check_gradients(model, X, y)
    # the same layers as two single-output models: the gradient is the weighted sum of theirs
    alone_h = fastmlp.Model(model.input, model.get_layer("h").output)
    alone_h.compile(optimizer="sgd", loss=OUTPUT_LOSSES[act])
    alone_r = fastmlp.Model(model.input, model.get_layer("reader").output)
    alone_r.compile(optimizer="sgd", loss="mse")
    g, g_h, g_r = grads_by_weight(model, X, y), grads_by_weight(alone_h, X, t_h), grads_by_weight(alone_r, X, t_r)
    for key, value in g.items():
        want = weights["h"] * g_h.get(key, 0) + weights["reader"] * g_r.get(key, 0)
        np.testing.assert_allclose(value, want, rtol=1e-10, atol=1e-13, err_msg=str(key))
    assert np.abs(g_h[("pre", "kernel")]).max() > 1e-4 and np.abs(g_r[("pre", "kernel")]).max() > 1e-4


@pytest.mark.parametrize("first, second", [("sparse_categorical_crossentropy", "mse"),
                                           ("mse", "sparse_categorical_crossentropy")])
def test_one_tensor_as_two_outputs_with_a_fused_and_a_plain_loss_trains(first, second, float64):
    """A softmax output named twice: the cross-entropy's gradient is w.r.t. the
    pre-activation (fused), the mse's w.r.t. the probabilities; both must add up."""
    x = fastmlp.Input(shape=(5,), name="x")
    p = L.Dense(3, activation="softmax", name="p")(L.Dense(4, activation="tanh", name="h")(x))
    model = fastmlp.Model(x, {"a": p, "b": p})
    model.compile(optimizer="sgd", loss={"a": first, "b": second}, loss_weights={"a": 1.5, "b": 0.5})
    randomize(model)
    rng = np.random.default_rng(6)
    X, labels, probs = rng.standard_normal((8, 5)), rng.integers(0, 3, 8), rng.uniform(0, 1, (8, 3))
    y = {"sparse_categorical_crossentropy": labels, "mse": probs}
    check_gradients(model, X, [y[first], y[second]])
    history = model.fit(X, {"a": y[first], "b": y[second]}, epochs=2, batch_size=4, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    logs = model.evaluate(X, {"a": y[first], "b": y[second]}, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], 1.5 * logs["a_loss"] + 0.5 * logs["b_loss"], rtol=1e-12)


def test_a_multi_output_graph_with_loss_weights_has_the_weighted_sum_of_the_gradients(float64):
    def build():
        a, b = fastmlp.Input(shape=(4,), name="a"), fastmlp.Input(shape=(3,), name="b")
        h = L.Dense(5, activation="elu", name="h")(L.concatenate([a, b], name="ab"))
        reg = L.Dense(2, name="reg")(L.subtract([h, L.Dense(5, name="hb")(b)], name="diff"))
        cls = L.Dense(3, activation="softmax", name="cls")(h)
        return fastmlp.Model({"a": a, "b": b}, {"reg": reg, "cls": cls})
    rng = np.random.default_rng(7)
    x = [rng.standard_normal((9, 4)), rng.standard_normal((9, 3))]
    y_reg, y_cls = rng.standard_normal((9, 2)), rng.integers(0, 3, 9)
    losses = {"reg": "mse", "cls": "sparse_categorical_crossentropy"}
    weighted, plain = build(), build()
    weighted.compile(optimizer="sgd", loss=losses, loss_weights={"reg": 0.25, "cls": 3.0})
    plain.compile(optimizer="sgd", loss=losses)
    randomize(weighted)
    plain.set_weights(weighted.get_weights())
    y = [y_cls, y_reg]                                  # outputs in sorted key order: cls, reg
    f = check_gradients(weighted, x, y)
    loss, grads = f(weighted._params.copy())
    logs = plain.evaluate({"a": x[0], "b": x[1]}, {"reg": y_reg, "cls": y_cls}, verbose=0, return_dict=True)
    np.testing.assert_allclose(loss, 0.25 * logs["reg_loss"] + 3.0 * logs["cls_loss"], rtol=1e-12)
    # each output alone (the other weighted 0): the weighted gradient is their combination
    parts = []
    for w in ({"reg": 1.0, "cls": 0.0}, {"reg": 0.0, "cls": 1.0}):
        plain.compile(optimizer="sgd", loss=losses, loss_weights=w)
        parts.append(loss_and_grads(plain, x, y)(plain._params.copy())[1])
    np.testing.assert_allclose(grads, 0.25 * parts[0] + 3.0 * parts[1], rtol=1e-11, atol=1e-14)


def _bn_dropout_graph():
    x = fastmlp.Input(shape=(5,), name="x")
    h = L.Dropout(0.25, name="drop_h")(L.Dense(6, activation="relu", name="h")(x))   # h's only reader
    bn = L.BatchNormalization(name="bn")(h)
    dropped = L.Dropout(0.4, name="drop")(bn)
    a = L.Dense(3, activation="tanh", name="a")(dropped)
    b = L.Dense(3, name="b")(bn)                        # bn is read by two nodes
    return fastmlp.Model(x, L.add([a, b], name="sum"))


def test_batchnorm_and_dropout_inside_a_graph_have_exact_training_gradients(float64):
    model = _bn_dropout_graph()
    model.compile(optimizer="sgd", loss="mse")
    randomize(model)
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((10, 5)), rng.standard_normal((10, 3))
    moving = model.get_layer("bn").moving_mean.numpy()
    # training=True: batch statistics and the dropout mask of (seed, step), the same in every call
    f = check_gradients(model, X, Y, training=True, seed=5, step=3)
    np.testing.assert_array_equal(model.get_layer("bn").moving_mean, moving)   # not updated here
    train_loss, infer_loss = f(model._params)[0], loss_and_grads(model, X, Y)(model._params)[0]
    other_step = loss_and_grads(model, X, Y, training=True, seed=5, step=4)(model._params)[0]
    assert train_loss != infer_loss and train_loss != other_step, "the masks and batch statistics must matter"
    np.testing.assert_array_equal(f(model._params)[0], train_loss)
    # and in inference mode (moving statistics, no dropout)
    check_gradients(model, X, Y, training=False)


def test_a_batchnorm_layer_shared_by_two_branches_has_exact_training_gradients(float64):
    x = fastmlp.Input(shape=(5,), name="x")
    bn = L.BatchNormalization(name="bn")
    h1, h2 = L.Dense(4, name="h1")(x), L.Dense(4, activation="swish", name="h2")(x)
    model = fastmlp.Model(x, L.Dense(3, name="o")(L.concatenate([bn(h1), bn(h2)])))
    model.compile(optimizer="sgd", loss="mse")
    randomize(model)
    rng = np.random.default_rng(9)
    check_gradients(model, rng.standard_normal((8, 5)), rng.standard_normal((8, 3)), training=True, seed=1)


@pytest.mark.parametrize("act", ["softmax", "sigmoid", "gelu", "swish"])
def test_activations_that_keep_z_on_intermediate_nodes_with_several_readers(act, float64):
    """The producer's activation cannot be folded into one reader's GEMM there: the
    network must apply its derivative (from A, or from Z for gelu and swish) once,
    to the sum of the readers' gradients."""
    x = fastmlp.Input(shape=(5,), name="x")
    h = L.Dense(4, activation=act, name="h")(x)                    # Dense applying the activation
    a = L.Dense(3, activation="tanh", name="a")(h)
    b = L.Dense(3, name="b")(h)
    g = L.Activation(act, name="g")(L.Dense(4, name="pre_g")(h))   # the activation kind
    c, d = L.Dense(3, name="c")(g), L.Dense(3, activation=act, name="d")(g)
    model = fastmlp.Model(x, L.add([a, b, c, d], name="sum"))
    model.compile(optimizer="sgd", loss="mse")
    randomize(model)
    rng = np.random.default_rng(10)
    check_gradients(model, rng.standard_normal((7, 5)), rng.standard_normal((7, 3)))


def test_activation_layers_keras_files_use_have_exact_gradients(float64):
    x = fastmlp.Input(shape=(5,), name="x")
    h = L.Dense(4, name="h")(x)
    capped = L.ReLU(max_value=0.4, name="capped")(h)
    leaky = L.LeakyReLU(alpha=0.15, name="leaky")(h)
    elu = L.ELU(alpha=0.6, name="elu")(L.Dense(4, name="h2")(leaky))
    soft = L.Softmax(name="soft")(L.Dense(4, name="h3")(capped))
    model = fastmlp.Model(x, L.Dense(3, name="o")(L.concatenate([capped, leaky, elu, soft])))
    model.compile(optimizer="sgd", loss="mse")
    randomize(model)
    rng = np.random.default_rng(11)
    X = rng.standard_normal((9, 5)) * 2
    k, b = model.get_layer("h").get_weights()
    z = X @ k + b
    assert np.any(z > 0.4) and np.any((z > 0) & (z < 0.4)) and np.any(z < 0), "every piece of the cap is used"
    check_gradients(model, X, rng.standard_normal((9, 3)))


def _with_dead_branch(dead):
    """A nested model with two outputs of which the outer model uses one; a layer 'sh'
    is used by the outer model and (when dead) in the unused output of the nested one."""
    shared = L.Dense(4, activation="tanh", name="sh")
    i = fastmlp.Input(shape=(5,), name="i")
    inner_outs = [L.Dense(3, name="used")(i)]
    if dead:
        inner_outs.append(L.Dense(3, name="unused")(shared(i)))
    inner = fastmlp.Model(i, inner_outs, name="inner")
    x = fastmlp.Input(shape=(5,), name="x")
    from_inner = inner(x)
    from_inner = from_inner[0] if dead else from_inner
    return fastmlp.Model(x, L.Dense(3, name="o")(L.add([L.Dense(3, name="p")(shared(x)), from_inner])))


def test_an_unused_output_of_a_nested_model_takes_no_part_in_training(float64):
    """Its nodes are never computed: a shared layer's node there must not turn the
    live node's weight gradient into a sum with a stale one from the last step."""
    model, lean = _with_dead_branch(True), _with_dead_branch(False)
    for m in (model, lean):
        m.compile(optimizer="sgd", loss="mse")
    randomize(model)
    rng = np.random.default_rng(12)
    X, Y = rng.standard_normal((6, 5)), rng.standard_normal((6, 3))
    for name in ("sh", "p", "o"):
        lean.get_layer(name).set_weights(model.get_layer(name).get_weights())
    lean.get_layer("inner").get_layer("used").set_weights(model.get_layer("inner").get_layer("used").get_weights())
    f = check_gradients(model, X, Y)
    first, second = f(model._params.copy())[1], f(model._params.copy())[1]
    np.testing.assert_array_equal(first, second)
    g, g_lean = grads_by_weight(model, X, Y), grads_by_weight(lean, X, Y)
    for key, value in g_lean.items():
        np.testing.assert_allclose(g[key], value, rtol=1e-13, atol=1e-16, err_msg=str(key))
    assert not np.any(g[("unused", "kernel")])
    # training follows the lean model step for step
    for m in (model, lean):
        m.compile(optimizer=fastmlp.optimizers.SGD(0.1), loss="mse")
        m.fit(X, Y, epochs=3, batch_size=3, shuffle=False, verbose=0)
    for name in ("sh", "p", "o"):
        np.testing.assert_allclose(model.get_layer(name).get_weights()[0], lean.get_layer(name).get_weights()[0],
                                   rtol=1e-12)
    np.testing.assert_allclose(model.predict(X, verbose=0), lean.predict(X, verbose=0), rtol=1e-12)


# =========================================================================== 2. forward
def wide_graph(with_nested=True):
    """Two inputs, a shared layer, every merge, BatchNormalization, Dropout, activation
    layers and (optionally) a nested model; two outputs."""
    fastmlp.utils.set_random_seed(3)
    wide, deep = fastmlp.Input(shape=(4,), name="wide"), fastmlp.Input(shape=(3,), name="deep")
    shared = L.Dense(4, activation="tanh", name="shared")
    s1, s2 = shared(L.Dense(4, activation="relu", name="pw")(wide)), shared(L.Dense(4, name="pd")(deep))
    merged = [L.add([s1, s2], name="m_add"), L.subtract([s1, s2], name="m_sub"),
              L.multiply([s1, s2, s1], name="m_mul"), L.average([s1, s2], name="m_avg"),
              L.maximum([s1, s2], name="m_max"), L.minimum([s2, s1], name="m_min")]
    h = L.BatchNormalization(name="bn")(L.concatenate(merged + [wide], name="cat"))
    h = L.Dropout(0.3, name="drop")(h)
    soft = L.Softmax(name="soft")(L.Dense(5, name="logits")(h))
    capped = L.ReLU(max_value=0.5, name="capped")(L.Dense(5, name="z")(h))
    leaky = L.LeakyReLU(alpha=0.1, name="leaky")(L.Dense(5, activation="gelu", name="g")(h))
    parts = [soft, capped, leaky]
    if with_nested:
        i = fastmlp.Input(shape=(5,), name="nested_in")
        nested = fastmlp.Model(i, L.Dense(5, activation="swish", name="nested_d")(i), name="nested")
        parts.append(nested(capped))
    joined = L.concatenate(parts, name="joined")
    return fastmlp.Model({"wide": wide, "deep": deep},
                         {"score": L.Dense(1, name="score")(joined),
                          "label": L.Dense(3, activation="softmax", name="label")(L.Activation("selu")(joined))})


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
def test_a_graph_of_every_kind_predicts_what_numpy_computes(dtype, tol):
    fastmlp.config.set_floatx(dtype)
    try:
        model = wide_graph()
        randomize(model, scale=0.8)
        rng = np.random.default_rng(13)
        x = {"wide": rng.standard_normal((11, 4)).astype(dtype), "deep": rng.standard_normal((11, 3)).astype(dtype)}
        got = model.predict(x, verbose=0)
        assert sorted(got) == ["label", "score"] and got["label"].dtype == dtype
        want = numpy_forward(model, [x["wide"], x["deep"]])
        for key, w in zip(model.output_names, want):
            np.testing.assert_allclose(got[key], w, rtol=tol, atol=tol, err_msg=key)
    finally:
        fastmlp.config.set_floatx("float32")


def test_a_big_batch_predicts_the_same_rows_as_small_batches():
    """predict splits large batches over threads and chunks, with buffers shared by liveness."""
    model = wide_graph()
    randomize(model, scale=0.8)
    rng = np.random.default_rng(14)
    small = {"wide": rng.standard_normal((7, 4)).astype(np.float32),
             "deep": rng.standard_normal((7, 3)).astype(np.float32)}
    big = {k: np.tile(v, (600, 1)) for k, v in small.items()}
    got_small, got_big = model.predict(small, verbose=0), model.predict(big, verbose=0)
    for key in got_small:
        np.testing.assert_array_equal(got_big[key], np.tile(got_small[key], (600, 1)))


ACTS = ["relu", "tanh", "sigmoid", "softmax", "gelu", "swish", "elu", "linear", "selu", "softplus"]


def random_graph(seed):
    """A random graph of Dense, PReLU, merges, Concatenate, Activation, Dropout and GaussianNoise
    nodes over two inputs, with one or two outputs (the second may be an intermediate node)."""
    rng = np.random.default_rng(seed)
    ins = [fastmlp.Input(shape=(int(rng.integers(2, 6)),), name=f"in{k}") for k in range(2)]
    pool = list(ins)
    for _ in range(10):
        r = rng.random()
        if r < 0.4:
            t = L.Dense(4, activation=ACTS[rng.integers(len(ACTS))])(pool[rng.integers(len(pool))])
            if rng.random() < 0.25:
                t = L.PReLU()(t)
        elif r < 0.7 and sum(p.shape[-1] == 4 for p in pool) > 0:
            cands = [p for p in pool if p.shape[-1] == 4]
            kind = ["add", "multiply", "average", "maximum", "minimum", "subtract"][rng.integers(6)]
            pick = [cands[rng.integers(len(cands))] for _ in range(2 if kind == "subtract" else rng.integers(2, 4))]
            t = getattr(L, kind)(pick)
        elif r < 0.8:
            t = L.concatenate([pool[rng.integers(len(pool))] for _ in range(rng.integers(2, 4))])
        elif r < 0.9:
            t = L.Activation(ACTS[rng.integers(len(ACTS))])(pool[rng.integers(len(pool))])
        else:
            noise = L.Dropout(0.3) if rng.random() < 0.6 else L.GaussianNoise(0.5)
            t = noise(pool[rng.integers(len(pool))])
        pool.append(t)
    computed = pool[2:]
    outs = [L.Dense(3)(L.concatenate([L.Dense(3)(computed[-1])] + ins))]
    if rng.random() < 0.5:
        outs.append(computed[rng.integers(len(computed))])
    return fastmlp.Model(ins, outs)


@pytest.mark.parametrize("seed", range(8))
def test_random_graphs_predict_what_numpy_computes_and_have_exact_gradients(seed, float64):
    model = random_graph(seed)
    randomize(model, seed=seed)
    rng = np.random.default_rng(100 + seed)
    xs = [rng.standard_normal((5, t.shape[-1])) for t in model.inputs]
    for got, want in zip(as_list(model.predict(xs, verbose=0)), numpy_forward(model, xs)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)
    model.compile(optimizer="sgd", loss="mse", loss_weights=[0.7, 1.3][:len(model.outputs)])
    ys = [rng.standard_normal((5, o.shape[-1])) for o in model.outputs]
    f = check_gradients(model, xs, ys, training=True, seed=3, step=1)
    check_gradients(model, xs, ys)
    # the inference path (evaluate: buffers shared by liveness, aliases) gives the training path's loss
    loss = model.evaluate(xs, ys if len(ys) > 1 else ys[0], batch_size=5, verbose=0)
    np.testing.assert_allclose(as_list(loss)[0], loss_and_grads(model, xs, ys)(model._params)[0], rtol=1e-12)
    if any(type(layer).__name__ in ("Dropout", "GaussianNoise") for layer in model.layers):
        assert f(model._params)[0] != as_list(loss)[0], "training mode (dropout) differs from inference"


# =========================================================================== 3. saving, resuming, configs
def multi_io_model(seed=5):
    fastmlp.utils.set_random_seed(seed)
    wide, deep = fastmlp.Input(shape=(5,), name="wide"), fastmlp.Input(shape=(3,), name="deep")
    h = L.Dense(6, activation="relu", name="h")(deep)
    cat = L.concatenate([wide, h], name="cat")
    bn = L.BatchNormalization(name="bn")(L.Dropout(0.3, name="drop")(cat))
    score = L.Dense(1, name="score_head")(bn)
    label = L.Dense(3, activation="softmax", name="label_head")(
        L.add([L.Dense(3, name="p")(bn), L.Dense(3, name="q")(h)], name="sum"))
    model = fastmlp.Model({"wide": wide, "deep": deep}, {"score": score, "label": label})
    model.compile(optimizer=fastmlp.optimizers.Adam(0.01),
                  loss={"score": "mse", "label": "sparse_categorical_crossentropy"},
                  loss_weights={"score": 0.5, "label": 2.0},
                  metrics={"score": ["mae"], "label": ["accuracy"]})
    return model


def multi_io_data(n=40):
    rng = np.random.default_rng(15)
    x = {"wide": rng.standard_normal((n, 5)).astype(np.float32), "deep": rng.standard_normal((n, 3)).astype(np.float32)}
    y = {"score": rng.standard_normal((n, 1)).astype(np.float32), "label": rng.integers(0, 3, n)}
    return x, y


@pytest.mark.parametrize("via", ["file", "bytes"])
def test_a_multi_input_multi_output_model_resumes_training_bit_for_bit(via, tmp_path):
    x, y = multi_io_data()
    straight = multi_io_model()
    full = straight.fit(x, y, epochs=2, batch_size=8, verbose=0).history
    first = multi_io_model()
    first.fit(x, y, epochs=1, batch_size=8, verbose=0)
    if via == "file":
        path = os.path.join(tmp_path, "multi.fmlp")
        first.save(path)
        resumed = fastmlp.load_model(path)
    else:
        resumed = fastmlp.models.from_bytes(first.to_bytes())
    np.testing.assert_array_equal(resumed.predict(x, verbose=0)["label"], first.predict(x, verbose=0)["label"])
    np.testing.assert_array_equal(resumed.predict(x, verbose=0)["score"], first.predict(x, verbose=0)["score"])
    assert resumed.input_names == ["wide", "deep"] and resumed.output_names == ["label", "score"]
    assert resumed.metrics_names == first.metrics_names
    assert resumed._loss_weights == first._loss_weights == [2.0, 0.5]
    assert resumed.get_compile_config() == first.get_compile_config()
    second = resumed.fit(x, y, epochs=2, initial_epoch=1, batch_size=8, verbose=0).history
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert sorted(second) == sorted(full)
    for key in full:
        assert second[key] == full[key][1:], key


def nested_model():
    fastmlp.utils.set_random_seed(6)
    i = fastmlp.Input(shape=(4,), name="ii")
    inner = fastmlp.Model(i, L.Dense(5, activation="tanh", name="inner_d")(i), name="inner")
    seq = fastmlp.Sequential([fastmlp.Input(shape=(5,)), L.Dense(3, activation="relu", name="s1"),
                              L.Dense(3, name="s2")], name="seq")
    x = fastmlp.Input(shape=(4,), name="x")
    h = inner(x)
    return fastmlp.Model(x, L.Dense(2, name="head")(L.concatenate([seq(h), h], name="cat")), name="outer")


def test_a_model_with_a_nested_functional_model_and_a_nested_sequential_saves_and_loads(tmp_path):
    model = nested_model()
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(16)
    X, Y = rng.standard_normal((10, 4)).astype(np.float32), rng.standard_normal((10, 2)).astype(np.float32)
    model.fit(X, Y, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "nested.fmlp")
    model.save(path)
    for loaded in (fastmlp.load_model(path), fastmlp.models.from_bytes(model.to_bytes())):
        assert [l.name for l in loaded.layers] == ["x", "inner", "seq", "cat", "head"]
        assert type(loaded.get_layer("seq")).__name__ == "Sequential"
        assert type(loaded.get_layer("inner")).__name__ == "Model"
        np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
        np.testing.assert_array_equal(loaded.get_layer("seq").get_layer("s1").kernel,
                                      model.get_layer("seq").get_layer("s1").kernel)
    # training goes on alike from the file
    twin = fastmlp.load_model(path)
    for m in (model, twin):
        m.fit(X, Y, epochs=3, initial_epoch=2, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def shared_layer_model():
    fastmlp.utils.set_random_seed(7)
    x = fastmlp.Input(shape=(4,), name="x")
    shared = L.Dense(4, activation="tanh", name="shared")
    return fastmlp.Model(x, L.Dense(2, name="o")(L.add([shared(x), shared(L.Dense(4, name="pre")(x))])))


def test_a_model_with_a_shared_layer_saves_and_loads(tmp_path):
    """Loading builds layers before their weights exist: the second call of a Dense
    checks its input width against the weight spec, not a kernel."""
    model = shared_layer_model()
    X = np.random.default_rng(17).standard_normal((5, 4)).astype(np.float32)
    path = os.path.join(tmp_path, "shared.fmlp")
    model.save(path)
    for loaded in (fastmlp.load_model(path), fastmlp.models.from_bytes(model.to_bytes())):
        assert len(loaded.get_weights()) == 6
        np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))


def same_output_twice():
    x = fastmlp.Input(shape=(4,), name="x")
    p = L.Dense(3, activation="softmax", name="p")(x)
    return fastmlp.Model(x, {"a": p, "b": p})


def layer_kinds_model():
    a, b = fastmlp.Input(shape=(3,), name="a"), fastmlp.Input(shape=(2,), name="b")
    h = L.Concatenate(axis=1, name="ab")([a, b])
    h = L.ReLU(max_value=0.7, name="cap")(L.Dense(4, name="d")(h))
    h = L.LeakyReLU(alpha=0.2, name="leaky")(h)
    return fastmlp.Model([a, b], [L.ELU(alpha=0.5, name="elu")(h), L.Softmax(name="sm")(h)])


ROUND_TRIP_MODELS = {"multi_io": multi_io_model, "nested": nested_model, "shared": shared_layer_model,
                     "wide": wide_graph, "same_output_twice": same_output_twice, "layer_kinds": layer_kinds_model}


def _inputs_for(model, n=6, seed=18):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((n,) + tuple(t.shape[1:])).astype(np.float32) for t in model.inputs]
    return dict(zip(model.input_names, xs)) if model._input_keys else xs


@pytest.mark.parametrize("name", list(ROUND_TRIP_MODELS))
def test_config_and_json_round_trips_rebuild_the_same_model(name):
    model = ROUND_TRIP_MODELS[name]()
    randomize(model, scale=0.8)
    x = _inputs_for(model)
    want = model.predict(x, verbose=0)
    config = model.get_config()
    json.dumps(config)                                   # plain data
    clones = [fastmlp.Model.from_config(config), fastmlp.models.model_from_json(model.to_json())]
    for clone in clones:
        assert clone.get_config() == config
        assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
        clone.set_weights(model.get_weights())
        got = clone.predict(x, verbose=0)
        for a, b in zip(as_list(got) if not isinstance(got, dict) else [got[k] for k in sorted(got)],
                        as_list(want) if not isinstance(want, dict) else [want[k] for k in sorted(want)]):
            np.testing.assert_array_equal(a, b)
    loaded = fastmlp.models.from_bytes(model.to_bytes())
    assert loaded.get_config() == config


def _late_shared_call():
    """A shared layer whose first call reads a layer listed after it, and whose second
    call reads the input directly (so it is ready first when a config is rebuilt)."""
    x = fastmlp.Input(shape=(4,), name="x")
    shared, q = L.Dense(4, name="shared"), L.Dense(4, name="q")
    s0 = shared(q(x))
    h = shared(x)
    for i in range(3):
        h = L.Dense(4, name=f"d{i}")(h)
    return fastmlp.Model(x, L.add([h, s0], name="sum"))


def test_config_numbers_a_shared_layer_s_calls_in_call_order_and_rebuilds_them_so():
    model = _late_shared_call()
    randomize(model)
    config = model.get_config()
    names = [entry["name"] for entry in config["layers"]]
    assert names.index("shared") < names.index("q"), "the case this test is about"
    entry = next(e for e in config["layers"] if e["name"] == "shared")
    history = [node["args"][0]["config"]["keras_history"] for node in entry["inbound_nodes"]]
    assert history == [["q", 0, 0], ["x", 0, 0]]          # call 0 reads q, call 1 reads x (as Keras writes)
    clone = fastmlp.Model.from_config(config)
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(19).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(fastmlp.models.from_bytes(model.to_bytes()).predict(x, verbose=0),
                                  model.predict(x, verbose=0))

    def rebuilt(cfg):
        clone = fastmlp.Model.from_config(cfg)
        for layer in clone.layers:
            if layer.weights:
                layer.set_weights(model.get_layer(layer.name).get_weights())
        return clone.predict(x, verbose=0)
    # the layers listed in another order: each call is still wired by its index
    shuffled = json.loads(json.dumps(config))
    shuffled["layers"].reverse()
    np.testing.assert_array_equal(rebuilt(shuffled), model.predict(x, verbose=0))
    # the calls numbered in graph order instead (as files of the first functional release were
    # written): node i is still the i-th entry of inbound_nodes, so the file reads the same
    text = json.dumps(config).replace('["shared", 0, 0]', '["shared", 9, 0]').replace(
        '["shared", 1, 0]', '["shared", 0, 0]').replace('["shared", 9, 0]', '["shared", 1, 0]')
    assert text.count('["shared", 1, 0]') == 1 and text != json.dumps(config)
    graph_order = json.loads(text)
    entry = next(e for e in graph_order["layers"] if e["name"] == "shared")
    entry["inbound_nodes"].reverse()
    np.testing.assert_array_equal(rebuilt(graph_order), model.predict(x, verbose=0))


keras = None
if os.environ.get("KERAS_BACKEND", "torch") == "torch":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        keras = None


@pytest.mark.skipif(keras is None, reason="keras (torch backend) is not installed")
def test_config_inbound_nodes_name_the_same_calls_as_keras_config():
    def build(K):
        Lk = K.layers
        x = K.Input(shape=(4,), name="x")
        shared, q = Lk.Dense(4, name="shared"), Lk.Dense(4, name="q")
        s0 = shared(q(x))
        h = shared(x)
        for i in range(3):
            h = Lk.Dense(4, name=f"d{i}")(h)
        return K.Model(x, Lk.add([h, s0], name="sum"))

    def inbound(config):
        return {e["name"]: [[a["config"]["keras_history"] for a in (n["args"][0] if isinstance(n["args"][0], list)
                                                                    else [n["args"][0]])]
                            for n in e["inbound_nodes"]] for e in config["layers"]}
    k_config, f_config = build(keras).get_config(), build(fastmlp).get_config()
    assert [e["name"] for e in f_config["layers"]] == [e["name"] for e in k_config["layers"]]
    assert inbound(f_config) == inbound(k_config)
    assert f_config["output_layers"] == k_config["output_layers"]


def test_non_integer_shapes_are_refused_not_truncated():
    for bad in [(5.7,), (5.0,), ("5",), (True,), 5.7, (4, 2.5)]:
        with pytest.raises(ValueError, match="integers"):
            fastmlp.Input(shape=bad)
    with pytest.raises(ValueError, match="integers"):
        L.Dense(3, input_shape=(5.5,))
    with pytest.raises(ValueError, match="batch_shape"):
        fastmlp.Input(batch_shape=(None, 5.7))
    assert fastmlp.Input(shape=(np.int64(5),)).shape == (None, 5)


def test_a_model_file_with_a_non_integer_batch_shape_fails_to_load_with_format_error():
    x = fastmlp.Input(shape=(5,), name="x")
    model = fastmlp.Model(x, L.Dense(2, name="o")(x))
    pre, header, body = split(bytearray(model.to_bytes()))
    entry = header["model"]["config"]["layers"][0]
    assert entry["class_name"] == "InputLayer" and entry["config"]["batch_shape"] == [None, 5]
    fastmlp.models.from_bytes(seal(pre, header, body))   # the resealed file itself is fine
    entry["config"]["batch_shape"] = [None, 5.7]
    with pytest.raises(fastmlp.FormatError, match=r"batch_shape.*5\.7"):
        fastmlp.models.from_bytes(seal(pre, header, body))
    seq = fastmlp.Sequential([fastmlp.Input(shape=(5,)), L.Dense(2)])
    pre, header, body = split(bytearray(seq.to_bytes()))
    header["model"]["config"]["layers"][0]["config"]["batch_shape"] = [None, 5.7]
    with pytest.raises(fastmlp.FormatError, match="5.7"):
        fastmlp.models.from_bytes(seal(pre, header, body))


def test_a_chain_deeper_than_python_s_recursion_limit_builds_predicts_and_round_trips():
    import sys
    depth = sys.getrecursionlimit() + 500
    x = fastmlp.Input(shape=(3,), name="x")
    h = L.Dense(3, name="first")(x)
    for i in range(depth):
        h = L.Activation("linear", name=f"a{i}")(h)
    model = fastmlp.Model(x, L.Dense(2, name="last")(h))
    assert len(model.layers) == depth + 3
    X = np.random.default_rng(24).standard_normal((4, 3)).astype(np.float32)
    (k1, b1), (k2, b2) = model.get_layer("first").get_weights(), model.get_layer("last").get_weights()
    np.testing.assert_allclose(model.predict(X, verbose=0), (X @ k1 + b1) @ k2 + b2, rtol=1e-5, atol=1e-6)
    loaded = fastmlp.models.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))


# =========================================================================== 4. weight sharing between models
def autoencoder():
    fastmlp.utils.set_random_seed(8)
    inp = fastmlp.Input(shape=(6,), name="inp")
    code = L.Dense(3, activation="tanh", name="code")(inp)
    return fastmlp.Model(inp, L.Dense(6, name="rec")(code))


def _encode(model, X):
    k, b = model.get_layer("code").get_weights()
    return np.tanh(np.float64(X) @ k + b)


def test_an_encoder_cut_from_a_trained_model_shares_its_weights_both_ways(tmp_path):
    X = np.random.default_rng(20).standard_normal((16, 6)).astype(np.float32)
    full = autoencoder()
    full.compile(optimizer="adam", loss="mse")
    full.fit(X, X, epochs=3, verbose=0)
    encoder = fastmlp.Model(full.input, full.get_layer("code").output)
    assert encoder.get_layer("code") is full.get_layer("code")
    np.testing.assert_allclose(encoder.predict(X, verbose=0), _encode(full, X), rtol=1e-5, atol=1e-6)
    before = encoder.predict(X, verbose=0)
    full.fit(X, X, epochs=3, verbose=0)                  # training the big model moves the encoder
    after = encoder.predict(X, verbose=0)
    assert np.abs(after - before).max() > 1e-4
    np.testing.assert_allclose(after, _encode(full, X), rtol=1e-5, atol=1e-6)
    encoder.compile(optimizer="sgd", loss="mse")         # and training the encoder moves the big model
    encoder.fit(X, np.zeros((16, 3), np.float32), epochs=2, verbose=0)
    k, b = encoder.get_layer("code").get_weights()
    kr, br = full.get_layer("rec").get_weights()
    np.testing.assert_allclose(full.predict(X, verbose=0), np.tanh(X @ k + b) @ kr + br, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(full.get_weights()[0], k)
    saved = fastmlp.models.from_bytes(full.to_bytes())
    np.testing.assert_array_equal(saved.get_layer("code").kernel, k)


def test_sequential_of_a_functional_model_and_softmax_shares_the_model_s_weights():
    fastmlp.utils.set_random_seed(9)
    inp = fastmlp.Input(shape=(4,), name="features")
    logits = fastmlp.Model(inp, L.Dense(3, name="logits")(L.Dense(6, activation="relu", name="hid")(inp)))
    probs = fastmlp.Sequential([logits, L.Softmax()])
    X = np.random.default_rng(21).standard_normal((10, 4)).astype(np.float32)

    def check():
        np.testing.assert_allclose(probs.predict(X, verbose=0), ref.softmax(logits.predict(X, verbose=0)),
                                   rtol=1e-5, atol=1e-6)
    check()
    before = probs.predict(X, verbose=0)
    logits.compile(optimizer=fastmlp.optimizers.SGD(0.1), loss="mse")
    logits.fit(X, np.random.default_rng(22).standard_normal((10, 3)), epochs=3, verbose=0)
    assert np.abs(probs.predict(X, verbose=0) - before).max() > 1e-4
    check()
    before = logits.predict(X, verbose=0)
    probs.compile(optimizer=fastmlp.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    probs.fit(X, np.arange(10) % 3, epochs=3, verbose=0)
    assert np.abs(logits.predict(X, verbose=0) - before).max() > 1e-4
    check()
    assert probs.get_weights()[0] is not logits.get_layer("hid").kernel
    np.testing.assert_array_equal(probs.get_weights()[0], logits.get_layer("hid").kernel)


def test_an_ensemble_averaging_three_models_on_one_input_follows_its_members():
    fastmlp.utils.set_random_seed(10)
    members = []
    for i in range(3):
        m_in = fastmlp.Input(shape=(4,), name=f"m{i}_in")
        members.append(fastmlp.Model(m_in, L.Dense(3, activation="softmax", name=f"m{i}_out")(
            L.Dense(5, activation="relu", name=f"m{i}_hidden")(m_in)), name=f"member{i}"))
    inp = fastmlp.Input(shape=(4,), name="inp")
    ensemble = fastmlp.Model(inp, L.average([m(inp) for m in members], name="vote"), name="ensemble")
    assert [l.name for l in ensemble.layers] == ["inp", "member0", "member1", "member2", "vote"]
    X = np.random.default_rng(23).standard_normal((8, 4)).astype(np.float32)

    def check():
        want = np.mean([m.predict(X, verbose=0) for m in members], axis=0)
        np.testing.assert_allclose(ensemble.predict(X, verbose=0), want, rtol=1e-5, atol=1e-7)
    check()
    members[1].compile(optimizer=fastmlp.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    members[1].fit(X, np.arange(8) % 3, epochs=3, verbose=0)
    check()
    loaded = fastmlp.models.from_bytes(ensemble.to_bytes())
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), ensemble.predict(X, verbose=0))


def test_layer_output_and_input_are_the_tensors_of_the_first_call():
    x = fastmlp.Input(shape=(4,), name="x")
    dense = L.Dense(3, name="d")
    h = dense(x)
    dense(L.Dense(4)(x))
    assert dense.output is h and dense.input is x
    add = L.Add()
    s = add([h, h])
    assert add.output is s and add.input == [h, h]
    assert x._history[0].output is x
    with pytest.raises(AttributeError, match="never been called"):
        L.Dense(2, name="idle").output


# =========================================================================== 5. errors
def _two_io():
    wide, deep = fastmlp.Input(shape=(2,), name="wide"), fastmlp.Input(shape=(3,), name="deep")
    h = L.concatenate([wide, deep], name="cat")
    model = fastmlp.Model({"wide": wide, "deep": deep},
                          {"score": L.Dense(1, name="score_layer")(h),
                           "label": L.Dense(3, activation="softmax", name="label_layer")(h)})
    return model


def _compiled_two_io(**kwargs):
    model = _two_io()
    model.compile(optimizer="sgd", **({"loss": {"score": "mse", "label": "sparse_categorical_crossentropy"}}
                                      | kwargs))
    return model


X2 = {"wide": np.zeros((4, 2), np.float32), "deep": np.zeros((4, 3), np.float32)}
Y2 = {"score": np.zeros((4, 1), np.float32), "label": np.zeros(4, np.int64)}


def _subclass():
    class MyModel(fastmlp.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(3)

        def call(self, x):
            return self.dense(x)
    return MyModel()


def _reused_dense():
    dense = L.Dense(3, name="picky")
    dense(fastmlp.Input(shape=(5,)))
    return dense(fastmlp.Input(shape=(6,)))


def _duplicate_names():
    x = fastmlp.Input(shape=(3,))
    return fastmlp.Model(x, L.Dense(2, name="twin")(L.Dense(3, name="twin")(x)))


def _call_model(count):
    a, b = fastmlp.Input(shape=(3,), name="a"), fastmlp.Input(shape=(3,), name="b")
    model = fastmlp.Model([a, b], L.add([a, L.Dense(3)(b)]), name="two_in")
    return model([fastmlp.Input(shape=(3,))] * count)


def _disconnected():
    a, b = fastmlp.Input(shape=(3,), name="a"), fastmlp.Input(shape=(3,), name="b_unlisted")
    return fastmlp.Model(a, L.add([L.Dense(3)(a), L.Dense(3)(b)]))


ERRORS = {
    "outputs_not_connected": (_disconnected, ValueError, r"not connected to `inputs`.*'b_unlisted'"),
    "dense_on_incompatible_shape": (_reused_dense, ValueError,
                                    r"layer 'picky'.*incompatible.*value 5.*\(None, 6\)"),
    "fit_missing_input_key": (lambda: _compiled_two_io().fit({"wide": X2["wide"]}, Y2, verbose=0), ValueError,
                              r'Missing data for input "deep"'),
    "evaluate_missing_input_key": (lambda: _compiled_two_io().evaluate({"deep": X2["deep"]}, Y2, verbose=0),
                                   ValueError, r'Missing data for input "wide"'),
    "predict_missing_input_key": (lambda: _two_io().predict({"deep": X2["deep"]}, verbose=0), ValueError,
                                  r'Missing data for input "wide"'),
    "fit_missing_target_key": (lambda: _compiled_two_io().fit(X2, {"score": Y2["score"]}, verbose=0),
                               ValueError, r'Missing data for output "label"'),
    "evaluate_missing_target_key": (lambda: _compiled_two_io().evaluate(X2, {"label": Y2["label"]}, verbose=0),
                                    ValueError, r'Missing data for output "score"'),
    "fit_unknown_target_key": (lambda: _compiled_two_io().fit(X2, {**Y2, "extra": Y2["score"]}, verbose=0),
                               ValueError, r"'extra'"),
    "unknown_output_in_loss": (lambda: _compiled_two_io(loss={"score": "mse", "labl": "mse"}), ValueError,
                               r"`loss` names unknown output.*'labl'"),
    "unknown_output_in_metrics": (lambda: _compiled_two_io(metrics={"scor": ["mae"]}), ValueError,
                                  r"`metrics` names unknown output.*'scor'"),
    "unknown_output_in_loss_weights": (lambda: _compiled_two_io(loss_weights={"label": 1.0, "scor": 2.0}),
                                       ValueError, r"`loss_weights` names unknown output.*'scor'"),
    "loss_list_of_wrong_length": (lambda: _compiled_two_io(loss=["mse"]), ValueError,
                                  r"`loss` is a list of 1 entries.*2 outputs"),
    "loss_weights_list_of_wrong_length": (lambda: _compiled_two_io(loss_weights=[1.0, 2.0, 3.0]), ValueError,
                                          r"`loss_weights` is a list of 3 entries"),
    "x_list_of_wrong_length": (lambda: _compiled_two_io().fit([X2["wide"]] * 3, Y2, verbose=0), ValueError,
                               r"expects 2 inputs.*holds 3"),
    "y_list_of_wrong_length": (lambda: _compiled_two_io().fit(X2, [Y2["label"]], verbose=0), ValueError,
                               r"2 outputs"),
    "predict_list_of_wrong_length": (lambda: _two_io().predict([X2["wide"]], verbose=0), ValueError,
                                     r"expects 2 inputs"),
    "subtract_with_three_inputs": (lambda: L.Subtract(name="sub3")([fastmlp.Input(shape=(2,))] * 3), ValueError,
                                   r"'sub3'.*exactly 2 inputs"),
    "merge_of_mismatched_shapes": (lambda: L.Add(name="odd")([fastmlp.Input(shape=(2,)),
                                                              fastmlp.Input(shape=(3,))]), ValueError,
                                   r"'odd'.*incompatible shapes"),
    "subclassed_model_with_call": (_subclass, NotImplementedError,
                                   r"'MyModel'.*functional API.*fastmlp.Model\(inputs, outputs\)"),
    "duplicate_layer_names": (_duplicate_names, ValueError, r'"twin" is used 2 times'),
    "model_called_on_too_few_tensors": (lambda: _call_model(1), ValueError,
                                        r'"two_in" expects 2 input\(s\).*received 1'),
    "model_called_on_too_many_tensors": (lambda: _call_model(3), ValueError,
                                         r'"two_in" expects 2 input\(s\).*received 3'),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_raises_a_clear_error_naming_the_layer_or_key(case):
    action, error, message = ERRORS[case]
    with pytest.raises(error, match=message):
        action()


def test_a_model_called_on_an_input_of_the_wrong_width_names_the_input_and_the_model():
    a = fastmlp.Input(shape=(3,), name="a")
    model = fastmlp.Model(a, L.Dense(2)(a), name="narrow")
    with pytest.raises(ValueError, match=r"'narrow'.*expected shape=\(None, 3\), found shape=\(None, 4\)"):
        model(fastmlp.Input(shape=(4,)))


# =========================================================================== 6. summary
def _summary(model):
    lines = []
    model.summary(print_fn=lines.append)
    return lines


def test_the_summary_of_a_multi_input_graph_lists_the_layers_each_is_connected_to():
    a, b = fastmlp.Input(shape=(4,), name="a"), fastmlp.Input(shape=(2,), name="b")
    h = L.Dense(3, name="h")(a)
    shared = L.Dense(3, name="sh")
    model = fastmlp.Model([a, b], [L.add([shared(h), shared(L.Dense(3, name="g")(b))], name="s"),
                                   L.Dense(1, name="o2")(h)])
    lines = _summary(model)
    assert "Connected to" in lines[2]
    row = {line.split()[0]: line for line in lines[4:] if line and line.split()[0] in {"a", "b", "h", "g", "sh", "s", "o2"}}
    assert row["h"].rstrip().endswith("a[0][0]")
    assert row["g"].rstrip().endswith("b[0][0]")
    assert row["sh"].rstrip().endswith("h[0][0], g[0][0]")
    assert row["s"].rstrip().endswith("sh[0][0], sh[1][0]")
    assert row["o2"].rstrip().endswith("h[0][0]")
    assert any("Total params: 40" in line for line in lines)


def test_the_summary_of_a_chain_has_no_connected_to_column():
    x = fastmlp.Input(shape=(4,), name="x")
    chain = fastmlp.Model(x, L.Dense(2, name="o")(L.Dense(3, name="h")(x)))
    seq = fastmlp.Sequential([fastmlp.Input(shape=(4,)), L.Dense(3), L.Dense(2)])
    for model in (chain, seq):
        lines = _summary(model)
        assert not any("Connected to" in line or "[0][0]" in line for line in lines)
        assert any("Total params: 23" in line for line in lines)


# =========================================================================== 7. layer kinds Keras files use
def test_relu_with_max_value_and_leaky_relu_with_alpha_compute_and_round_trip():
    x = np.linspace(-3, 3, 13, dtype=np.float32).reshape(1, -1)
    cap = L.ReLU(max_value=1.5)
    np.testing.assert_array_equal(cap(x), np.clip(x, 0, 1.5))
    np.testing.assert_array_equal(L.ReLU(max_value=6)(x * 3), np.clip(x * 3, 0, 6))
    leaky = L.LeakyReLU(alpha=0.1)                       # Keras 2's name of negative_slope
    assert leaky.negative_slope == 0.1 and leaky.get_config()["negative_slope"] == 0.1
    np.testing.assert_allclose(leaky(x), np.where(x > 0, x, 0.1 * x), rtol=1e-6)
    assert L.LeakyReLU().negative_slope == 0.3
    for layer in (cap, leaky):
        clone = type(layer).from_config(layer.get_config())
        np.testing.assert_array_equal(clone(x), layer(x))
    inp = fastmlp.Input(shape=(13,), name="inp")
    h = L.Dense(13, name="d")(inp)
    model = fastmlp.Model(inp, [L.ReLU(max_value=1.5, name="cap")(h), L.LeakyReLU(alpha=0.1, name="lk")(h)])
    model.get_layer("d").set_weights([np.eye(13, dtype=np.float32), np.zeros(13, np.float32)])
    got = fastmlp.models.from_bytes(model.to_bytes()).predict(x, verbose=0)
    np.testing.assert_array_equal(got[0], np.clip(x, 0, 1.5))
    np.testing.assert_allclose(got[1], np.where(x > 0, x, 0.1 * x), rtol=1e-6)


def test_a_model_without_weights_saves_and_loads():
    a, b = fastmlp.Input(shape=(3,), name="a"), fastmlp.Input(shape=(3,), name="b")
    model = fastmlp.Model([a, b], L.ReLU(max_value=1.0, name="cap")(L.add([a, b], name="sum")))
    x = [np.full((2, 3), 0.25, np.float32), np.full((2, 3), 1.0, np.float32)]
    data = model.to_bytes()                             # the writer accepts it
    np.testing.assert_array_equal(fastmlp.models.from_bytes(data).predict(x, verbose=0), np.ones((2, 3)))


def test_model_losses_are_the_current_regularization_penalties_and_fit_adds_them():
    inp = fastmlp.Input(shape=(3,))
    h = layers.Dense(4, kernel_regularizer=fastmlp.regularizers.l2(0.1), name="h")(inp)
    out = layers.Dense(1, kernel_regularizer=fastmlp.regularizers.l1(0.01), bias_regularizer="l2", name="o")(h)
    model = fastmlp.Model(inp, out)
    want = [0.1 * np.sum(model.get_layer("h").kernel ** 2), 0.01 * np.sum(np.abs(model.get_layer("o").kernel)),
            0.01 * np.sum(model.get_layer("o").bias ** 2)]
    np.testing.assert_allclose(model.losses, want, rtol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((2, 3), np.float32), np.zeros((2, 1), np.float32)
    plain = float(np.mean((model.predict(x) - y) ** 2))
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), plain + sum(model.losses), rtol=1e-5)


def test_clone_model_has_the_same_architecture_and_fresh_weights():
    inp = fastmlp.Input(shape=(3,))
    model = fastmlp.Model(inp, layers.Dense(2, name="d")(layers.Dense(4, name="h")(inp)))
    clone = fastmlp.models.clone_model(model)
    assert clone.get_config()["layers"][1]["config"]["units"] == 4
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    assert not np.array_equal(clone.get_layer("h").kernel, model.get_layer("h").kernel)
    seq = fastmlp.Sequential([fastmlp.Input(shape=(3,)), layers.Dense(2)])
    assert isinstance(fastmlp.models.clone_model(seq), fastmlp.Sequential)
    with pytest.raises(ValueError, match="clone_function"):
        fastmlp.models.clone_model(model, clone_function=lambda layer: layer)
