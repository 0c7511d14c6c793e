"""Central-difference checks of ``Network.loss_and_grads`` in float64.

For every hidden activation and every loss (with an output activation that
makes the loss meaningful, plus from_logits=True on a linear output) on a
3-5-4-C network with random weights, L1/L2 regularizers and sample weights,
the engine's flat gradient must equal

    (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps),   eps = 1e-6

for every parameter, where L is the loss the engine itself reports (it
includes the regularization penalty).  The reported loss is also checked
against the NumPy reference forward pass.  Kinks (relu at 0, hinge margins,
L1 at 0) are avoided by random continuous data.
"""
import zlib

import numpy as np
import pytest

import fastmlp
from fastmlp.layers import Dense, Dropout

import reference as ref

EPS = 1e-6
HIDDEN = list(ref.ACTIVATION_CODES)

# name -> (loss factory, output activation, loss name in reference, reference kwargs)
LOSS_SETUPS = {
    "mse_linear": (lambda: fastmlp.losses.MeanSquaredError(), "linear", "mse", {}),
    "mae_linear": (lambda: fastmlp.losses.MeanAbsoluteError(), "linear", "mae", {}),
    "mape_softplus": (lambda: fastmlp.losses.MeanAbsolutePercentageError(), "softplus", "mape", {}),
    "msle_softplus": (lambda: fastmlp.losses.MeanSquaredLogarithmicError(), "softplus", "msle", {}),
    "huber_linear": (lambda: fastmlp.losses.Huber(delta=0.4), "linear", "huber", {"delta": 0.4}),
    "log_cosh_linear": (lambda: fastmlp.losses.LogCosh(), "linear", "log_cosh", {}),
    "bce_sigmoid_fused": (lambda: fastmlp.losses.BinaryCrossentropy(), "sigmoid", "bce", {}),
    "bce_sigmoid_smoothed": (lambda: fastmlp.losses.BinaryCrossentropy(label_smoothing=0.1), "sigmoid",
                             "bce", {"label_smoothing": 0.1}),
    "bce_softmax_probabilities": (lambda: fastmlp.losses.BinaryCrossentropy(), "softmax", "bce", {}),
    "bce_linear_from_logits": (lambda: fastmlp.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
                               "linear", "bce", {"from_logits": True, "label_smoothing": 0.2}),
    "cce_softmax_fused": (lambda: fastmlp.losses.CategoricalCrossentropy(), "softmax", "cce", {}),
    "cce_softmax_smoothed": (lambda: fastmlp.losses.CategoricalCrossentropy(label_smoothing=0.15), "softmax",
                             "cce", {"label_smoothing": 0.15}),
    "cce_sigmoid_probabilities": (lambda: fastmlp.losses.CategoricalCrossentropy(), "sigmoid", "cce", {}),
    "cce_linear_from_logits": (lambda: fastmlp.losses.CategoricalCrossentropy(from_logits=True), "linear",
                               "cce", {"from_logits": True}),
    "scce_softmax_fused": (lambda: fastmlp.losses.SparseCategoricalCrossentropy(), "softmax", "scce", {}),
    "scce_sigmoid_probabilities": (lambda: fastmlp.losses.SparseCategoricalCrossentropy(), "sigmoid",
                                   "scce", {}),
    "scce_linear_from_logits": (lambda: fastmlp.losses.SparseCategoricalCrossentropy(from_logits=True),
                                "linear", "scce", {"from_logits": True}),
    # log-probabilities are logits too (torch's log_softmax + NLLLoss, in Keras's words)
    "scce_log_softmax_from_logits": (lambda: fastmlp.losses.SparseCategoricalCrossentropy(from_logits=True),
                                     "log_softmax", "scce", {"from_logits": True}),
    "hinge_linear": (lambda: fastmlp.losses.Hinge(), "linear", "hinge", {}),
    "squared_hinge_tanh": (lambda: fastmlp.losses.SquaredHinge(), "tanh", "squared_hinge", {}),
    "categorical_hinge_softmax": (lambda: fastmlp.losses.CategoricalHinge(), "softmax", "categorical_hinge", {}),
    "kld_softmax": (lambda: fastmlp.losses.KLDivergence(), "softmax", "kld", {}),
    "poisson_exponential": (lambda: fastmlp.losses.Poisson(), "exponential", "poisson", {}),
    "poisson_softplus": (lambda: fastmlp.losses.Poisson(), "softplus", "poisson", {}),
}


def _targets(loss_name, rng, n, C):
    """Raw targets as a user would pass them."""
    if loss_name in ("mse", "mae", "huber", "log_cosh"):
        return rng.standard_normal((n, C))
    if loss_name == "mape":
        return rng.uniform(0.5, 2.0, (n, C))
    if loss_name in ("msle", "poisson"):
        return rng.uniform(0.0, 3.0, (n, C))
    if loss_name == "bce":
        return rng.integers(0, 2, (n, C)).astype(float)
    if loss_name in ("cce", "categorical_hinge"):
        return ref.one_hot(rng.integers(0, C, n), C)
    if loss_name == "kld":
        return ref.softmax(rng.standard_normal((n, C)))
    if loss_name == "scce":
        return rng.integers(0, C, n)
    if loss_name in ("hinge", "squared_hinge"):
        return rng.integers(0, 2, (n, C)).astype(float)     # {0, 1}: Keras converts to {-1, 1}
    raise AssertionError(loss_name)


def _act_spec(layer):
    name = fastmlp.activations.serialize(layer.activation)
    return (name, layer.activation._fm_alpha) if name in ref.DEFAULT_ALPHA else name


def _build(hidden, out_act, loss, C, rng, regularized=True, extra_layers=None):
    """A float64 3-5-4-C model (compiled) with random weights; returns the model."""
    fastmlp.config.set_floatx("float64")
    reg = fastmlp.regularizers.L1L2(l1=0.01, l2=0.02) if regularized else None
    breg = fastmlp.regularizers.L2(0.03) if regularized else None
    layers = extra_layers or [
        Dense(5, activation=hidden, kernel_regularizer=reg, bias_regularizer=breg),
        Dense(4, activation=hidden, kernel_regularizer=fastmlp.regularizers.L1(0.02) if regularized else None),
        Dense(C, activation=out_act),
    ]
    model = fastmlp.Sequential([fastmlp.Input(shape=(3,))] + layers)
    model.compile(optimizer="sgd", loss=loss)
    # moderate weights keep probabilities well inside Keras's clip range (1e-7); log_softmax's
    # outputs (log-probabilities, down to about -15 here) would otherwise push them past it
    scale = 0.4 if hidden == "exponential" or out_act == "exponential" else 0.25 if hidden == "log_softmax" else 0.6
    dense = [l for l in model.layers if isinstance(l, Dense)]
    for layer in dense:
        s = 0.4 if layer is dense[-1] else scale
        layer.kernel[...] = rng.standard_normal(layer.kernel.shape) * s
        if layer.bias is not None:
            layer.bias[...] = rng.standard_normal(layer.bias.shape) * 0.3
    return model


def _reference_loss(model, X, raw_y, w, loss_name, kw):
    dense = [l for l in model.layers if isinstance(l, Dense)]
    acts = [_act_spec(l) for l in dense]
    fused = not kw.get("from_logits") and (
        (loss_name in ("cce", "scce") and acts[-1] == "softmax") or (loss_name == "bce" and acts[-1] == "sigmoid"))
    if fused:
        # softmax/sigmoid + cross-entropy run in the stable form from the logits
        # (as Keras does with the TensorFlow backend): no probability clipping
        acts[-1] = "linear"
        kw = {**kw, "from_logits": True}
    P = ref.forward([(l.kernel, l.bias, a) for l, a in zip(dense, acts)], X)
    rows = ref.loss_value(loss_name, raw_y, P, **kw)
    value = np.sum(w * rows) / len(X)
    for var_off, size, l1, l2 in model._variables:
        value += ref.regularization_loss(model._params[var_off:var_off + size], l1, l2)
    return value


def _central_difference(f, params):
    grad = np.zeros_like(params)
    for i in range(len(params)):
        old = params[i]
        params[i] = old + EPS
        up = f()
        params[i] = old - EPS
        dn = f()
        params[i] = old
        grad[i] = (up - dn) / (2 * EPS)
    return grad


def _check_gradient(model, X, Y, labels, w, seed=0, step=0, training=False):
    spec = model.loss._spec()
    params = model._params
    net = model._net
    value, grads = net.loss_and_grads(params, X, Y, labels, w, spec, seed, step, training)
    numeric = _central_difference(
        lambda: net.loss_and_grads(params, X, Y, labels, w, spec, seed, step, training)[0], params)
    used = np.zeros(len(params), bool)
    for off, size, _, _ in model._variables:
        used[off:off + size] = True
    np.testing.assert_array_equal(grads[~used], 0, err_msg="gradient in the padding between variables")
    scale = max(1.0, np.abs(numeric).max())
    np.testing.assert_allclose(grads[used], numeric[used], rtol=1e-5, atol=2e-7 * scale)
    return value, grads


@pytest.mark.parametrize("setup", list(LOSS_SETUPS))
@pytest.mark.parametrize("hidden", HIDDEN)
def test_network_gradient_matches_central_difference_for_every_activation_and_loss(hidden, setup):
    make_loss, out_act, loss_name, kw = LOSS_SETUPS[setup]
    rng = np.random.default_rng(zlib.crc32(f"{hidden}/{setup}".encode()))
    C = 3
    model = _build(hidden, out_act, make_loss(), C, rng)
    X = rng.standard_normal((7, 3))
    raw_y = _targets(loss_name, rng, 7, C)
    Y, labels = model.loss.prepare_targets(raw_y, C, np.float64)
    w = rng.uniform(0.2, 2.0, 7)
    value, _ = _check_gradient(model, X, Y, labels, w)
    # the loss itself is the reference's: weighted mean over the batch plus the penalties
    np.testing.assert_allclose(value, _reference_loss(model, X, raw_y, w, loss_name, kw), rtol=1e-9)


@pytest.mark.parametrize("setup", ["mse_linear", "cce_softmax_fused", "bce_sigmoid_fused", "scce_linear_from_logits"])
def test_network_gradient_without_regularizers_or_sample_weights_matches_central_difference(setup):
    make_loss, out_act, loss_name, kw = LOSS_SETUPS[setup]
    rng = np.random.default_rng(42)
    model = _build("tanh", out_act, make_loss(), 4, rng, regularized=False)
    X = rng.standard_normal((5, 3))
    raw_y = _targets(loss_name, rng, 5, 4)
    Y, labels = model.loss.prepare_targets(raw_y, 4, np.float64)
    value, _ = _check_gradient(model, X, Y, labels, None)
    np.testing.assert_allclose(value, _reference_loss(model, X, raw_y, np.ones(5), loss_name, kw), rtol=1e-9)


def test_network_gradient_with_a_single_row_and_a_single_output_matches_central_difference():
    rng = np.random.default_rng(3)
    model = _build("elu", "sigmoid", fastmlp.losses.BinaryCrossentropy(), 1, rng)
    X = rng.standard_normal((1, 3))
    Y, labels = model.loss.prepare_targets(np.array([1.0]), 1, np.float64)
    _check_gradient(model, X, Y, labels, np.array([0.7]))


def test_network_gradient_of_a_layer_without_bias_matches_central_difference():
    rng = np.random.default_rng(4)
    fastmlp.config.set_floatx("float64")
    model = fastmlp.Sequential([fastmlp.Input(shape=(3,)), Dense(5, "swish", use_bias=False),
                                Dense(2, "softmax", use_bias=False)])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model._params[:] = rng.standard_normal(model._params.shape)
    X = rng.standard_normal((6, 3))
    Y, _ = model.loss.prepare_targets(ref.one_hot(rng.integers(0, 2, 6), 2), 2, np.float64)
    _check_gradient(model, X, Y, None, None)


def test_sample_weights_scale_each_row_contribution_to_the_loss_and_gradient():
    rng = np.random.default_rng(8)
    model = _build("tanh", "linear", fastmlp.losses.MeanSquaredError(), 2, rng, regularized=False)
    X = rng.standard_normal((3, 3))
    Y = rng.standard_normal((3, 2))
    spec = model.loss._spec()
    v_w, g_w = model._net.loss_and_grads(model._params, X, Y, None, np.array([2.0, 0.0, 1.0]), spec)
    X2, Y2 = X[[0, 0, 2]].copy(), Y[[0, 0, 2]].copy()
    v_d, g_d = model._net.loss_and_grads(model._params, X2, Y2, None, None, spec)
    # sum_over_batch_size divides by the number of rows (3 in both batches)
    np.testing.assert_allclose(v_w, v_d, rtol=1e-12)
    np.testing.assert_allclose(g_w, g_d, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- float32 network
@pytest.mark.parametrize("setup", ["mse_linear", "cce_softmax_fused", "bce_sigmoid_fused", "kld_softmax",
                                   "scce_sigmoid_probabilities"])
@pytest.mark.parametrize("hidden", ["relu", "gelu", "swish", "selu"])
def test_float32_network_gradient_agrees_with_the_float64_network(hidden, setup):
    make_loss, out_act, loss_name, _ = LOSS_SETUPS[setup]
    rng = np.random.default_rng(12)
    m64 = _build(hidden, out_act, make_loss(), 3, rng)
    fastmlp.config.set_floatx("float32")
    layers = [Dense(l.units, activation=fastmlp.activations.serialize(l.activation),
                    kernel_regularizer=l.kernel_regularizer, bias_regularizer=l.bias_regularizer)
              for l in m64.layers]
    m32 = fastmlp.Sequential([fastmlp.Input(shape=(3,))] + layers)
    m32.compile(optimizer="sgd", loss=make_loss())
    assert m32._params.dtype == np.float32
    m32.set_weights(m64.get_weights())
    X = rng.standard_normal((9, 3))
    raw_y = _targets(loss_name, rng, 9, 3)
    w = rng.uniform(0.2, 2.0, 9)
    Y64, lab = m64.loss.prepare_targets(raw_y, 3, np.float64)
    Y32, _ = m32.loss.prepare_targets(raw_y, 3, np.float32)
    v64, g64 = m64._net.loss_and_grads(m64._params, X, Y64, lab, w, m64.loss._spec())
    v32, g32 = m32._net.loss_and_grads(m32._params, X.astype(np.float32), Y32, lab, w.astype(np.float32),
                                       m32.loss._spec())
    assert g32.dtype == np.float32
    np.testing.assert_allclose(v32, v64, rtol=2e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5 * max(1, np.abs(g64).max()))


# --------------------------------------------------------------------------- dropout
def _dropout_model(rng, layer_seed=None):
    return _build("tanh", "softmax", fastmlp.losses.CategoricalCrossentropy(), 3, rng, extra_layers=[
        Dropout(0.3, seed=layer_seed),
        Dense(5, activation="tanh", kernel_regularizer=fastmlp.regularizers.L2(0.01)),
        Dropout(0.5),
        Dense(4, activation="elu"),
        Dense(3, activation="softmax"),
    ])


def _dropout_data(rng, model, n=8):
    X = rng.standard_normal((n, 3))
    Y, _ = model.loss.prepare_targets(ref.one_hot(rng.integers(0, 3, n), 3), 3, np.float64)
    return X, Y, rng.uniform(0.5, 1.5, n)


@pytest.mark.parametrize("layer_seed", [None, 17])
def test_dropout_training_gradient_matches_central_difference_under_the_same_mask(layer_seed):
    rng = np.random.default_rng(21)
    model = _dropout_model(rng, layer_seed)
    X, Y, w = _dropout_data(rng, model)
    _check_gradient(model, X, Y, None, w, seed=123, step=5, training=True)


def test_dropout_training_loss_and_gradient_are_deterministic_for_fixed_seed_and_step():
    rng = np.random.default_rng(22)
    model = _dropout_model(rng)
    X, Y, w = _dropout_data(rng, model)
    spec, p, net = model.loss._spec(), model._params, model._net
    a = net.loss_and_grads(p, X, Y, None, w, spec, 99, 3, True)
    b = net.loss_and_grads(p, X, Y, None, w, spec, 99, 3, True)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    # another step or another seed draws another mask
    assert net.loss_and_grads(p, X, Y, None, w, spec, 99, 4, True)[0] != a[0]
    assert net.loss_and_grads(p, X, Y, None, w, spec, 100, 3, True)[0] != a[0]
    # at inference (training=False) dropout is the identity
    inference = net.loss_and_grads(p, X, Y, None, w, spec, 99, 3, False)[0]
    assert inference != a[0]
    np.testing.assert_allclose(inference, _reference_loss(model, X, Y, w, "cce", {}), rtol=1e-10)


def test_dropout_with_rate_zero_is_the_identity_in_training():
    rng = np.random.default_rng(23)
    m = _build("tanh", "softmax", fastmlp.losses.CategoricalCrossentropy(), 3, rng, extra_layers=[
        Dense(5, activation="tanh"), Dropout(0.0), Dense(3, activation="softmax")])
    X, Y, w = _dropout_data(rng, m)
    spec = m.loss._spec()
    train = m._net.loss_and_grads(m._params, X, Y, None, w, spec, 5, 1, True)
    infer = m._net.loss_and_grads(m._params, X, Y, None, w, spec, 5, 1, False)
    assert train[0] == infer[0]
    np.testing.assert_array_equal(train[1], infer[1])


def test_dropout_keeps_about_one_minus_rate_of_units_scaled_by_the_inverse():
    """With a linear identity-like net the dropout mask is visible in the loss gradient."""
    fastmlp.config.set_floatx("float64")
    model = fastmlp.Sequential([fastmlp.Input(shape=(200,)), Dropout(0.25), Dense(200, use_bias=False)])
    model.compile(optimizer="sgd", loss="mse")
    model.layers[1].kernel[...] = np.eye(200)
    X = np.ones((10, 200))
    Y = np.zeros((10, 200))
    value, _ = model._net.loss_and_grads(model._params, X, Y, None, None, model.loss._spec(), 7, 0, True)
    # output is mask * x: each element is 0 or 1 / 0.75; mse = mean(out^2) = keep_fraction / 0.75^2
    keep = value * 0.75 ** 2
    assert 0.70 < keep < 0.80


# --------------------------------------------------------------------------- evaluation and training
@pytest.mark.parametrize("setup", ["cce_softmax_fused", "bce_sigmoid_fused", "mse_linear", "kld_softmax"])
def test_network_evaluate_in_chunks_reports_the_same_loss_as_loss_and_grads(setup):
    make_loss, out_act, loss_name, _ = LOSS_SETUPS[setup]
    rng = np.random.default_rng(51)
    model = _build("gelu", out_act, make_loss(), 3, rng)
    X = rng.standard_normal((7, 3))
    Y, labels = model.loss.prepare_targets(_targets(loss_name, rng, 7, 3), 3, np.float64)
    w = rng.uniform(0.2, 2.0, 7)
    value, _ = model._net.loss_and_grads(model._params, X, Y, labels, w, model.loss._spec())
    loss_sum, rows, weight_sum, _, _ = model._net.evaluate(model._params, X, Y, labels, w, 3,
                                                        model.loss._spec(), [])
    assert rows == 7 and weight_sum == pytest.approx(w.sum())
    np.testing.assert_allclose(loss_sum / rows, value, rtol=1e-12)


_OPTIMIZERS = {
    "sgd": lambda: fastmlp.optimizers.SGD(0.1, momentum=0.5, nesterov=True),
    "rmsprop": lambda: fastmlp.optimizers.RMSprop(0.01, momentum=0.3, centered=True),
    "adagrad": lambda: fastmlp.optimizers.Adagrad(0.1),
    "adadelta": lambda: fastmlp.optimizers.Adadelta(1.0),
    "adam": lambda: fastmlp.optimizers.Adam(0.01, amsgrad=True, clipnorm=0.5),
    "adamw": lambda: fastmlp.optimizers.AdamW(0.01, weight_decay=0.1),
    "adamax": lambda: fastmlp.optimizers.Adamax(0.01, global_clipnorm=0.3),
    "nadam": lambda: fastmlp.optimizers.Nadam(0.01, clipvalue=0.05),
}


@pytest.mark.parametrize("opt_name", list(_OPTIMIZERS))
def test_train_on_batch_equals_loss_and_grads_followed_by_the_reference_optimizer_rule(opt_name):
    """The fused training step = the network gradient (with regularizers) + the Keras rule."""
    rng = np.random.default_rng(61)
    model = _build("tanh", "softmax", fastmlp.losses.CategoricalCrossentropy(), 3, rng)
    model.compile(optimizer=_OPTIMIZERS[opt_name](), loss=fastmlp.losses.CategoricalCrossentropy())
    opt = model.optimizer
    config = ref.optimizer_config(opt_name, **{k: v for k, v in opt.get_config().items()
                                               if k not in ("name", "initial_accumulator_value")})
    segments = [(off, size) for off, size, _, _ in model._variables]
    w_ref = [model._params[o:o + s].copy() for o, s in segments]
    state = ref.init_state(opt_name, config, w_ref)
    for t in range(3):
        X = rng.standard_normal((6, 3))
        raw_y = ref.one_hot(rng.integers(0, 3, 6), 3)
        Y, _ = model.loss.prepare_targets(raw_y, 3, np.float64)
        value, grads = model._net.loss_and_grads(model._params, X, Y, None, None, model.loss._spec())
        reported = model.train_on_batch(X, raw_y)
        np.testing.assert_allclose(reported, value, rtol=1e-12)
        w_ref = ref.optimizer_step(opt_name, config, w_ref, [grads[o:o + s] for o, s in segments], state, t)
        got = np.concatenate([model._params[o:o + s] for o, s in segments])
        np.testing.assert_allclose(got, np.concatenate(w_ref), rtol=1e-10, atol=1e-12)
    assert opt.iterations == 3


@pytest.mark.parametrize("loss_name", ["cce", "scce"])
def test_cross_entropy_of_outputs_with_a_negative_sum_divides_by_it_as_keras_does(loss_name):
    """A linear output under a probability cross-entropy: Keras divides each row by its sum
    whatever its sign, then clips.  Rows here sum to about -6 (far from 0, where the loss is
    steep); the value is the reference's and the gradient the central differences'."""
    rng = np.random.default_rng(11)
    loss = fastmlp.losses.CategoricalCrossentropy() if loss_name == "cce" else \
        fastmlp.losses.SparseCategoricalCrossentropy()
    model = _build("tanh", "linear", loss, 3, rng, regularized=False)
    model.layers[-1].bias[...] = -2.0
    X = rng.standard_normal((7, 3))
    raw_y = _targets(loss_name, rng, 7, 3)
    Y, labels = model.loss.prepare_targets(raw_y, 3, np.float64)
    assert np.all(model.predict(X, verbose=0).sum(axis=1) < -3)
    w = np.ones(7)
    value, _ = _check_gradient(model, X, Y, labels, w)
    np.testing.assert_allclose(value, _reference_loss(model, X, raw_y, w, loss_name, {}), rtol=1e-9)
