"""A plain-NumPy float64 reference of every fastmlp op, following Keras 3.

Nothing here imports fastmlp: the tests compare the C engine with these
formulas.  Everything works in float64 whatever the input dtype.

Contents
--------
* ``ACTIVATIONS[name] -> (fn, dfn)``: ``fn(z)`` the activation, ``dfn(z)`` its
  derivative w.r.t. the pre-activation (elementwise; for softmax the per-row
  Jacobian, shape (rows, C, C)).  ``activation(name, z, alpha)`` and
  ``activation_backward(name, z, dA, alpha)`` handle elu's alpha and
  leaky_relu's negative slope.
* ``loss_value(name, y, p, ...)``: per-sample loss values (Keras reductions);
  ``loss_grad(name, y, p, ...)``: dl_r/dp by a float64 central difference of
  ``loss_value`` (no hand-derived formulas to share mistakes with the engine).
* ``metric_value(name, y, p, param)``: per-sample metric values.
* ``forward(layers, x)``: a dense stack, ``layers = [(kernel, bias, act), ...]``.
* ``optimizer_step(name, config, w, g, state, t)``: one Keras 3 update of a
  list of variables.
* ``assert_gradient_by_central_difference(f, params, segments)``: checks a
  function's analytic gradient parameter by parameter.
"""
import math

import numpy as np

EPSILON = 1e-7
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805

ACTIVATION_CODES = {
    "linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "softmax": 4, "elu": 5, "selu": 6,
    "leaky_relu": 7, "gelu": 8, "softplus": 9, "softsign": 10, "swish": 11,
    "hard_sigmoid": 12, "exponential": 13, "relu6": 14, "log_softmax": 16,
}
# The engine's `alpha` argument: elu's alpha and leaky_relu's negative slope (Keras defaults).
DEFAULT_ALPHA = {"elu": 1.0, "leaky_relu": 0.2}

LOSS_CODES = {
    "mse": 0, "mae": 1, "mape": 2, "msle": 3, "huber": 4, "log_cosh": 5, "bce": 6, "cce": 7,
    "scce": 8, "hinge": 9, "squared_hinge": 10, "categorical_hinge": 11, "kld": 12, "poisson": 13,
}
METRIC_CODES = {
    "binary_accuracy": 0, "categorical_accuracy": 1, "sparse_categorical_accuracy": 2,
    "top_k_categorical_accuracy": 3, "sparse_top_k_categorical_accuracy": 4,
    "mae": 5, "mse": 6,
}
OPTIMIZER_CODES = {
    "sgd": 0, "rmsprop": 1, "adagrad": 2, "adadelta": 3, "adam": 4, "adamw": 5, "adamax": 6,
    "nadam": 7,
}


def _f64(a):
    return np.asarray(a, dtype=np.float64)


# --------------------------------------------------------------------------- activations
def sigmoid(z):
    z = _f64(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def softplus(z):
    z = _f64(z)
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def softmax(z):
    z = _f64(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_jacobian(z):
    p = softmax(z)
    return np.einsum("ri,ij->rij", p, np.eye(p.shape[-1])) - np.einsum("ri,rj->rij", p, p)


def log_softmax(z):
    z = _f64(z)
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _log_softmax_jacobian(z):
    """d log_softmax(z)_i / d z_j = [i == j] - softmax(z)_j."""
    p = softmax(z)
    return np.eye(p.shape[-1])[None] - p[:, None, :]


_erf = np.vectorize(math.erf, otypes=[float])


def _normal_pdf(z):
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _normal_cdf(z):
    return 0.5 * (1 + _erf(z / math.sqrt(2)))


def _elu(z, alpha=1.0):
    return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))


def _d_elu(z, alpha=1.0):
    return np.where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0)))


def _leaky(z, alpha=0.2):
    return np.where(z > 0, z, alpha * z)


def _d_leaky(z, alpha=0.2):
    return np.where(z > 0, 1.0, alpha)


ACTIVATIONS = {
    "linear": (lambda z: _f64(z), lambda z: np.ones_like(_f64(z))),
    "relu": (lambda z: np.maximum(_f64(z), 0), lambda z: (_f64(z) > 0).astype(float)),
    "sigmoid": (sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z))),
    "tanh": (lambda z: np.tanh(_f64(z)), lambda z: 1 - np.tanh(_f64(z)) ** 2),
    "softmax": (softmax, _softmax_jacobian),
    "log_softmax": (log_softmax, _log_softmax_jacobian),
    "elu": (lambda z, alpha=1.0: _elu(_f64(z), alpha), lambda z, alpha=1.0: _d_elu(_f64(z), alpha)),
    "selu": (lambda z: SELU_SCALE * _elu(_f64(z), SELU_ALPHA),
             lambda z: SELU_SCALE * _d_elu(_f64(z), SELU_ALPHA)),
    "leaky_relu": (lambda z, alpha=0.2: _leaky(_f64(z), alpha),
                   lambda z, alpha=0.2: _d_leaky(_f64(z), alpha)),
    "gelu": (lambda z: _f64(z) * _normal_cdf(_f64(z)),
             lambda z: _normal_cdf(_f64(z)) + _f64(z) * _normal_pdf(_f64(z))),
    "softplus": (softplus, sigmoid),
    "softsign": (lambda z: _f64(z) / (1 + np.abs(_f64(z))), lambda z: 1 / (1 + np.abs(_f64(z))) ** 2),
    "swish": (lambda z: _f64(z) * sigmoid(z),
              lambda z: sigmoid(z) + _f64(z) * sigmoid(z) * (1 - sigmoid(z))),
    "hard_sigmoid": (lambda z: np.clip((_f64(z) + 3) / 6, 0, 1),
                     lambda z: ((_f64(z) > -3) & (_f64(z) < 3)) / 6.0),
    "exponential": (lambda z: np.exp(_f64(z)), lambda z: np.exp(_f64(z))),
    "relu6": (lambda z: np.clip(_f64(z), 0, 6), lambda z: ((_f64(z) > 0) & (_f64(z) < 6)).astype(float)),
}


def activation(name, z, alpha=None):
    """act(z) in float64; ``alpha`` only matters for elu and leaky_relu."""
    fn = ACTIVATIONS[name][0]
    if name in DEFAULT_ALPHA:
        return fn(z, DEFAULT_ALPHA[name] if alpha is None else alpha)
    return fn(z)


def activation_backward(name, z, dA, alpha=None):
    """dL/dz from dL/dA = dA, for A = act(z) (a vector-Jacobian product row by row)."""
    dfn = ACTIVATIONS[name][1]
    dA = _f64(dA)
    if name in ("softmax", "log_softmax"):
        return np.einsum("rj,rji->ri", dA, dfn(z))
    if name in DEFAULT_ALPHA:
        return dA * dfn(z, DEFAULT_ALPHA[name] if alpha is None else alpha)
    return dA * dfn(z)


# --------------------------------------------------------------------------- losses
def hinge_labels(y):
    """Keras converts {0, 1} labels to {-1, 1} for the hinge losses."""
    y = _f64(y)
    return 2 * y - 1 if np.all((y == 0) | (y == 1)) else y


def smooth_labels(name, y, label_smoothing):
    y = _f64(y)
    if not label_smoothing:
        return y
    if name == "cce":
        return y * (1 - label_smoothing) + label_smoothing / y.shape[-1]
    if name == "bce":
        return y * (1 - label_smoothing) + 0.5 * label_smoothing
    return y


def one_hot(labels, C):
    return np.eye(C)[np.asarray(labels, dtype=np.int64)]


def loss_value(name, y, p, from_logits=False, label_smoothing=0.0, delta=1.0):
    """Per-sample losses, shape (rows,), for predictions p (rows, C).

    ``y`` is dense (rows, C), or integer labels (rows,) for ``scce``.  Hinge
    labels in {0, 1} are converted to {-1, 1} as Keras does.
    """
    p = _f64(p)
    eps = EPSILON
    if name == "scce":
        y = one_hot(y, p.shape[-1])
        name_ = "cce"
    else:
        name_ = name
        y = smooth_labels(name, y, label_smoothing)
    if name_ == "mse":
        return np.mean((y - p) ** 2, axis=-1)
    if name_ == "mae":
        return np.mean(np.abs(y - p), axis=-1)
    if name_ == "mape":
        return 100 * np.mean(np.abs((y - p) / np.maximum(np.abs(y), eps)), axis=-1)
    if name_ == "msle":
        return np.mean((np.log(np.maximum(p, eps) + 1) - np.log(np.maximum(y, eps) + 1)) ** 2, axis=-1)
    if name_ == "huber":
        e = p - y
        a = np.abs(e)
        return np.mean(np.where(a <= delta, 0.5 * e * e, delta * a - 0.5 * delta * delta), axis=-1)
    if name_ == "log_cosh":
        e = p - y
        return np.mean(e + softplus(-2 * e) - math.log(2), axis=-1)
    if name_ == "bce":
        if from_logits:
            # max(x, 0) - x y + log(1 + exp(-|x|))
            return np.mean(np.maximum(p, 0) - p * y + np.log1p(np.exp(-np.abs(p))), axis=-1)
        q = np.clip(p, eps, 1 - eps)
        return np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q)), axis=-1)
    if name_ == "cce":
        if from_logits:
            z = p - p.max(axis=-1, keepdims=True)
            log_q = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
            return -np.sum(y * log_q, axis=-1)
        q = np.clip(p / p.sum(axis=-1, keepdims=True), eps, 1 - eps)
        return -np.sum(y * np.log(q), axis=-1)
    if name_ == "hinge":
        y = hinge_labels(y)
        return np.mean(np.maximum(1 - y * p, 0), axis=-1)
    if name_ == "squared_hinge":
        y = hinge_labels(y)
        return np.mean(np.maximum(1 - y * p, 0) ** 2, axis=-1)
    if name_ == "categorical_hinge":
        pos = np.sum(y * p, axis=-1)
        neg = np.max((1 - y) * p, axis=-1)
        return np.maximum(neg - pos + 1, 0)
    if name_ == "kld":
        yc = np.clip(y, eps, 1)
        pc = np.clip(p, eps, 1)
        return np.sum(yc * np.log(yc / pc), axis=-1)
    if name_ == "poisson":
        return np.mean(p - y * np.log(p + eps), axis=-1)
    raise ValueError(f"unknown loss {name!r}")


def loss_grad(name, y, p, rel_step=1e-5, min_step=1e-10, **kwargs):
    """d loss_value_r / d p_r by a float64 central difference, shape of p.

    Where p are probabilities fed to a logarithm (cross-entropies, KLD,
    Poisson) the step is relative to the distance from 0 and from 1
    (``rel_step * min(|p|, |1 - p|)``, at least ``min_step``) so that tiny
    probabilities are differenced accurately; elsewhere it is ``1e-6 * max(1, |p|)``."""
    p = _f64(p)
    g = np.empty_like(p)
    log_of_p = name in ("bce", "cce", "scce", "kld", "poisson") and not kwargs.get("from_logits")
    for j in range(p.shape[-1]):
        if log_of_p:
            h = np.maximum(rel_step * np.minimum(np.abs(p[:, j]), np.abs(1 - p[:, j])), min_step)
        else:
            h = 1e-6 * np.maximum(1.0, np.abs(p[:, j]))
        up, dn = p.copy(), p.copy()
        up[:, j] += h
        dn[:, j] -= h
        g[:, j] = (loss_value(name, y, up, **kwargs) - loss_value(name, y, dn, **kwargs)) / (2 * h)
    return g


# --------------------------------------------------------------------------- metrics
def metric_value(name, y, p, param=None):
    """Per-sample metric values, shape (rows,).  ``y`` dense, or labels for sparse metrics."""
    p = _f64(p)
    if name == "binary_accuracy":
        threshold = 0.5 if param is None else param
        return np.mean((p > threshold).astype(float) == _f64(y), axis=-1)
    if name in ("categorical_accuracy", "top_k_categorical_accuracy"):
        target = np.argmax(_f64(y), axis=-1)
    elif name in ("sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy"):
        target = np.asarray(y, dtype=np.int64).reshape(-1)
    elif name == "mae":
        return np.mean(np.abs(p - _f64(y)), axis=-1)
    elif name == "mse":
        return np.mean((p - _f64(y)) ** 2, axis=-1)
    else:
        raise ValueError(f"unknown metric {name!r}")
    rows = np.arange(len(p))
    if name.endswith("categorical_accuracy") and "top_k" not in name:
        return (np.argmax(p, axis=-1) == target).astype(float)
    k = 5 if param is None else int(param)
    # in_top_k: ties with the target's score count in its favour
    above = np.sum(p > p[rows, target][:, None], axis=-1)
    return (above < k).astype(float)


# --------------------------------------------------------------------------- network
def forward(layers, x):
    """Output of a dense stack; ``layers = [(kernel (in, out), bias (out,) or None, act), ...]``
    where ``act`` is an activation name or ``(name, alpha)``."""
    a = _f64(x)
    for kernel, bias, act in layers:
        z = a @ _f64(kernel)
        if bias is not None:
            z = z + _f64(bias)
        name, alpha = (act, None) if isinstance(act, str) else act
        a = activation(name, z, alpha)
    return a


def regularization_loss(w, l1=0.0, l2=0.0):
    w = _f64(w)
    return l1 * np.sum(np.abs(w)) + l2 * np.sum(w * w)


def regularization_grad(w, l1=0.0, l2=0.0):
    w = _f64(w)
    return l1 * np.sign(w) + 2 * l2 * w


# --------------------------------------------------------------------------- optimizers
OPTIMIZER_DEFAULTS = {
    "sgd": dict(learning_rate=0.01, momentum=0.0, nesterov=False),
    "rmsprop": dict(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
    "adagrad": dict(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7),
    "adadelta": dict(learning_rate=0.001, rho=0.95, epsilon=1e-7),
    "adam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False),
    "adamw": dict(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                  epsilon=1e-7, amsgrad=False),
    "adamax": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    "nadam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
}
_COMMON = dict(weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None)


def optimizer_config(name, **overrides):
    """Keras defaults of an optimizer plus overrides."""
    cfg = {**_COMMON, **OPTIMIZER_DEFAULTS[name]}
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise TypeError(f"{name} has no option(s) {sorted(unknown)}")
    cfg.update(overrides)
    return cfg


def init_state(name, config, w):
    """Zeroed slots for a list of variables, named as Keras names them."""
    zeros = lambda: [np.zeros_like(_f64(v)) for v in w]  # noqa: E731
    if name == "sgd":
        return {"momentum": zeros()}
    if name == "rmsprop":
        return {"velocity": zeros(), "momentum": zeros(), "average_gradient": zeros()}
    if name == "adagrad":
        return {"accumulator": [np.full_like(_f64(v), config["initial_accumulator_value"]) for v in w]}
    if name == "adadelta":
        return {"accumulated_grad": zeros(), "accumulated_delta_var": zeros()}
    if name in ("adam", "adamw"):
        return {"m": zeros(), "v": zeros(), "v_hat": zeros()}
    if name == "adamax":
        return {"m": zeros(), "u": zeros()}
    if name == "nadam":
        return {"m": zeros(), "v": zeros(), "u_product": 1.0}
    raise ValueError(f"unknown optimizer {name!r}")


def clip_gradients(config, g):
    """Keras 3 clipping: per-variable clipnorm, global_clipnorm, or clipvalue."""
    g = [_f64(x).copy() for x in g]
    if config.get("clipnorm"):
        c = config["clipnorm"]
        g = [x * c / max(np.linalg.norm(x), c) for x in g]
    if config.get("global_clipnorm"):
        c = config["global_clipnorm"]
        norm = math.sqrt(sum(float(np.sum(x * x)) for x in g))
        g = [x * c / max(norm, c) for x in g]
    if config.get("clipvalue"):
        c = config["clipvalue"]
        g = [np.clip(x, -c, c) for x in g]
    return g


def optimizer_step(name, config, w, g, state, t):
    """One Keras 3 step.  ``w``, ``g``: lists of arrays (one per variable; ``g``
    already includes any regularization gradient); ``state`` from ``init_state``
    (updated in place); ``t``: steps taken before this one.  Returns the new ``w``."""
    lr = config["learning_rate"]
    g = clip_gradients(config, g)
    w = [_f64(x).copy() for x in w]
    if config.get("weight_decay"):
        w = [x - x * config["weight_decay"] * lr for x in w]
    step = t + 1
    if name == "nadam":
        b1 = config["beta_1"]
        u_t = b1 * (1 - 0.5 * 0.96 ** step)
        u_t1 = b1 * (1 - 0.5 * 0.96 ** (step + 1))
        state["u_product"] = state["u_product"] * u_t
        u_prod, u_prod1 = state["u_product"], state["u_product"] * u_t1
    out = []
    for i, (x, gi) in enumerate(zip(w, g)):
        if name == "sgd":
            mom = config["momentum"]
            if mom > 0:
                m = state["momentum"][i] = mom * state["momentum"][i] - lr * gi
                x = x + (mom * m - lr * gi if config["nesterov"] else m)
            else:
                x = x - lr * gi
        elif name == "rmsprop":
            rho, mom = config["rho"], config["momentum"]
            v = state["velocity"][i] = rho * state["velocity"][i] + (1 - rho) * gi * gi
            if config["centered"]:
                a = state["average_gradient"][i] = rho * state["average_gradient"][i] + (1 - rho) * gi
                den = v - a * a + config["epsilon"]
            else:
                den = v + config["epsilon"]
            inc = lr * gi / np.sqrt(den)
            if mom > 0:
                m = state["momentum"][i] = mom * state["momentum"][i] + inc
                x = x - m
            else:
                x = x - inc
        elif name == "adagrad":
            acc = state["accumulator"][i] = state["accumulator"][i] + gi * gi
            x = x - lr * gi / np.sqrt(acc + config["epsilon"])
        elif name == "adadelta":
            rho, eps = config["rho"], config["epsilon"]
            ag = state["accumulated_grad"][i] = rho * state["accumulated_grad"][i] + (1 - rho) * gi * gi
            ad = state["accumulated_delta_var"][i]
            delta = -np.sqrt(ad + eps) / np.sqrt(ag + eps) * gi
            state["accumulated_delta_var"][i] = rho * ad + (1 - rho) * delta * delta
            x = x + lr * delta
        elif name in ("adam", "adamw"):
            b1, b2 = config["beta_1"], config["beta_2"]
            alpha = lr * math.sqrt(1 - b2 ** step) / (1 - b1 ** step)
            m = state["m"][i] = state["m"][i] + (gi - state["m"][i]) * (1 - b1)
            v = state["v"][i] = state["v"][i] + (gi * gi - state["v"][i]) * (1 - b2)
            if config["amsgrad"]:
                v = state["v_hat"][i] = np.maximum(state["v_hat"][i], v)
            x = x - m * alpha / (np.sqrt(v) + config["epsilon"])
        elif name == "adamax":
            b1, b2 = config["beta_1"], config["beta_2"]
            m = state["m"][i] = state["m"][i] + (gi - state["m"][i]) * (1 - b1)
            u = state["u"][i] = np.maximum(b2 * state["u"][i], np.abs(gi))
            x = x - lr * m / ((1 - b1 ** step) * (u + config["epsilon"]))
        elif name == "nadam":
            b2 = config["beta_2"]
            m = state["m"][i] = state["m"][i] + (gi - state["m"][i]) * (1 - config["beta_1"])
            v = state["v"][i] = state["v"][i] + (gi * gi - state["v"][i]) * (1 - b2)
            m_hat = u_t1 * m / (1 - u_prod1) + (1 - u_t) * gi / (1 - u_prod)
            v_hat = v / (1 - b2 ** step)
            x = x - lr * m_hat / (np.sqrt(v_hat) + config["epsilon"])
        else:
            raise ValueError(f"unknown optimizer {name!r}")
        out.append(x)
    return out


def assert_gradient_by_central_difference(f, params, segments, h=1e-6, rel=1e-5, abs_tol=1e-8):
    """``f(p) -> (loss, grads)``; checks ``grads`` against (loss(p + h e_i) -
    loss(p - h e_i)) / 2h for every index i of the ``(offset, size, ...)`` segments."""
    _, grads = f(params.copy())
    for seg in segments:
        off, size = seg[0], seg[1]
        for i in range(off, off + size):
            up, dn = params.copy(), params.copy()
            up[i] += h
            dn[i] -= h
            numeric = (f(up)[0] - f(dn)[0]) / (2 * h)
            assert abs(grads[i] - numeric) <= max(abs_tol, rel * abs(numeric)), \
                f"parameter {i}: analytic {grads[i]!r}, central difference {numeric!r}"
