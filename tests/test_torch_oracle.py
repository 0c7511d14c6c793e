"""fastmlp against an independent float64 oracle.

Gradients come from torch autograd; the optimizer updates are the Keras 3
rules written out below in NumPy (checked line by line against
keras/src/optimizers/*.py and base_optimizer.py: clip, then decoupled weight
decay, then ``update_step``, then ``iterations += 1``).  torch.optim is not
used on purpose: Keras's RMSprop and Adagrad put epsilon inside the square
root, PyTorch's outside.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import fastmlp as keras  # noqa: E402
from fastmlp import layers, losses, optimizers, regularizers  # noqa: E402

RTOL = 1e-10
EPS = 1e-7


def assert_close(actual, expected, rtol=RTOL, what=""):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    err = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    assert err <= rtol * scale, f"{what}: max abs error {err:.3e} (scale {scale:.3e})"


# --------------------------------------------------------------------------- forward
TORCH_ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "elu": lambda z: F.elu(z, alpha=1.0),
    "selu": F.selu,
    "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.2),   # Keras 3 default slope
    "gelu": lambda z: F.gelu(z, approximate="none"),
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "hard_sigmoid": F.hardsigmoid,      # Keras 3: relu6(x + 3) / 6
    "exponential": torch.exp,
    "relu6": F.relu6,
    "softmax": lambda z: torch.softmax(z, dim=-1),
    "log_softmax": lambda z: torch.log_softmax(z, dim=-1),
}


def torch_forward(weights, activations, x):
    h = torch.as_tensor(np.asarray(x, dtype=np.float64))
    for i, act in enumerate(activations):
        kernel, bias = weights[2 * i], weights[2 * i + 1]
        # a torch Linear would hold weight = kernel.T; h @ kernel == F.linear(h, kernel.T)
        h = TORCH_ACTIVATIONS[act](F.linear(h, kernel.T, bias))
    return h


@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
def test_a_float64_model_computes_the_same_forward_values_as_torch_for_each_activation(activation):
    keras.config.set_floatx("float64")
    acts = ["tanh", activation, "linear"] if "softmax" not in activation else ["tanh", "relu", activation]
    model = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(9, activation=acts[0]),
                              layers.Dense(7, activation=acts[1]), layers.Dense(4, activation=acts[2])])
    rng = np.random.default_rng(0)
    # spread the pre-activations over both sides of every kink
    model.set_weights([w * 2.0 + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    x = rng.normal(0, 1.5, (33, 6))
    out = model.predict(x, verbose=0)
    assert out.dtype == np.float64
    ref = torch_forward([torch.as_tensor(w) for w in model.get_weights()], acts, x).numpy()
    assert_close(out, ref, what=activation)
    assert_close(model(x), ref, what=f"{activation} via __call__")


def test_a_float64_model_with_every_activation_stacked_matches_torch():
    keras.config.set_floatx("float64")
    acts = ["selu", "gelu", "softsign", "swish", "elu", "leaky_relu", "softplus", "relu6",
            "hard_sigmoid", "sigmoid", "softmax"]
    stack = [keras.Input(shape=(5,))] + [layers.Dense(6, activation=a) for a in acts]
    model = keras.Sequential(stack)
    rng = np.random.default_rng(1)
    model.set_weights([w * 1.5 + rng.normal(0, 0.2, w.shape) for w in model.get_weights()])
    x = rng.normal(0, 2, (21, 5))
    ref = torch_forward([torch.as_tensor(w) for w in model.get_weights()], acts, x).numpy()
    assert_close(model.predict(x, verbose=0), ref, what="stack")


# --------------------------------------------------------------------------- losses
def _keras_loss_torch(name, y, p, **kw):
    """Per-sample Keras 3 losses (keras/src/losses/losses.py), in torch float64."""
    y = torch.as_tensor(y, dtype=torch.float64)
    p = torch.as_tensor(p, dtype=torch.float64)
    eps = EPS
    if name == "mse":
        return ((y - p) ** 2).mean(-1)
    if name == "mae":
        return (y - p).abs().mean(-1)
    if name == "mape":
        return 100.0 * ((y - p) / torch.clamp(y.abs(), min=eps)).abs().mean(-1)
    if name == "msle":
        return ((torch.log(torch.clamp(p, min=eps) + 1) - torch.log(torch.clamp(y, min=eps) + 1)) ** 2).mean(-1)
    if name == "huber":
        d = kw.get("delta", 1.0)
        e = p - y
        return torch.where(e.abs() <= d, 0.5 * e ** 2, d * e.abs() - 0.5 * d ** 2).mean(-1)
    if name == "log_cosh":
        e = p - y
        return (e + F.softplus(-2.0 * e) - math.log(2.0)).mean(-1)
    if name in ("hinge", "squared_hinge"):
        if bool(((y == 0) | (y == 1)).all()):
            y = 2 * y - 1
        m = torch.clamp(1 - y * p, min=0)
        return (m if name == "hinge" else m ** 2).mean(-1)
    if name == "categorical_hinge":
        pos = (y * p).sum(-1)
        neg = ((1 - y) * p).max(-1).values
        return torch.clamp(neg - pos + 1, min=0)
    if name == "kl_divergence":
        yc, pc = torch.clamp(y, eps, 1), torch.clamp(p, eps, 1)
        return (yc * torch.log(yc / pc)).sum(-1)
    if name == "poisson":
        return (p - y * torch.log(p + eps)).mean(-1)
    if name == "binary_crossentropy":
        ls = kw.get("label_smoothing", 0.0)
        y = y * (1 - ls) + 0.5 * ls
        if kw.get("from_logits"):
            return F.binary_cross_entropy_with_logits(p, y, reduction="none").mean(-1)
        q = torch.clamp(p, eps, 1 - eps)
        return (-(y * torch.log(q) + (1 - y) * torch.log(1 - q))).mean(-1)
    if name == "categorical_crossentropy":
        ls = kw.get("label_smoothing", 0.0)
        y = y * (1 - ls) + ls / y.shape[-1]
        if kw.get("from_logits"):
            return -(y * torch.log_softmax(p, -1)).sum(-1)
        q = torch.clamp(p / p.sum(-1, keepdim=True), eps, 1 - eps)
        return -(y * torch.log(q)).sum(-1)
    raise KeyError(name)


def _loss_data(name, rng, n=12, c=4):
    if name in ("binary_crossentropy",):
        return rng.integers(0, 2, (n, c)).astype(float), rng.uniform(0.02, 0.98, (n, c))
    if name in ("categorical_crossentropy", "categorical_hinge"):
        y = np.eye(c)[rng.integers(0, c, n)]
        return y, rng.dirichlet(np.ones(c), n)
    if name == "kl_divergence":
        return rng.dirichlet(np.ones(c), n), rng.dirichlet(np.ones(c), n)
    if name in ("hinge", "squared_hinge"):
        return rng.choice([-1.0, 1.0], (n, c)), rng.normal(0, 1.5, (n, c))
    if name in ("msle", "poisson"):
        return rng.uniform(0, 3, (n, c)), rng.uniform(0.01, 3, (n, c))
    return rng.normal(0, 2, (n, c)), rng.normal(0, 2, (n, c))


LOSS_NAMES = ["mse", "mae", "mape", "msle", "huber", "log_cosh", "hinge", "squared_hinge",
              "categorical_hinge", "kl_divergence", "poisson", "binary_crossentropy",
              "categorical_crossentropy"]


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_each_loss_object_returns_the_keras_formula_value_computed_in_torch(name):
    rng = np.random.default_rng(LOSS_NAMES.index(name))
    y, p = _loss_data(name, rng)
    ref = _keras_loss_torch(name, y, p).numpy()
    loss = losses.get(name)
    assert_close(loss(y, p), ref.mean(), what=name)
    w = rng.uniform(0, 2, len(y))
    assert_close(loss(y, p, sample_weight=w), (ref * w).sum() / len(y), what=f"{name} weighted")
    assert_close(type(loss)(reduction="sum")(y, p), ref.sum(), what=f"{name} sum")
    fn = getattr(losses, name)
    assert_close(fn(y, p), ref, what=f"losses.{name} per sample")


def test_hinge_losses_convert_zero_one_labels_to_minus_one_one_as_keras_does():
    rng = np.random.default_rng(5)
    y, p = rng.integers(0, 2, (10, 3)).astype(float), rng.normal(0, 1, (10, 3))
    for name in ("hinge", "squared_hinge"):
        assert_close(losses.get(name)(y, p), _keras_loss_torch(name, y, p).mean(), what=name)


def test_huber_with_a_custom_delta_matches_torch():
    rng = np.random.default_rng(6)
    y, p = _loss_data("huber", rng)
    assert_close(losses.Huber(delta=0.7)(y, p), _keras_loss_torch("huber", y, p, delta=0.7).mean())


def test_sparse_categorical_crossentropy_matches_torch_nll_of_clipped_probabilities():
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(5), 9)
    labels = rng.integers(0, 5, 9)
    ref = F.nll_loss(torch.log(torch.clamp(torch.as_tensor(p), EPS, 1 - EPS)), torch.as_tensor(labels))
    assert_close(losses.SparseCategoricalCrossentropy()(labels, p), ref.item())
    logits = rng.normal(0, 3, (9, 5))
    ref = F.cross_entropy(torch.as_tensor(logits), torch.as_tensor(labels))
    assert_close(losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits), ref.item())


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropies_from_logits_and_with_label_smoothing_match_torch(smoothing):
    rng = np.random.default_rng(8)
    logits = rng.normal(0, 4, (11, 3))
    yb = rng.integers(0, 2, (11, 3)).astype(float)
    yc = np.eye(3)[rng.integers(0, 3, 11)]
    bce = losses.BinaryCrossentropy(from_logits=True, label_smoothing=smoothing)
    cce = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
    assert_close(bce(yb, logits), _keras_loss_torch("binary_crossentropy", yb, logits, from_logits=True,
                                                     label_smoothing=smoothing).mean())
    assert_close(cce(yc, logits), _keras_loss_torch("categorical_crossentropy", yc, logits,
                                                     from_logits=True, label_smoothing=smoothing).mean())
    probs = 1 / (1 + np.exp(-logits))
    assert_close(losses.BinaryCrossentropy(label_smoothing=smoothing)(yb, probs),
                 _keras_loss_torch("binary_crossentropy", yb, probs, label_smoothing=smoothing).mean())


def test_cross_entropy_on_saturated_probabilities_clips_at_epsilon_like_keras():
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = np.array([[0.0, 1.0], [1e-12, 1 - 1e-12]])
    assert_close(losses.BinaryCrossentropy()(y, p), _keras_loss_torch("binary_crossentropy", y, p).mean())
    assert_close(losses.CategoricalCrossentropy()(y, p),
                 _keras_loss_torch("categorical_crossentropy", y, p).mean())
    assert np.isfinite(losses.BinaryCrossentropy()(y, p))


# ------------------------------------------------------------ model losses vs torch
MODEL_LOSS_CASES = [
    # (loss name, output activation, output units)
    ("mse", "linear", 3), ("mae", "linear", 3), ("mape", "linear", 3), ("msle", "softplus", 3),
    ("huber", "linear", 3), ("log_cosh", "linear", 3), ("hinge", "tanh", 3),
    ("squared_hinge", "tanh", 3), ("categorical_hinge", "linear", 3),
    ("kl_divergence", "softmax", 3), ("poisson", "softplus", 3),
    ("binary_crossentropy", "sigmoid", 3), ("categorical_crossentropy", "softmax", 3),
    ("sparse_categorical_crossentropy", "softmax", 3),
]


def _targets(name, rng, n, c):
    if name == "sparse_categorical_crossentropy":
        return rng.integers(0, c, n)
    y, _ = _loss_data(name, rng, n, c)
    return y


def _torch_model_loss(name, weights, acts, x, y, sample_weight=None, l2=None, **kw):
    """Keras's compiled loss: sum_over_batch_size of per-sample losses plus the l2 penalty."""
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    out = torch_forward(params, acts, x)
    if name == "sparse_categorical_crossentropy":
        per = -torch.log(torch.clamp(out, EPS, 1 - EPS))[torch.arange(len(y)), torch.as_tensor(y)]
    else:
        per = _keras_loss_torch(name, y, out, **kw)
    if sample_weight is not None:
        per = per * torch.as_tensor(sample_weight, dtype=torch.float64)
    loss = per.sum() / len(x)
    if l2:
        for index, coef in l2.items():
            loss = loss + coef * (params[index] ** 2).sum()
    loss.backward()
    return loss.item(), [p.grad.numpy().copy() for p in params]


@pytest.mark.parametrize("name,out_act,units", MODEL_LOSS_CASES)
def test_evaluate_and_train_on_batch_report_the_keras_loss_computed_in_torch(name, out_act, units):
    keras.config.set_floatx("float64")
    rng = np.random.default_rng(11)
    model = keras.Sequential([keras.Input(shape=(4,)),
                              layers.Dense(5, activation="tanh", kernel_regularizer=regularizers.l2(0.01)),
                              layers.Dense(units, activation=out_act)])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss=name)
    x = rng.normal(0, 1, (13, 4))
    y = _targets(name, rng, 13, units)
    sw = rng.uniform(0.2, 2.0, 13)
    acts = ["tanh", out_act]
    ref, _ = _torch_model_loss(name, model.get_weights(), acts, x, y, l2={0: 0.01})
    assert_close(model.evaluate(x, y, verbose=0), ref, what=f"{name} evaluate")
    assert_close(model.train_on_batch(x, y), ref, what=f"{name} train_on_batch")
    ref_w, _ = _torch_model_loss(name, model.get_weights(), acts, x, y, sample_weight=sw, l2={0: 0.01})
    assert_close(model.evaluate(x, y, sample_weight=sw, verbose=0), ref_w, what=f"{name} weighted")


# --------------------------------------------------------------------------- optimizers
class KerasRule:
    """The Keras 3 update rules, per variable, in float64 NumPy."""

    def __init__(self, kind, lr, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, **hp):
        self.kind, self.lr, self.hp = kind, lr, hp
        self.weight_decay, self.clipnorm = weight_decay, clipnorm
        self.clipvalue, self.global_clipnorm = clipvalue, global_clipnorm
        self.iterations = 0
        self.slots = None
        self.u_product = 1.0

    def _clip(self, grads):   # base_optimizer._clip_gradients: one of the three, in this order
        if self.clipnorm:
            out = []
            for g in grads:
                norm = np.sqrt(np.sum(g * g))
                out.append(g * self.clipnorm / max(norm, self.clipnorm))
            return out
        if self.global_clipnorm:
            norm = np.sqrt(sum(np.sum(g * g) for g in grads))
            scale = self.global_clipnorm * min(1.0 / norm, 1.0 / self.global_clipnorm)
            return [g * scale for g in grads]
        if self.clipvalue:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def step(self, weights, grads):
        hp = self.hp
        if self.slots is None:
            init = hp.get("initial_accumulator_value", 0.0)
            self.slots = [{"a": np.full_like(w, init), "b": np.zeros_like(w), "c": np.zeros_like(w)}
                          for w in weights]
        grads = self._clip([np.array(g, dtype=np.float64) for g in grads])
        weights = [np.array(w, dtype=np.float64) for w in weights]
        lr = self.lr
        if self.weight_decay:
            weights = [w - w * self.weight_decay * lr for w in weights]
        t = self.iterations + 1
        if self.kind == "nadam":   # Nadam._backend_update_step advances u_product first
            self.u_product *= hp["beta_1"] * (1.0 - 0.5 * 0.96 ** t)
        out = []
        for w, g, s in zip(weights, grads, self.slots):
            if self.kind == "sgd":
                mom = hp.get("momentum", 0.0)
                if mom:
                    s["a"] = s["a"] * mom - g * lr
                    w = w + (s["a"] * mom - g * lr if hp.get("nesterov") else s["a"])
                else:
                    w = w - g * lr
            elif self.kind == "rmsprop":
                rho, mom = hp["rho"], hp.get("momentum", 0.0)
                s["a"] = rho * s["a"] + (1 - rho) * g * g
                if hp.get("centered"):
                    s["c"] = rho * s["c"] + (1 - rho) * g
                    den = s["a"] - s["c"] ** 2 + hp["epsilon"]
                else:
                    den = s["a"] + hp["epsilon"]
                inc = lr * g / np.sqrt(den)
                if mom > 0:
                    s["b"] = mom * s["b"] + inc
                    w = w - s["b"]
                else:
                    w = w - inc
            elif self.kind == "adagrad":
                s["a"] = s["a"] + g * g
                w = w - lr * g / np.sqrt(s["a"] + hp["epsilon"])
            elif self.kind == "adadelta":
                rho, e = hp["rho"], hp["epsilon"]
                s["a"] = rho * s["a"] + (1 - rho) * g * g
                delta = -(np.sqrt(s["b"] + e) * g) / np.sqrt(s["a"] + e)
                s["b"] = rho * s["b"] + (1 - rho) * delta * delta
                w = w + lr * delta
            elif self.kind == "adam":
                b1, b2 = hp["beta_1"], hp["beta_2"]
                alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                s["a"] = s["a"] + (g - s["a"]) * (1 - b1)
                s["b"] = s["b"] + (g * g - s["b"]) * (1 - b2)
                v = s["b"]
                if hp.get("amsgrad"):
                    s["c"] = np.maximum(s["c"], s["b"])
                    v = s["c"]
                w = w - (s["a"] * alpha) / (np.sqrt(v) + hp["epsilon"])
            elif self.kind == "adamax":
                b1, b2 = hp["beta_1"], hp["beta_2"]
                s["a"] = s["a"] + (g - s["a"]) * (1 - b1)
                s["b"] = np.maximum(b2 * s["b"], np.abs(g))
                w = w - (lr * s["a"]) / ((1 - b1 ** t) * (s["b"] + hp["epsilon"]))
            elif self.kind == "nadam":
                b1, b2 = hp["beta_1"], hp["beta_2"]
                u_t = b1 * (1.0 - 0.5 * 0.96 ** t)
                u_t_1 = b1 * (1.0 - 0.5 * 0.96 ** (t + 1))
                u_product_t = self.u_product
                u_product_t_1 = u_product_t * u_t_1
                s["a"] = s["a"] + (g - s["a"]) * (1 - b1)
                s["b"] = s["b"] + (g * g - s["b"]) * (1 - b2)
                m_hat = u_t_1 * s["a"] / (1 - u_product_t_1) + (1 - u_t) * g / (1 - u_product_t)
                v_hat = s["b"] / (1 - b2 ** t)
                w = w - m_hat * lr / (np.sqrt(v_hat) + hp["epsilon"])
            else:
                raise KeyError(self.kind)
            out.append(w)
        self.iterations += 1
        return out


ADAM_HP = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7)
OPTIMIZER_CASES = {
    "sgd": (lambda **c: optimizers.SGD(learning_rate=0.1, **c), "sgd", 0.1, {}),
    "sgd_momentum": (lambda **c: optimizers.SGD(learning_rate=0.1, momentum=0.9, **c), "sgd", 0.1,
                     dict(momentum=0.9)),
    "sgd_nesterov": (lambda **c: optimizers.SGD(learning_rate=0.1, momentum=0.8, nesterov=True, **c),
                     "sgd", 0.1, dict(momentum=0.8, nesterov=True)),
    "sgd_weight_decay": (lambda **c: optimizers.SGD(learning_rate=0.1, weight_decay=0.05, **c), "sgd", 0.1,
                         dict(weight_decay=0.05)),
    "rmsprop": (lambda **c: optimizers.RMSprop(learning_rate=0.01, **c), "rmsprop", 0.01,
                dict(rho=0.9, epsilon=1e-7)),
    "rmsprop_momentum": (lambda **c: optimizers.RMSprop(learning_rate=0.01, momentum=0.5, **c),
                         "rmsprop", 0.01, dict(rho=0.9, epsilon=1e-7, momentum=0.5)),
    "rmsprop_centered": (lambda **c: optimizers.RMSprop(learning_rate=0.01, rho=0.8, centered=True,
                                                        epsilon=1e-3, **c),
                         "rmsprop", 0.01, dict(rho=0.8, epsilon=1e-3, centered=True)),
    "adagrad": (lambda **c: optimizers.Adagrad(learning_rate=0.05, epsilon=1e-3, **c), "adagrad", 0.05,
                dict(initial_accumulator_value=0.1, epsilon=1e-3)),
    "adadelta": (lambda **c: optimizers.Adadelta(learning_rate=1.0, epsilon=1e-4, **c), "adadelta", 1.0,
                 dict(rho=0.95, epsilon=1e-4)),
    "adam": (lambda **c: optimizers.Adam(learning_rate=0.01, **c), "adam", 0.01, dict(ADAM_HP)),
    "adam_amsgrad": (lambda **c: optimizers.Adam(learning_rate=0.01, amsgrad=True, **c), "adam", 0.01,
                     dict(ADAM_HP, amsgrad=True)),
    "adamw": (lambda **c: optimizers.AdamW(learning_rate=0.01, weight_decay=0.1, **c), "adam", 0.01,
              dict(ADAM_HP, weight_decay=0.1)),
    "adamax": (lambda **c: optimizers.Adamax(learning_rate=0.01, **c), "adamax", 0.01, dict(ADAM_HP)),
    "nadam": (lambda **c: optimizers.Nadam(learning_rate=0.01, **c), "nadam", 0.01, dict(ADAM_HP)),
}
# small limits so that clipping is active on the test problem
CLIP_CASES = {"none": {}, "clipnorm": {"clipnorm": 0.05}, "clipvalue": {"clipvalue": 0.02},
              "global_clipnorm": {"global_clipnorm": 0.1}}


def _three_steps(opt_name, clip_name, loss_name="categorical_crossentropy", sample_weight=False):
    keras.config.set_floatx("float64")
    make, kind, lr, hp = OPTIMIZER_CASES[opt_name]
    clip = CLIP_CASES[clip_name]
    hp = dict(hp)
    weight_decay = hp.pop("weight_decay", None)
    rng = np.random.default_rng(3)
    out_act = "softmax" if loss_name.endswith("crossentropy") else "linear"
    model = keras.Sequential([keras.Input(shape=(5,)),
                              layers.Dense(8, activation="tanh", kernel_regularizer=regularizers.l2(0.02)),
                              layers.Dense(6, activation="elu"),
                              layers.Dense(3, activation=out_act)])
    model.compile(optimizer=make(**clip), loss=loss_name)
    x = rng.normal(0, 1, (16, 5))
    y = np.eye(3)[rng.integers(0, 3, 16)] if out_act == "softmax" else rng.normal(0, 1, (16, 3))
    sw = rng.uniform(0, 2, 16) if sample_weight else None
    rule = KerasRule(kind, lr, weight_decay=weight_decay, **clip, **hp)
    weights = model.get_weights()
    acts = ["tanh", "elu", out_act]
    for step in range(3):
        ref_loss, grads = _torch_model_loss(loss_name, weights, acts, x, y, sample_weight=sw, l2={0: 0.02})
        got_loss = model.train_on_batch(x, y, sample_weight=sw)
        assert_close(got_loss, ref_loss, what=f"{opt_name}/{clip_name} loss at step {step}")
        weights = rule.step(weights, grads)
        for i, (got, want) in enumerate(zip(model.get_weights(), weights)):
            assert_close(got, want, what=f"{opt_name}/{clip_name} weight {i} after step {step + 1}")
    assert model.optimizer.iterations == 3
    return model


@pytest.mark.parametrize("clip_name", sorted(CLIP_CASES))
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZER_CASES))
def test_three_train_on_batch_steps_follow_the_keras_update_rule_with_torch_gradients(opt_name, clip_name):
    _three_steps(opt_name, clip_name)


@pytest.mark.parametrize("opt_name", ["sgd_momentum", "adam", "rmsprop_centered"])
def test_optimizer_steps_with_mse_and_sample_weights_follow_the_keras_rule(opt_name):
    _three_steps(opt_name, "none", loss_name="mse", sample_weight=True)


def test_clipping_is_really_active_in_the_optimizer_oracle_problem():
    """Guards the clip cases above against testing nothing: the raw gradients
    exceed every limit used."""
    keras.config.set_floatx("float64")
    rng = np.random.default_rng(3)
    model = keras.Sequential([keras.Input(shape=(5,)), layers.Dense(8, activation="tanh"),
                              layers.Dense(6, activation="elu"), layers.Dense(3, activation="softmax")])
    x = rng.normal(0, 1, (16, 5))
    y = np.eye(3)[rng.integers(0, 3, 16)]
    _, grads = _torch_model_loss("categorical_crossentropy", model.get_weights(),
                                 ["tanh", "elu", "softmax"], x, y)
    norms = [np.linalg.norm(g) for g in grads]
    assert max(norms) > CLIP_CASES["clipnorm"]["clipnorm"]
    assert np.sqrt(sum(n * n for n in norms)) > CLIP_CASES["global_clipnorm"]["global_clipnorm"]
    assert max(np.abs(g).max() for g in grads) > CLIP_CASES["clipvalue"]["clipvalue"]


def test_a_learning_rate_schedule_is_evaluated_at_the_optimizer_iterations():
    keras.config.set_floatx("float64")
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    rng = np.random.default_rng(4)
    model = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(2)])
    model.compile(optimizer=optimizers.SGD(learning_rate=schedule), loss="mse")
    x, y = rng.normal(0, 1, (8, 3)), rng.normal(0, 1, (8, 2))
    weights = model.get_weights()
    for step in range(3):
        _, grads = _torch_model_loss("mse", weights, ["linear"], x, y)
        model.train_on_batch(x, y)
        weights = [w - 0.1 * 0.5 ** step * g for w, g in zip(weights, grads)]
        for got, want in zip(model.get_weights(), weights):
            assert_close(got, want, what=f"schedule step {step}")


def test_fit_with_one_full_batch_per_epoch_equals_repeated_train_on_batch():
    keras.config.set_floatx("float64")
    rng = np.random.default_rng(9)
    x, y = rng.normal(0, 1, (20, 4)), rng.integers(0, 3, 20)

    def build():
        keras.utils.set_random_seed(7)
        m = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(6, activation="relu"),
                              layers.Dense(3, activation="softmax")])
        m.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
        return m

    a, b = build(), build()
    a.fit(x, y, batch_size=20, epochs=4, shuffle=False, verbose=0)
    for _ in range(4):
        b.train_on_batch(x, y)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
