"""The functional API against Keras 3 itself as the oracle.

Every test builds the same graph twice, once with ``keras`` and once with ``fastmlp`` (one builder that takes
the module, so the two graphs cannot drift apart), copies Keras's initial weights into fastmlp with
``model.set_weights(keras_model.get_weights())`` -- which only works if ``model.weights`` follows Keras's
order -- and compares what a Keras user sees: ``predict``, weights after ``fit``, ``History`` keys and values,
``evaluate``/``train_on_batch`` return structures, and the errors for malformed graphs and inputs.

Keras 3 semantics pinned here (checked with Keras 3.15, torch backend):

* ``model.layers`` (and so ``model.weights``) lists layers by decreasing depth from the outputs, ties broken
  by first visit of a depth-first walk from the flattened outputs (a dict of outputs is flattened in sorted
  key order) through each node's inputs in order; a layer called twice appears once, a nested model appears
  as one layer with its own weights in its own order.
* Per-output losses in History / evaluate are *unweighted*; ``loss`` = sum of ``loss_weight * output_loss``
  plus regularization.  Names are ``<output layer name>_loss`` and ``<output layer name>_<metric name>``.
* ``evaluate`` returns ``[loss, <output>_loss in the order of the compiled loss structure, then every other
  metric sorted by name]``; a single value when there is only ``loss``; ``return_dict=True`` gives the logs.
* ``predict`` returns a dict for dict outputs, a list for two or more list outputs, and one array for a single
  output (also for ``outputs=[x]``).
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastmlp  # noqa: E402

FORWARD_ATOL = 1e-5
STEP_ATOL = 2e-4


@pytest.fixture(autouse=True)
def _keras_float32_and_seed():
    keras.config.set_floatx("float32")
    keras.utils.set_random_seed(0)
    yield


# =========================================================================== helpers
def twins(build, *args, **kwargs):
    """The same graph in Keras and in fastmlp, fastmlp holding Keras's initial weights."""
    k_model = build(keras, *args, **kwargs)
    f_model = build(fastmlp, *args, **kwargs)
    copy_weights(k_model, f_model)
    return k_model, f_model


def copy_weights(k_model, f_model):
    k_weights = k_model.get_weights()
    assert [tuple(w.shape) for w in f_model.get_weights()] == [tuple(w.shape) for w in k_weights], \
        "model.weights is not in Keras's order (the shapes differ)"
    f_model.set_weights(k_weights)


def assert_same(actual, expected, atol=FORWARD_ATOL, rtol=0.0, what="output"):
    """Same structure (dict keys / list length / single array) and values within tolerance."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{what}: Keras returns a dict, got {type(actual).__name__}"
        assert sorted(actual) == sorted(expected), f"{what}: keys"
        for key in expected:
            assert_same(actual[key], expected[key], atol, rtol, f"{what}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)), f"{what}: Keras returns a list, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{what}: length"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, atol, rtol, f"{what}[{i}]")
    else:
        assert not isinstance(actual, (dict, list, tuple)), \
            f"{what}: Keras returns one value, got {type(actual).__name__}"
        a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
        assert a.shape == e.shape, f"{what}: shape {a.shape} != Keras {e.shape}"
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what)


def assert_weights_moved_and_match(k_model, f_model, before, atol=STEP_ATOL):
    k_after, f_after = k_model.get_weights(), f_model.get_weights()
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(k_after, before))
    assert moved > 10 * atol, f"the step barely moved the weights ({moved:.2e}): the test would be vacuous"
    for i, (f, k) in enumerate(zip(f_after, k_after)):
        np.testing.assert_allclose(f, k, rtol=0, atol=atol, err_msg=f"weight {i} {k.shape}")


def layer_names(model):
    return [layer.name for layer in model.layers]


# --------------------------------------------------------------------------- graphs
def plain_chain(K, form="kwargs"):
    inputs = K.Input(shape=(12,), name="digits")
    x = K.layers.Dense(8, activation="relu", name="dense_1")(inputs)
    outputs = K.layers.Dense(5, activation="softmax", name="predictions")(x)
    if form == "kwargs":
        return K.Model(inputs=inputs, outputs=outputs)
    if form == "positional":
        return K.Model(inputs, outputs)
    if form == "models.Model":
        return K.models.Model(inputs=inputs, outputs=outputs, name="mnist_model")
    raise ValueError(form)


def wide_and_deep(K, outputs="dict", l2=None):
    """Two inputs; a layer shared by two branches; add, multiply and concatenate; two outputs."""
    L = K.layers
    wide = K.Input(shape=(5,), name="wide")
    deep = K.Input(shape=(6,), name="deep")
    reg = K.regularizers.l2(l2) if l2 else None
    h = L.Dense(8, activation="relu", kernel_regularizer=reg, name="h")(deep)
    shared = L.Dense(4, activation="tanh", name="shared")
    s1 = shared(L.Dense(4, name="proj_wide")(wide))
    s2 = shared(L.Dense(4, name="proj_deep")(deep))
    merged = L.concatenate([wide, h, L.add([s1, s2], name="sum"), L.multiply([s1, s2], name="prod")],
                           name="merged")
    priority = L.Dense(1, name="priority")(merged)
    department = L.Dense(4, activation="softmax", name="department")(merged)
    if outputs == "dict":
        outs = {"priority": priority, "department": department}
    elif outputs == "list":
        outs = [priority, department]
    else:
        raise ValueError(outputs)
    return K.Model(inputs=[wide, deep], outputs=outs)


def wd_data(n=16, seed=0):
    rs = np.random.RandomState(seed)
    x = {"wide": rs.randn(n, 5).astype(np.float32), "deep": rs.randn(n, 6).astype(np.float32)}
    y = {"priority": rs.randn(n, 1).astype(np.float32), "department": rs.randint(0, 4, size=n)}
    return x, y


ORDER = ("priority", "department")       # the list-outputs order of wide_and_deep


def as_list(d, order):
    return [d[k] for k in order]


def compile_wd(model, K, optimizer=None, outputs="dict", metrics=True, loss_order=("priority", "department")):
    losses = {"priority": "mse", "department": "sparse_categorical_crossentropy"}
    weights = {"priority": 1.0, "department": 0.2}
    mets = {"department": ["accuracy"], "priority": ["mae"]} if metrics else None
    if outputs == "dict":
        loss = {k: losses[k] for k in loss_order}
        loss_weights = {k: weights[k] for k in loss_order}
    else:
        loss, loss_weights = as_list(losses, ORDER), as_list(weights, ORDER)
        mets = as_list(mets, ORDER) if metrics else None
    model.compile(optimizer=optimizer or K.optimizers.SGD(learning_rate=0.05), loss=loss,
                  loss_weights=loss_weights, metrics=mets)



def merge_graph(K):
    """Every merge layer, in function and class form, two and three inputs, on a layer called twice."""
    L = K.layers
    a = K.Input(shape=(6,), name="a")
    b = K.Input(shape=(6,), name="b")
    c = K.Input(shape=(4,), name="c")
    shared = L.Dense(5, activation="tanh", name="shared")
    sa, sb = shared(a), shared(b)
    sc = L.Dense(5, activation="sigmoid", name="proj_c")(c)
    merged = [
        L.add([sa, sb], name="add2"), L.Add(name="add3")([sa, sb, sc]),
        L.subtract([sa, sb], name="sub_fn"), L.Subtract(name="sub_cls")([sc, sb]),
        L.multiply([sa, sb], name="mul2"), L.Multiply(name="mul3")([sa, sb, sc]),
        L.average([sa, sb], name="avg2"), L.Average(name="avg3")([sa, sb, sc]),
        L.maximum([sa, sb], name="max2"), L.Maximum(name="max3")([sa, sb, sc]),
        L.minimum([sa, sb], name="min2"), L.Minimum(name="min3")([sa, sb, sc]),
    ]
    cat = L.concatenate(merged + [a], name="cat_fn")
    cat = L.Concatenate(name="cat_cls")([c, cat])
    out = L.Dense(3, name="out")(cat)
    return K.Model(inputs=[a, b, c], outputs=out)


def merge_data(n=7, seed=1):
    rs = np.random.RandomState(seed)
    return [rs.randn(n, 6).astype(np.float32) * 1.5, rs.randn(n, 6).astype(np.float32) * 1.5,
            rs.randn(n, 4).astype(np.float32)]


# =========================================================================== 1. forward
@pytest.mark.parametrize("form", ["kwargs", "positional", "models.Model"])
def test_a_plain_functional_chain_predicts_what_keras_predicts(form):
    k_model, f_model = twins(plain_chain, form)
    assert layer_names(f_model) == layer_names(k_model) == ["digits", "dense_1", "predictions"]
    x = np.random.RandomState(0).randn(9, 12).astype(np.float32)
    expected = k_model.predict(x, verbose=0)
    assert_same(f_model.predict(x, verbose=0), expected)
    assert_same(f_model.predict(x, batch_size=4, verbose=0), expected)
    assert f_model.count_params() == k_model.count_params()


def test_wide_and_deep_with_dict_outputs_predicts_a_dict_equal_to_keras():
    k_model, f_model = twins(wide_and_deep, "dict")
    x, _ = wd_data()
    expected = k_model.predict(x, verbose=0)
    assert isinstance(expected, dict) and sorted(expected) == ["department", "priority"]
    assert_same(f_model.predict(x, verbose=0), expected)
    # inputs as a list in the order given to Model(inputs=[wide, deep])
    assert_same(f_model.predict([x["wide"], x["deep"]], verbose=0), expected)


KERAS_LAYER_ORDER = {   # decreasing depth; ties by first visit from the outputs (a dict's in sorted key order)
    "dict": ["wide", "deep", "proj_wide", "proj_deep", "shared", "h", "sum", "prod", "merged",
             "department", "priority"],
    "list": ["wide", "deep", "proj_wide", "proj_deep", "shared", "h", "sum", "prod", "merged",
             "priority", "department"],
}


@pytest.mark.parametrize("outputs", ["dict", "list"])
def test_layers_weights_and_output_names_follow_keras_order(outputs):
    k_model, f_model = twins(wide_and_deep, outputs)
    assert layer_names(k_model) == KERAS_LAYER_ORDER[outputs]
    assert layer_names(f_model) == layer_names(k_model)
    assert list(f_model.output_names) == list(k_model.output_names)
    # per layer, the weights landed where Keras has them
    for layer in k_model.layers:
        got = f_model.get_layer(layer.name).get_weights()
        assert_same(got, layer.get_weights(), atol=0, what=f"{outputs}: {layer.name}")


def test_weights_copied_layer_by_layer_by_name_give_keras_predictions():
    k_model = wide_and_deep(keras, "dict")
    f_model = wide_and_deep(fastmlp, "dict")
    for layer in k_model.layers:
        f_model.get_layer(layer.name).set_weights(layer.get_weights())
    x, _ = wd_data(seed=3)
    assert_same(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0))
    assert_same(f_model.get_weights(), k_model.get_weights(), atol=0)


def test_every_merge_layer_and_a_layer_called_twice_predict_what_keras_predicts():
    k_model, f_model = twins(merge_graph)
    assert layer_names(f_model) == layer_names(k_model)
    x = merge_data()
    assert_same(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0))
    assert_same(f_model.predict({"a": x[0], "b": x[1], "c": x[2]}, verbose=0), k_model.predict(x, verbose=0))


ACTIVATION_LAYERS = {
    "Softmax": lambda L: L.Softmax(name="act"),
    "Softmax_axis_-1": lambda L: L.Softmax(axis=-1, name="act"),
    "ReLU": lambda L: L.ReLU(name="act"),
    "ReLU_max_value": lambda L: L.ReLU(max_value=0.8, name="act"),
    "LeakyReLU": lambda L: L.LeakyReLU(name="act"),                       # negative_slope=0.3
    "LeakyReLU_0.05": lambda L: L.LeakyReLU(negative_slope=0.05, name="act"),
    "ELU": lambda L: L.ELU(name="act"),
    "ELU_0.5": lambda L: L.ELU(alpha=0.5, name="act"),
}


def activation_graph(K, kind):
    L = K.layers
    inp = K.Input(shape=(6,), name="x")
    h = L.Dense(7, name="d")(inp)
    a = ACTIVATION_LAYERS[kind](L)(h)
    return K.Model(inp, {"hidden": a, "out": L.Dense(3, name="o")(a)})


@pytest.mark.parametrize("kind", list(ACTIVATION_LAYERS))
def test_activation_layers_predict_what_keras_predicts(kind):
    k_model = activation_graph(keras, kind)
    f_model = activation_graph(fastmlp, kind)
    act = k_model.get_layer("act")
    if act.weights:    # PReLU: alpha starts at zeros (plain ReLU); make it distinct per unit
        (alpha,) = act.get_weights()
        assert not alpha.any()
        act.set_weights([np.random.RandomState(2).uniform(-0.5, 0.9, size=alpha.shape).astype(np.float32)])
    copy_weights(k_model, f_model)
    assert [tuple(w.shape) for w in f_model.get_layer("act").get_weights()] == \
           [tuple(w.shape) for w in act.get_weights()]
    x = np.random.RandomState(0).randn(11, 6).astype(np.float32) * 2.0
    assert_same(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0))


def test_a_relu_with_a_threshold_or_a_ceiling_and_a_slope_is_refused_naming_the_arguments():
    for kwargs in ({"max_value": 1.5, "negative_slope": 0.1, "threshold": 0.2}, {"threshold": 0.2},
                   {"max_value": 1.5, "negative_slope": 0.1}):
        with pytest.raises(ValueError, match="max_value.*negative_slope.*threshold"):
            fastmlp.layers.ReLU(**kwargs)


def core_layers_graph(K):
    """Flatten, BatchNormalization (inference), Activation, Dropout and GaussianNoise (identity in predict)."""
    L = K.layers
    inp = K.Input(shape=(2, 3), name="img")
    h = L.Dense(6, name="d1")(L.Flatten(name="flat")(inp))
    h = L.Activation("relu", name="relu")(L.BatchNormalization(name="bn")(h))
    h = L.GaussianNoise(0.3, name="noise")(L.Dropout(0.5, name="drop")(h))
    return K.Model(inp, L.Dense(2, name="out")(h))


def test_flatten_batchnorm_activation_dropout_and_noise_in_a_graph_predict_like_keras():
    k_model = core_layers_graph(keras)
    rs = np.random.RandomState(4)
    k_model.get_layer("bn").set_weights([rs.uniform(0.5, 2, 6), rs.randn(6), rs.randn(6), rs.uniform(0.5, 3, 6)])
    f_model = core_layers_graph(fastmlp)
    copy_weights(k_model, f_model)
    x = rs.randn(5, 2, 3).astype(np.float32)
    assert_same(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0))


# --------------------------------------------------------------------------- nested models
def nested_graph(K):
    L = K.layers
    sub_in = K.Input(shape=(5,), name="sub_in")
    h = L.Dense(4, activation="relu", name="sub_hidden")(sub_in)
    sub = K.Model(sub_in, L.Dense(3, name="sub_out")(h), name="sub")
    x = K.Input(shape=(5,), name="x")
    pre = L.Dense(5, activation="tanh", name="pre")(x)
    out = L.Dense(2, name="head")(L.concatenate([sub(pre), x], name="cat"))
    return K.Model(x, out, name="outer")


def siamese_graph(K):
    """One nested model applied to two inputs (its weights are shared)."""
    L = K.layers
    t_in = K.Input(shape=(4,), name="t_in")
    tower = K.Model(t_in, L.Dense(3, activation="elu", name="t_dense")(t_in), name="tower")
    a, b = K.Input(shape=(4,), name="a"), K.Input(shape=(4,), name="b")
    diff = L.subtract([tower(a), tower(b)], name="diff")
    return K.Model([a, b], L.Dense(1, activation="sigmoid", name="same")(diff))


def test_a_model_called_inside_another_model_predicts_what_keras_predicts():
    k_model, f_model = twins(nested_graph)
    assert layer_names(f_model) == layer_names(k_model) == ["x", "pre", "sub", "cat", "head"]
    x = np.random.RandomState(5).randn(6, 5).astype(np.float32)
    assert_same(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0))
    assert_same(f_model.get_layer("sub").predict(x, verbose=0), k_model.get_layer("sub").predict(x, verbose=0))


def test_a_nested_model_used_twice_shares_its_weights_like_keras():
    k_model, f_model = twins(siamese_graph)
    assert len(k_model.get_weights()) == 4       # tower kernel, bias; head kernel, bias
    rs = np.random.RandomState(6)
    x = [rs.randn(5, 4).astype(np.float32), rs.randn(5, 4).astype(np.float32)]
    assert_same(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0))


def unbuilt_sequential_graph(K):
    L = K.layers
    extractor = K.Sequential([L.Dense(6, activation="relu", name="e1"), L.Dense(3, name="e2")], name="extractor")
    x = K.Input(shape=(5,), name="x")
    return K.Model(x, L.Dense(2, name="head")(extractor(x)))


def test_a_sequential_without_an_input_builds_when_called_on_a_tensor_like_keras(tmp_path):
    """Keras builds a Sequential that declares no input shape on its first call on a tensor:
    the nested feature extractor of many functional programs.  Same layers, predictions,
    training steps and .keras files both ways."""
    k_model, f_model = twins(unbuilt_sequential_graph)
    assert layer_names(f_model) == layer_names(k_model)
    assert f_model.get_layer("extractor").input_shape == (None, 5)
    rs = np.random.RandomState(8)
    x, y = rs.randn(16, 5).astype(np.float32), rs.randn(16, 2).astype(np.float32)
    assert_same(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0))
    for m, lib in ((k_model, keras), (f_model, fastmlp)):
        m.compile(lib.optimizers.SGD(0.05), "mse")
        m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(f_model.get_weights(), k_model.get_weights()):
        assert_same(a, b, atol=STEP_ATOL, what="weights after fit")
    f_model.save(tmp_path / "f.keras")
    k_model.save(tmp_path / "k.keras")
    assert_same(keras.models.load_model(tmp_path / "f.keras").predict(x, verbose=0), f_model.predict(x, verbose=0))
    assert_same(fastmlp.load_model(tmp_path / "k.keras").predict(x, verbose=0), k_model.predict(x, verbose=0))


def logits_model(K):
    inp = K.Input(shape=(6,), name="features")
    h = K.layers.Dense(8, activation="relu", name="hidden")(inp)
    return K.Model(inp, K.layers.Dense(4, name="logits")(h), name="logits_model")


def test_sequential_of_a_functional_model_and_softmax_predicts_probabilities_like_keras():
    k_logits, f_logits = twins(logits_model)
    k_prob = keras.Sequential([k_logits, keras.layers.Softmax()])
    f_prob = fastmlp.Sequential([f_logits, fastmlp.layers.Softmax()])
    x = np.random.RandomState(7).randn(5, 6).astype(np.float32)
    expected = k_prob.predict(x, verbose=0)
    assert_same(f_prob.predict(x, verbose=0), expected)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-6)
    assert_same(f_prob.get_weights(), k_prob.get_weights(), atol=0)


def autoencoder_parts(K):
    inputs = K.Input(shape=(6,), name="inputs")
    code = K.layers.Dense(3, activation="tanh", name="code")(inputs)
    outputs = K.layers.Dense(6, name="reconstruction")(code)
    return K.Model(inputs, outputs), K.Model(inputs, code)


def test_an_encoder_cut_from_a_graph_shares_the_weights_and_follows_training_like_keras():
    k_full, k_encoder = autoencoder_parts(keras)
    f_full, f_encoder = autoencoder_parts(fastmlp)
    copy_weights(k_full, f_full)
    x = np.random.RandomState(8).randn(8, 6).astype(np.float32)
    assert_same(f_encoder.predict(x, verbose=0), k_encoder.predict(x, verbose=0))
    for K, model in ((keras, k_full), (fastmlp, f_full)):
        model.compile(optimizer=K.optimizers.SGD(learning_rate=0.1), loss="mse")
        model.fit(x, x, batch_size=8, epochs=1, shuffle=False, verbose=0)
    # the encoder sees the trained weights: it holds the same variables, not copies
    assert_same(f_encoder.predict(x, verbose=0), k_encoder.predict(x, verbose=0), atol=STEP_ATOL)
    assert_same(f_encoder.get_weights(), f_full.get_weights()[:2], atol=0)


def ensemble_graph(K):
    L = K.layers
    members = []
    for i in range(3):
        m_in = K.Input(shape=(4,), name=f"m{i}_in")
        members.append(K.Model(m_in, L.Dense(3, activation="softmax", name=f"m{i}_out")(
            L.Dense(5, activation="relu", name=f"m{i}_hidden")(m_in)), name=f"member{i}"))
    inp = K.Input(shape=(4,), name="inp")
    return K.Model(inp, L.average([m(inp) for m in members], name="vote"), name="ensemble")


def test_an_ensemble_averaging_three_models_predicts_what_keras_predicts():
    k_model, f_model = twins(ensemble_graph)
    assert layer_names(f_model) == layer_names(k_model)
    x = np.random.RandomState(9).randn(6, 4).astype(np.float32)
    assert_same(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0))


# =========================================================================== 2. one training step
OPTIMIZERS = {
    "SGD_momentum": lambda O: O.SGD(learning_rate=0.05, momentum=0.9),
    "RMSprop": lambda O: O.RMSprop(learning_rate=0.01),
    "Adagrad": lambda O: O.Adagrad(learning_rate=0.05),
    "Adadelta": lambda O: O.Adadelta(learning_rate=1.0, epsilon=1e-3),
    "Adam": lambda O: O.Adam(learning_rate=0.01),
    "AdamW": lambda O: O.AdamW(learning_rate=0.01, weight_decay=0.05),
    "Adamax": lambda O: O.Adamax(learning_rate=0.01),
    "Nadam": lambda O: O.Nadam(learning_rate=0.01),
}


@pytest.mark.parametrize("batches", [1, 3], ids=["one_step", "three_steps"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_a_multi_output_training_step_with_loss_weights_matches_keras(opt, batches):
    k_model, f_model = twins(wide_and_deep, "dict")
    before = k_model.get_weights()
    x, y = wd_data(n=8 * batches, seed=10)
    for K, model in ((keras, k_model), (fastmlp, f_model)):
        compile_wd(model, K, optimizer=OPTIMIZERS[opt](K.optimizers), metrics=False)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert_weights_moved_and_match(k_model, f_model, before)


def test_train_on_batch_returns_what_keras_returns_and_updates_alike():
    k_model, f_model = twins(wide_and_deep, "dict", l2=0.01)
    before = k_model.get_weights()
    x, y = wd_data(n=12, seed=11)
    results = {}
    for name, K, model in (("keras", keras, k_model), ("fastmlp", fastmlp, f_model)):
        compile_wd(model, K, optimizer=K.optimizers.Adam(learning_rate=0.01))
        results[name] = [model.train_on_batch(x, y), model.train_on_batch(x, y, return_dict=True)]
    assert_same(results["fastmlp"], results["keras"], atol=1e-6, rtol=1e-4)
    assert list(results["fastmlp"][1]) == list(results["keras"][1])
    assert_weights_moved_and_match(k_model, f_model, before)


# =========================================================================== 3. History
@pytest.mark.parametrize("outputs", ["dict", "list"])
def test_multi_output_history_keys_and_values_equal_keras(outputs):
    k_model, f_model = twins(wide_and_deep, outputs, l2=0.01)
    x, y = wd_data(n=16, seed=12)
    xv, yv = wd_data(n=8, seed=13)
    if outputs == "list":
        y, yv = as_list(y, ORDER), as_list(yv, ORDER)
    history = {}
    for name, K, model in (("keras", keras, k_model), ("fastmlp", fastmlp, f_model)):
        compile_wd(model, K, outputs=outputs)
        history[name] = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                                  validation_data=(xv, yv)).history
    expected = history["keras"]
    assert sorted(expected) == ["department_accuracy", "department_loss", "loss", "priority_loss", "priority_mae",
                                "val_department_accuracy", "val_department_loss", "val_loss",
                                "val_priority_loss", "val_priority_mae"]
    assert sorted(history["fastmlp"]) == sorted(expected)
    for key, values in expected.items():
        np.testing.assert_allclose(history["fastmlp"][key], values, rtol=1e-4, atol=1e-6, err_msg=key)


def test_per_output_losses_are_unweighted_and_loss_is_their_weighted_sum_plus_regularization():
    """Recomputed by hand from Keras's own predictions, for Keras and for fastmlp."""
    k_model, f_model = twins(wide_and_deep, "dict", l2=0.01)
    x, y = wd_data(n=16, seed=14)
    pred = k_model.predict(x, verbose=0)
    mse = np.mean((pred["priority"].astype(np.float64) - y["priority"]) ** 2)
    p = np.clip(pred["department"][np.arange(16), y["department"]].astype(np.float64), 1e-7, 1 - 1e-7)
    sce = -np.mean(np.log(p))
    reg = 0.01 * np.sum(k_model.get_layer("h").get_weights()[0].astype(np.float64) ** 2)
    for K, model in ((keras, k_model), (fastmlp, f_model)):
        compile_wd(model, K)
        logs = model.evaluate(x, y, verbose=0, return_dict=True)
        np.testing.assert_allclose(logs["priority_loss"], mse, rtol=1e-4)
        np.testing.assert_allclose(logs["department_loss"], sce, rtol=1e-4)
        np.testing.assert_allclose(logs["loss"], 1.0 * mse + 0.2 * sce + reg, rtol=1e-4)


# =========================================================================== 4. evaluate / predict structures
@pytest.mark.parametrize("loss_order", [("priority", "department"), ("department", "priority")])
def test_multi_output_evaluate_returns_keras_list_order_and_dict_keys(loss_order):
    k_model, f_model = twins(wide_and_deep, "dict")
    x, y = wd_data(n=12, seed=15)
    results = {}
    for name, K, model in (("keras", keras, k_model), ("fastmlp", fastmlp, f_model)):
        compile_wd(model, K, loss_order=loss_order)
        results[name] = (model.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0, return_dict=True))
    (k_list, k_dict), (f_list, f_dict) = results["keras"], results["fastmlp"]
    # Keras: loss, the per-output losses in the loss dict's order, then the other metrics sorted by name
    order = ["loss"] + [f"{k}_loss" for k in loss_order] + ["department_accuracy", "priority_mae"]
    assert_same(k_list, [k_dict[key] for key in order], atol=0)
    assert sorted(f_dict) == sorted(k_dict)
    assert_same(f_dict, k_dict, atol=1e-6, rtol=1e-4)
    assert_same(f_list, k_list, atol=1e-6, rtol=1e-4)


def test_single_output_evaluate_is_a_float_without_metrics_and_a_list_with_them():
    k_model, f_model = twins(plain_chain)
    rs = np.random.RandomState(16)
    x, y = rs.randn(10, 12).astype(np.float32), rs.randint(0, 5, size=10)
    for metrics in (None, ["accuracy"]):
        results = []
        for K, model in ((keras, k_model), (fastmlp, f_model)):
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=metrics)
            results.append((model.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0, return_dict=True)))
        (k_res, k_dict), (f_res, f_dict) = results
        assert isinstance(k_res, float) == (metrics is None)
        assert_same(f_res, k_res, atol=1e-6, rtol=1e-4)
        assert sorted(f_dict) == sorted(k_dict)


def predict_structure_graph(K, kind):
    L = K.layers
    inp = K.Input(shape=(3,), name="inp")
    a = L.Dense(2, name="a")(inp)
    b = L.Dense(1, name="b")(inp)
    outputs = {"list": [a, b], "dict": {"b": b, "a": a}, "single": a, "single_list": [a],
               "single_dict": {"a": a}}[kind]
    return K.Model(inp, outputs)


@pytest.mark.parametrize("kind", ["list", "dict", "single", "single_list", "single_dict"])
def test_predict_returns_the_structure_keras_returns(kind):
    k_model, f_model = twins(predict_structure_graph, kind)
    x = np.random.RandomState(17).randn(4, 3).astype(np.float32)
    expected = k_model.predict(x, verbose=0)
    expected_type = {"list": list, "dict": dict, "single": np.ndarray, "single_list": np.ndarray,
                     "single_dict": dict}[kind]
    assert isinstance(expected, expected_type)
    got = f_model.predict(x, verbose=0)
    assert isinstance(got, expected_type)
    assert_same(got, expected)


def test_list_outputs_history_is_named_after_the_output_layers():
    def build(K):
        inp = K.Input(shape=(3,), name="inp")
        h = K.layers.Dense(4, activation="relu", name="h")(inp)
        model = K.Model(inp, [K.layers.Dense(1, name="reg")(h), K.layers.Dense(3, activation="softmax",
                                                                               name="cls")(h)])
        model.compile(optimizer="sgd", loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[0.5, 2.0],
                      metrics=["mae", "accuracy"])     # a flat list with one metric per output
        return model
    k_model, f_model = twins(build)
    rs = np.random.RandomState(18)
    x, y = rs.randn(8, 3).astype(np.float32), [rs.randn(8, 1).astype(np.float32), rs.randint(0, 3, size=8)]
    k_hist = k_model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    f_hist = f_model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    assert sorted(k_hist) == ["cls_accuracy", "cls_loss", "loss", "reg_loss", "reg_mae"]
    assert sorted(f_hist) == sorted(k_hist)
    for key in k_hist:
        np.testing.assert_allclose(f_hist[key], k_hist[key], rtol=1e-4, atol=1e-6, err_msg=key)


# =========================================================================== errors
def _disconnected(K):
    a, b = K.Input(shape=(4,), name="a"), K.Input(shape=(4,), name="b")
    return K.Model(a, K.layers.Dense(2, name="from_b")(b))


def _dense_reused_on_another_width(K):
    dense = K.layers.Dense(3, name="d")
    dense(K.Input(shape=(5,)))
    return dense(K.Input(shape=(6,)))


def _predict_missing_key(K):
    model = _two_input_model(K)
    return model.predict({"wide": np.zeros((2, 2), np.float32)}, verbose=0)


def _fit_missing_key(K):
    model = _two_input_model(K)
    model.compile(optimizer="sgd", loss="mse")
    return model.fit({"wide": np.zeros((2, 2), np.float32)}, np.zeros((2, 1), np.float32), verbose=0)


def _two_input_model(K):
    wide, deep = K.Input(shape=(2,), name="wide"), K.Input(shape=(3,), name="deep")
    return K.Model([wide, deep], K.layers.Dense(1, name="o")(K.layers.concatenate([wide, deep])))


ERRORS = {
    "outputs_not_connected_to_inputs": (_disconnected, r"Output .*is not connected to `inputs`"),
    "dense_on_incompatible_shape": (_dense_reused_on_another_width,
                                    r"incompatible with the layer: expected axis -1 of input shape to have "
                                    r"value 5, but received input with shape \(None, 6\)"),
    "predict_missing_input_key": (_predict_missing_key, r'Missing data for input "deep"'),
    "fit_missing_input_key": (_fit_missing_key, r'Missing data for input "deep"'),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_malformed_graphs_and_inputs_raise_the_value_error_keras_raises(case):
    action, message = ERRORS[case]
    for K in (keras, fastmlp):
        with pytest.raises(ValueError, match=message):
            action(K)
