"""Learning-rate schedules (Keras 3 names and formulas).

A schedule maps the optimizer's step (0-based, before the update) to a
learning rate.  ``fit`` evaluates it for a whole chunk of steps at once with
NumPy and hands the engine one rate per batch, so the C loop never calls back.

Constructors (and so ``from_config``/``deserialize``) refuse what can only give
NaN or infinite rates: every rate, factor and step count must be a finite number
(``TypeError`` for a non-number, ``ValueError`` for NaN or infinity, naming the
argument); ``decay_steps``/``first_decay_steps`` must be > 0 and ``t_mul`` > 0;
``PiecewiseConstantDecay`` needs strictly increasing numeric ``boundaries`` and
one more numeric value than boundaries.
"""
import math

import numpy as np

from .. import _validate


def _decay_steps(name, value):
    """A finite step count > 0, kept as given (an int stays an int in the config)."""
    _validate.number(name, value, low=0, low_open=True)
    return value.item() if isinstance(value, np.generic) else value


class LearningRateSchedule:
    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (floored when staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = _validate.number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _decay_steps("decay_steps", decay_steps)
        self.decay_rate = _validate.number("decay_rate", decay_rate)
        self.staircase, self.name = bool(staircase), name

    def __call__(self, step):
        p = np.asarray(step, dtype=np.float64) / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        return self.initial_learning_rate * np.power(self.decay_rate, p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(ExponentialDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase=staircase, name=name)

    def __call__(self, step):
        p = np.asarray(step, dtype=np.float64) / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        return self.initial_learning_rate / (1 + self.decay_rate * p)


def _numbers(name, seq):
    """A list of finite numbers (each checked as ``name[i]``), kept as given."""
    if isinstance(seq, (str, bytes, dict)) or not hasattr(seq, "__len__"):
        raise TypeError(f"Argument `{name}` must be a list of numbers. Received: {name}={seq!r}")
    seq = list(seq)
    for i, v in enumerate(seq):
        _validate.number(f"{name}[{i}]", v)
    return [v.item() if isinstance(v, np.generic) else v for v in seq]


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = _numbers("boundaries", boundaries), _numbers("values", values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"The length of `values` must be one more than the length of `boundaries`. "
                             f"Received: boundaries of length {len(boundaries)}, values of length {len(values)}")
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"Argument `boundaries` must be strictly increasing. Received: boundaries={boundaries}")
        self.boundaries, self.values, self.name = boundaries, values, name

    def __call__(self, step):
        idx = np.searchsorted(np.asarray(self.boundaries, dtype=np.float64),
                              np.asarray(step, dtype=np.float64), side="left")
        return np.asarray(self.values, dtype=np.float64)[idx]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """Polynomial decay from ``initial_learning_rate`` to ``end_learning_rate`` over ``decay_steps``."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = _validate.number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _decay_steps("decay_steps", decay_steps)
        self.end_learning_rate = _validate.number("end_learning_rate", end_learning_rate)
        self.power = _validate.number("power", power)
        self.cycle, self.name = bool(cycle), name

    def __call__(self, step):
        step = np.asarray(step, dtype=np.float64)
        if self.cycle:
            mult = np.where(step == 0, 1.0, np.ceil(step / self.decay_steps))
            decay_steps = self.decay_steps * mult
        else:
            decay_steps = self.decay_steps
            step = np.minimum(step, decay_steps)
        frac = step / decay_steps
        return ((self.initial_learning_rate - self.end_learning_rate) * np.power(1 - frac, self.power)
                + self.end_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power,
                "cycle": self.cycle, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay to ``alpha * initial``, after an optional linear warmup to ``warmup_target``."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _validate.number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _decay_steps("decay_steps", decay_steps)
        self.alpha, self.name = _validate.number("alpha", alpha), name
        if warmup_target is not None:
            _validate.number("warmup_target", warmup_target)
        _validate.number("warmup_steps", warmup_steps, low=0)
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def __call__(self, step):
        step = np.asarray(step, dtype=np.float64)
        if self.warmup_target is None:   # as Keras: no target, no warmup
            s = np.minimum(step, self.decay_steps)
            cosine = 0.5 * (1 + np.cos(math.pi * s / self.decay_steps))
            return ((1 - self.alpha) * cosine + self.alpha) * self.initial_learning_rate
        target = float(self.warmup_target)
        s = np.minimum(np.maximum(step - self.warmup_steps, 0), self.decay_steps)
        cosine = 0.5 * (1 + np.cos(math.pi * s / self.decay_steps))
        decayed = ((1 - self.alpha) * cosine + self.alpha) * target
        if self.warmup_steps > 0:
            warm = self.initial_learning_rate + (target - self.initial_learning_rate) * step / self.warmup_steps
            return np.where(step < self.warmup_steps, warm, decayed)
        return decayed

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter, 2017): the
    first period lasts ``first_decay_steps``, each next one ``t_mul`` times longer
    and starting ``m_mul`` times lower; the rate falls to ``alpha * initial``."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name="SGDRDecay"):
        self.initial_learning_rate = _validate.number("initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _decay_steps("first_decay_steps", first_decay_steps)
        self.t_mul = _validate.number("t_mul", t_mul, low=0, low_open=True)   # log(t_mul) divides
        self.m_mul, self.alpha = _validate.number("m_mul", m_mul), _validate.number("alpha", alpha)
        self.name = name

    def __call__(self, step):
        frac = np.asarray(step, dtype=np.float64) / self.first_decay_steps
        if self.t_mul == 1.0:
            i_restart = np.floor(frac)
            frac = frac - i_restart
        else:
            i_restart = np.floor(np.log(1.0 - frac * (1.0 - self.t_mul)) / np.log(self.t_mul))
            sum_r = (1.0 - self.t_mul ** i_restart) / (1.0 - self.t_mul)
            frac = (frac - sum_r) / self.t_mul ** i_restart
        m_fac = self.m_mul ** i_restart
        cosine = 0.5 * m_fac * (1.0 + np.cos(math.pi * frac))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul, "m_mul": self.m_mul,
                "alpha": self.alpha, "name": self.name}


_CLASSES = {c.__name__: c for c in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay,
                                    PolynomialDecay, CosineDecay, CosineDecayRestarts)}


def serialize(schedule):
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise TypeError(f"A learning-rate schedule config must be a dict with a 'class_name' and a "
                        f"'config' dict. Received: {config!r}")
    cls = _CLASSES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown learning-rate schedule: {config.get('class_name')!r}")
    return cls.from_config(config["config"])
