"""Optimizers with the Keras 3 update rules and defaults.

The rules run inside the C engine (``csrc/optim_impl.h``) in one pass over the
flat parameter, gradient and slot vectors.  Each class's docstring shows its
rule; ``iterations`` counts steps taken, and ``learning_rate`` is a float or a
``schedules.LearningRateSchedule`` evaluated at ``iterations``.

Constructors refuse, with a ``TypeError`` or ``ValueError`` naming the argument,
values of the wrong type and values that can only give NaN or infinite updates:
``learning_rate``, ``epsilon``, ``weight_decay`` and the clipping limits must be
finite and >= 0 (Adagrad's ``initial_accumulator_value`` too, as Keras documents);
``momentum`` and ``rho`` lie in [0, 1] (Keras checks SGD's momentum so); Adam's,
Adamax's and Nadam's ``beta_1`` and ``beta_2`` lie in [0, 1), as in the Adam paper
and torch.optim (Keras does not check them).  ``from_config`` and ``deserialize``
go through the same constructors, and ``iterations`` must fit an int64.
"""
import numpy as np

from .. import _validate
from . import schedules
from .schedules import LearningRateSchedule

__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Adamax",
           "Nadam", "get", "schedules"]


# Keras optimizer arguments accepted at the values that change nothing: use_ema=False (the EMA
# settings matter only with use_ema=True), no gradient accumulation, and any loss_scale_factor
# (Keras divides the gradients by it again before the update).
_KERAS_ONLY_ARGS = frozenset({"use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                              "gradient_accumulation_steps"})


def _betas_and_epsilon(beta_1, beta_2, epsilon):
    """The Adam family's decay rates lie in [0, 1) (Kingma & Ba, Algorithm 1: at 1 a moment
    never moves and its bias correction 1 - beta^t is 0); epsilon >= 0."""
    return (_validate.number("beta_1", beta_1, 0, 1, high_open=True),
            _validate.number("beta_2", beta_2, 0, 1, high_open=True),
            _validate.number("epsilon", epsilon, low=0))


class Optimizer:
    _code = None
    _default_name = None

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        if kwargs:
            unknown = set(kwargs) - _KERAS_ONLY_ARGS
            if unknown:
                raise TypeError(f"Unexpected keyword argument(s) for {type(self).__name__}: {sorted(unknown)}")
            if kwargs.get("use_ema"):
                raise ValueError("use_ema=True is not supported by fastmlp")
            steps = kwargs.get("gradient_accumulation_steps")
            if steps:   # (Keras: None, 0 and False are off)
                raise NotImplementedError(f"{type(self).__name__}(gradient_accumulation_steps={steps!r}) is not "
                                          f"supported by fastmlp, which updates the weights at every step; leave "
                                          f"gradient_accumulation_steps=None")
        if clipnorm is not None or clipvalue is not None or global_clipnorm is not None or weight_decay is not None:
            set_clips = [n for n, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                        ("global_clipnorm", global_clipnorm)) if v is not None]
            if len(set_clips) > 1:
                raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                                 f"Received: {', '.join(set_clips)}")
            for n, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm),
                         ("weight_decay", weight_decay)):
                if v is not None:
                    _validate.number(n, v, low=0)
        self.name = name or self._default_name
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.learning_rate = learning_rate
        self.iterations = 0
        self._u_product = 1.0
        self._slots = None
        self._pending = None   # slot values from a file, applied when the slots are first built
        self._loaded = False   # compiled by a load (as Keras's, built then: load_weights restores its state)

    # ---- learning rate ----
    @property
    def learning_rate(self):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            return float(lr(self.iterations))
        return lr

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, LearningRateSchedule):
            self._learning_rate = value
            return
        if callable(value):
            raise TypeError("learning_rate must be a float or a "
                            "fastmlp.optimizers.schedules.LearningRateSchedule")
        self._learning_rate = _validate.number("learning_rate", value, low=0)

    # ---- step count ----
    @property
    def iterations(self):
        """Optimizer steps taken (an int64 in the engine and in saved files)."""
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        self._iterations = _validate.integer("iterations", value, 0, _validate.INT64_MAX)

    def _learning_rates(self, n_steps):
        """One rate per step for the next n_steps (float64, contiguous)."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            steps = np.arange(self.iterations, self.iterations + n_steps, dtype=np.float64)
            return np.ascontiguousarray(np.broadcast_to(lr(steps), (n_steps,)), dtype=np.float64)
        return np.full(n_steps, lr, dtype=np.float64)

    # ---- state ----
    @property
    def slot_names(self):
        """Names of the per-parameter slots this configuration uses, in engine order."""
        return ()

    def _initial_slots(self):
        return {}

    def build(self, n_params, dtype):
        """Allocate the slots (3 x n_params, slot-major) for a flat parameter vector (with
        the values a loaded file holds for them, if any: see ``_defer_slots``)."""
        pending, self._pending = self._pending, None
        segments = ()
        if pending is not None:
            if pending[0] != n_params:
                raise ValueError(f"internal: the loaded optimizer state is for {pending[0]} parameters, "
                                 f"not {n_params}")
            try:
                segments = pending[2]() if callable(pending[2]) else pending[2]   # read from the file now
            except BaseException:
                self._slots, self._pending = None, pending   # every later build fails the same way
                raise
        self._slots = np.zeros(3 * n_params, dtype=dtype)
        self._n_params = n_params
        self._write_slots(segments)

    def _write_slots(self, segments):
        """The slots at their initial values, then ``[(slot index, element offset, array)]`` over them."""
        n = self._n_params
        self._slots[...] = 0
        for index, value in self._initial_slots().items():
            self._slots[index * n:(index + 1) * n] = value
        for index, offset, values in segments:
            start = index * n + offset
            self._slots[start:start + values.size] = values.reshape(-1)

    def _defer_slots(self, n_params, dtype, segments):
        """Slot values read from a file, ``[(slot index, element offset, array)]`` (or a function
        that reads and returns them): kept until the slots are built (the first training step,
        or a save), so that a model loaded for inference never allocates them; written at once
        where the slots are built already (``load_weights`` into a model that has trained)."""
        if self._slots is not None and self._n_params == n_params and self._slots.dtype == np.dtype(dtype):
            self._write_slots(segments() if callable(segments) else list(segments))   # (in place)
            return
        self._slots = None
        self._pending = (n_params, dtype, segments if callable(segments) else list(segments))

    def _build_pending(self):
        if self._slots is None and self._pending is not None:
            self.build(self._pending[0], self._pending[1])

    @property
    def built(self):
        return self._slots is not None

    @property
    def variables(self):
        """``[iterations, *slots]`` as NumPy arrays (slots are flat, one per name)."""
        out = [np.array(self.iterations, dtype=np.int64)]
        self._build_pending()
        if self._slots is not None:
            n = self._n_params
            out += [self._slots[i * n:(i + 1) * n] for i in range(len(self.slot_names))]
        return out

    def _engine_spec(self):
        return {
            "kind": self._code, "beta1": getattr(self, "beta_1", 0.0), "beta2": getattr(self, "beta_2", 0.0),
            "epsilon": getattr(self, "epsilon", 0.0), "rho": getattr(self, "rho", 0.0),
            "momentum": getattr(self, "momentum", 0.0), "nesterov": int(getattr(self, "nesterov", False)),
            "centered": int(getattr(self, "centered", False)), "amsgrad": int(getattr(self, "amsgrad", False)),
            "weight_decay": float(self.weight_decay or 0.0), "clipnorm": float(self.clipnorm or 0.0),
            "clipvalue": float(self.clipvalue or 0.0), "global_clipnorm": float(self.global_clipnorm or 0.0),
            "iterations": int(self.iterations), "u_product": float(self._u_product),
        }

    def _store_state(self, spec):
        self.iterations = spec["iterations"]
        self._u_product = spec["u_product"]

    def get_config(self):
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": schedules.serialize(lr) if isinstance(lr, LearningRateSchedule) else lr,
            "weight_decay": self.weight_decay, "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config):
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config = {**config, "learning_rate": schedules.deserialize(lr)}
        return cls(**config)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    ```
    velocity = momentum * velocity - learning_rate * g
    w = w + momentum * velocity - learning_rate * g   # nesterov
    w = w + velocity                                  # otherwise (w - lr * g without momentum)
    ```
    """
    _code = 0
    _default_name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.momentum, self.nesterov = _validate.number("momentum", momentum, 0, 1), bool(nesterov)

    @property
    def slot_names(self):
        return ("momentum",) if self.momentum > 0 else ()

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """RMSprop (Keras form: epsilon inside the square root).

    ```
    velocity = rho * velocity + (1 - rho) * g^2
    denominator = velocity - average_gradient^2 + eps   # centered, with
        average_gradient = rho * average_gradient + (1 - rho) * g
    denominator = velocity + eps                        # otherwise
    increment = learning_rate * g / sqrt(denominator)
    momentum_buf = momentum * momentum_buf + increment; w -= momentum_buf   # momentum > 0
    w -= increment                                                          # otherwise
    ```
    """
    _code = 1
    _default_name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.rho = _validate.number("rho", rho, 0, 1)
        self.momentum = _validate.number("momentum", momentum, 0, 1)
        self.epsilon = _validate.number("epsilon", epsilon, low=0)
        self.centered = bool(centered)

    @property
    def slot_names(self):
        return ("velocity", "momentum", "average_gradient")

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad (Keras form: epsilon inside the square root).

    ```
    accumulator += g^2          # starts at initial_accumulator_value
    w -= learning_rate * g / sqrt(accumulator + eps)
    ```
    """
    _code = 2
    _default_name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        # Keras: "Must be non-negative" (a negative start puts sqrt of a negative in the first steps)
        self.initial_accumulator_value = _validate.number("initial_accumulator_value",
                                                          initial_accumulator_value, low=0)
        self.epsilon = _validate.number("epsilon", epsilon, low=0)

    @property
    def slot_names(self):
        return ("accumulator",)

    def _initial_slots(self):
        return {0: self.initial_accumulator_value}

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta.

    ```
    accumulated_grad = rho * accumulated_grad + (1 - rho) * g^2
    delta = -sqrt(accumulated_delta_var + eps) / sqrt(accumulated_grad + eps) * g
    accumulated_delta_var = rho * accumulated_delta_var + (1 - rho) * delta^2
    w += learning_rate * delta
    ```
    """
    _code = 3
    _default_name = "adadelta"

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.rho = _validate.number("rho", rho, 0, 1)
        self.epsilon = _validate.number("epsilon", epsilon, low=0)

    @property
    def slot_names(self):
        return ("accumulated_grad", "accumulated_delta_var")

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2014, https://arxiv.org/abs/1412.6980); defaults from the paper,
    epsilon as in Keras.

    ```
    t = iterations + 1
    alpha = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m += (g - m) * (1 - beta_1)
    v += (g^2 - v) * (1 - beta_2)
    v_hat = max(v_hat, v); v = v_hat      # amsgrad
    w -= alpha * m / (sqrt(v) + eps)
    ```
    """
    _code = 4
    _default_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = _betas_and_epsilon(beta_1, beta_2, epsilon)
        self.amsgrad = bool(amsgrad)

    @property
    def slot_names(self):
        return ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): before each
    Adam step, ``w -= w * weight_decay * learning_rate``."""
    _code = 5
    _default_name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm,
                         clipvalue, global_clipnorm, name, **kwargs)


class _Betas(Optimizer):
    """The arguments Adamax and Nadam share (in Keras neither derives from the other)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = _betas_and_epsilon(beta_1, beta_2, epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adamax(_Betas):
    """Adamax, the infinity-norm variant of Adam.

    ```
    m += (g - m) * (1 - beta_1)
    u = max(beta_2 * u, |g|)
    w -= learning_rate * m / ((1 - beta_1^t) * (u + eps))
    ```
    """
    _code = 6
    _default_name = "adamax"

    @property
    def slot_names(self):
        return ("m", "u")


class Nadam(_Betas):
    """Nadam, Adam with Nesterov momentum (Dozat, 2016), Keras 3 schedule.

    ```
    u_t = beta_1 * (1 - 0.5 * 0.96^t);  u_t1 = beta_1 * (1 - 0.5 * 0.96^(t+1))
    u_product *= u_t
    m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
    m_hat = u_t1 * m / (1 - u_product * u_t1) + (1 - u_t) * g / (1 - u_product)
    v_hat = v / (1 - beta_2^t)
    w -= learning_rate * m_hat / (sqrt(v_hat) + eps)
    ```
    """
    _code = 7
    _default_name = "nadam"

    @property
    def slot_names(self):
        return ("m", "v")


_ALIASES = {"sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad, "adadelta": Adadelta, "adam": Adam,
            "adamw": AdamW, "adamax": Adamax, "nadam": Nadam}


def get(identifier):
    """An optimizer from a name (``'adam'``), a class, a config or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer: {identifier!r}. Expected one of {sorted(_ALIASES)}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(opt):
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(config):
    if not isinstance(config, dict) or not isinstance(config.get("config", {}), dict):
        raise TypeError(f"An optimizer config must be a dict with a 'class_name' and a 'config' dict. "
                        f"Received: {config!r}")
    cls = _ALIASES.get(str(config.get("class_name", "")).lower())
    if cls is None:
        raise ValueError(f"Unknown optimizer class: {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))
