"""``Sequential``: a Keras-compatible stack of dense layers on the C engine.

The model owns one flat parameter vector; each layer's kernel and bias are
views into it.  ``fit`` converts the data once, then hands the engine whole
chunks of batches (gather, forward, backward, update, loss and metric sums)
with the GIL released; Python runs again only at chunk ends, for callbacks
that override batch hooks and for the progress bar.
"""
import copyreg
import math
import sys
import time

import numpy as np

from . import _engine, callbacks as callbacks_module, losses, metrics as metrics_module
from . import optimizers, utils
from . import config as _config
from .layers import (Activation, BatchNormalization, Dense, Dropout, Flatten, GaussianNoise, InputLayer, Layer,
                     _assign_weights, _unique_name)
from .layers import _CLASSES as _LAYER_CLASSES

__all__ = ["Sequential", "load_model", "from_bytes"]

_ALIGN = 16  # parameter segments start on 64-byte boundaries (float32)


# Engine layer kinds (enum fm_layer_kind in csrc/fastmlp.h).
_DENSE, _DROPOUT, _BATCHNORM, _ACTIVATION, _NOISE = range(5)

_WEIGHT_NAMES = {Dense: ("kernel", "bias"),
                 BatchNormalization: ("gamma", "beta", "moving_mean", "moving_variance")}


def _param_plan(layers, n_in):
    """Where every weight lives in the model's flat parameter vector.

    Returns ``([(layer, weight_name, shape, offset, trainable), ...], length)`` in
    Keras's weight order (Dense: kernel, bias; BatchNormalization: gamma, beta,
    moving_mean, moving_variance).  Each weight starts on a 64-byte boundary, so
    a memory-mapped model file can hold the vector as it is.
    """
    plan, offset = [], 0
    for layer in layers:
        if isinstance(layer, Dense):
            weights = [("kernel", (n_in, layer.units), True)]
            if layer.use_bias:
                weights.append(("bias", (layer.units,), True))
        elif isinstance(layer, BatchNormalization):
            weights = [(wname, (n_in,), trainable) for wname, trainable, present in
                       (("gamma", True, layer.scale), ("beta", True, layer.center),
                        ("moving_mean", False, True), ("moving_variance", False, True)) if present]
        else:
            continue
        for wname, shape, trainable in weights:
            plan.append((layer, wname, shape, offset, trainable))
            offset += -(-math.prod(shape) // _ALIGN) * _ALIGN
        if isinstance(layer, Dense):
            n_in = layer.units
    return plan, offset


def _check_flattened(layers, sample_shape):
    """Dense and BatchNormalization layers take flat feature vectors: samples of
    higher rank must meet a Flatten first (only Dropout or GaussianNoise, element-wise,
    may come before it)."""
    if len(sample_shape) == 1:
        return
    for layer in layers:
        if isinstance(layer, Flatten):
            return
        if not isinstance(layer, (Dropout, GaussianNoise)):
            break
    raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) takes flat feature vectors, but the "
                     f"model's samples have shape {tuple(sample_shape)}: add a Flatten() layer before it.")


def _resolve_verbose(verbose, default_tty=1):
    if verbose == "auto":
        try:
            return default_tty if sys.stdout.isatty() else 2
        except (AttributeError, ValueError):
            return 2
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1, 2 or 'auto'. Received: verbose={verbose!r}")
    return int(verbose)


def _check_positive_int(name, value, allow_none=True):
    if value is None and allow_none:
        return None
    if not utils._is_positive_int(value) or value >= 1 << 62:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


class Sequential:
    """A linear stack of layers, as ``keras.Sequential``.

    >>> model = Sequential([Input(shape=(4,)), Dense(8, activation="relu"),
    ...                     Dense(3, activation="softmax")])
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    """

    def __init__(self, layers=None, name=None, trainable=True):
        self.name = name or _unique_name("sequential")
        self.trainable = trainable
        self._layers = []
        self._input_shape = None
        self.built = False
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.history = None
        self._net = None
        self._params = None
        self._seed = None
        self._epoch = 0
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"`layers` must be a list of layers. Received: layers={layers!r}")
            for layer in layers:
                self.add(layer, rebuild=False)
            self._maybe_build()

    # ------------------------------------------------------------------ structure
    def add(self, layer, rebuild=True):
        """Append a layer (or an ``Input``) to the stack."""
        if isinstance(layer, InputLayer):
            if self._layers or self._input_shape is not None:
                raise ValueError("An Input/InputLayer can only be the first element of a Sequential model")
            self._input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"The added layer must be an instance of class Layer. "
                            f"Received: layer={layer!r} of type {type(layer)}.")
        if self.built:
            self._unbuild()
        if layer.name in [existing.name for existing in self._layers]:
            raise ValueError(f"All layers added to a Sequential model should have unique names. "
                             f"Name {layer.name!r} is already the name of a layer in this model.")
        if not self._layers and self._input_shape is None and layer._input_shape_arg is not None:
            self._input_shape = layer._input_shape_arg
        self._layers.append(layer)
        if rebuild:
            self._maybe_build()

    def pop(self):
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        if self.built:
            self._unbuild()
        layer = self._layers.pop()
        self._maybe_build()
        return layer

    def _unbuild(self):
        """Detach the layers' weights from the flat vector so the stack can change;
        the next build lays out a new vector (optimizer state starts afresh)."""
        for layer in self._layers:
            for wname in _WEIGHT_NAMES.get(type(layer), ()):
                w = getattr(layer, wname, None)
                if w is not None:
                    setattr(layer, wname, w.copy())
        self.built = False
        self._net = None
        self._params = None
        self._metrics = None
        if self.optimizer is not None:
            self.optimizer._slots = None

    @property
    def layers(self):
        return list(self._layers)

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in self._layers]}.")

    @property
    def dtype(self):
        return self._dtype if self.built else _config.floatx()

    def _maybe_build(self):
        if self._input_shape is not None and self._layers and not self.built:
            self.build((None,) + tuple(self._input_shape))

    def build(self, input_shape=None, params=None, _layout=None):
        """Create every layer's weights for ``input_shape`` = (batch, features).

        ``params`` (internal, used by the loader) is a ready flat parameter vector
        in this model's layout: the layers then view it and no initializer runs.
        """
        if self.built:
            return
        if input_shape is None:
            if self._input_shape is None:
                raise ValueError("You must provide an `input_shape` argument to build a model "
                                 "whose first layer does not declare one.")
            input_shape = (None,) + tuple(self._input_shape)
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or None in input_shape[1:]:
            raise ValueError(f"A fastmlp Sequential model takes input of shape (samples, features) or, "
                             f"with a Flatten layer, (samples, d1, d2, ...); got input shape {input_shape}")
        if not self._layers:
            raise ValueError("The model has no layers to build")
        if not any(isinstance(l, (Dense, BatchNormalization)) for l in self._layers):
            raise ValueError("A fastmlp model needs at least one Dense or BatchNormalization layer")
        _check_flattened(self._layers, input_shape[1:])
        dtypes = {l._dtype for l in self._layers if l._dtype is not None}
        self._dtype = dtypes.pop() if len(dtypes) == 1 else _config.floatx()
        for layer in self._layers:
            layer._dtype = self._dtype
        self._input_shape = tuple(map(int, input_shape[1:]))
        self._n_features = math.prod(self._input_shape)

        # Lay out the flat parameter vector, then the engine's layer and variable tables,
        # one entry per layer the engine runs (self._engine_layers, fixed while built).
        plan, offset = _layout or _param_plan(self._layers, self._n_features)
        if params is None:
            params = np.zeros(max(offset, 1), dtype=self._dtype)
            fill = True
        else:
            if params.dtype != self._dtype or params.shape != (max(offset, 1),) \
                    or not params.flags.c_contiguous:
                raise ValueError(f"internal: params must be a contiguous {self._dtype} vector of "
                                 f"{max(offset, 1)} values")
            fill = False
        n_in = self._n_features
        table, variables = [], []
        views = _engine.weight_views(params, [(o, wshape) for _, _, wshape, o, _ in plan])
        k = 0   # the plan lists each layer's weights together, in layer order
        # The engine sees flat rows: a Flatten is a reshape of the input, not a layer.
        self._engine_layers = [layer for layer in self._layers if not isinstance(layer, Flatten)]
        for i, layer in enumerate(self._engine_layers):
            if not isinstance(layer, (Dense, Activation, Dropout, GaussianNoise, BatchNormalization)):
                raise TypeError(f"fastmlp's engine does not support layer type {type(layer).__name__}")
            if isinstance(layer, Dense) and layer.built and layer.input_dim != n_in:
                raise ValueError(f"Layer {layer.name!r} was built for input dimension "
                                 f"{layer.input_dim} but receives {n_in}")
            if fill and not layer.built:
                layer.build((None, n_in))
            at = {}   # weight name -> offset
            while k < len(plan) and plan[k][0] is layer:   # in _WEIGHT_NAMES order
                _, wname, wshape, o, trainable = plan[k]
                view = views[k]
                k += 1
                if fill:
                    current = getattr(layer, wname)
                    if current.shape != wshape:
                        raise ValueError(f"internal: {layer.name}/{wname} has shape {current.shape}, "
                                         f"the layout says {wshape}")
                    view[...] = current
                setattr(layer, wname, view)
                at[wname] = o
                if trainable:   # kernel, bias, gamma, beta: each has a `<name>_regularizer`
                    reg = getattr(layer, f"{wname}_regularizer")
                    variables.append((i, (o, view.size, reg.l1 if reg else 0.0, reg.l2 if reg else 0.0)))
            at = at.get   # a weight's offset; -1: absent
            if isinstance(layer, Dense):
                act = layer.activation
                table.append((_DENSE, n_in, layer.units, act._fm_code, act._fm_alpha, at("kernel", -1),
                              at("bias", -1), 0.0, 0, -1, -1, 0.0, 0.0, 0))
                layer.input_dim = n_in
                n_in = layer.units
            elif isinstance(layer, Activation):
                act = layer.activation
                table.append((_ACTIVATION, n_in, n_in, act._fm_code, act._fm_alpha, -1, -1, 0.0, 0, -1, -1, 0.0, 0.0, 0))
            elif isinstance(layer, (Dropout, GaussianNoise)):   # the layer's own seed, 0: the model's
                seed = 0 if layer.seed is None else (int(layer.seed) * 0x9E3779B97F4A7C15 + 1) % (1 << 64)
                kind, amount = (_DROPOUT, layer.rate) if isinstance(layer, Dropout) else (_NOISE, layer.stddev)
                table.append((kind, n_in, n_in, 0, 0.0, -1, -1, amount, seed, -1, -1, 0.0, 0.0, 0))
            else:
                table.append((_BATCHNORM, n_in, n_in, 0, 0.0, at("gamma", -1), at("beta", -1), 0.0, 0,
                              at("moving_mean", -1), at("moving_variance", -1), layer.momentum, layer.epsilon, 0))
            layer.built = True
        self._params = params
        self._n_params = offset
        self._table, self._all_variables = table, variables
        self._make_network()
        self._output_dim = n_in
        self._seed = utils._next_seed()
        self.built = True

    def _trainable_layers(self):
        """For each engine layer, whether the optimizer updates its weights now."""
        return [bool(layer.trainable and self.trainable) for layer in self._engine_layers]

    def _make_network(self):
        """(Re)create the engine's network: the optimizer updates only the weights of
        layers that are trainable now (as in Keras, a change of ``layer.trainable``
        takes effect at the next ``compile``); a frozen BatchNormalization keeps its
        moving statistics."""
        self._net_trainable = trainable = self._trainable_layers()
        self._variables = [var for i, var in self._all_variables if trainable[i]]
        self._table = [entry[:-1] + (int(entry[0] == _BATCHNORM and not t),)
                       for entry, t in zip(self._table, trainable)]
        self._net = _engine.Network(self._table, self._variables, self._n_params, self._dtype == "float64")

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        self._require_built("output_shape")
        return (None, self._output_dim)

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"Sequential model {self.name!r} has not been built yet, so `{what}` is "
                             f"unavailable: give the first layer an input shape, add an Input, or call "
                             f"the model on data first.")

    # ------------------------------------------------------------------ weights
    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w for layer in self._layers if layer.trainable for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        ids = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in ids]

    @property
    def trainable_variables(self):
        return self.trainable_weights

    def get_weights(self):
        """Copies of every weight, Keras layout: ``[kernel (in, out), bias (out,), ...]``."""
        return [np.array(w, copy=True) for w in self.weights]

    def set_weights(self, weights):
        """Set every weight from a list shaped like ``get_weights()``."""
        self._require_built("set_weights")
        _assign_weights(self.weights, weights, f"model {self.name!r}")

    def count_params(self):
        self._require_built("count_params")
        return int(sum(w.size for w in self.weights))

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto",
                auto_scale_loss=True):
        """Configure training: optimizer, loss and metrics (Keras defaults)."""
        if loss is None:
            raise ValueError("fastmlp models need a `loss` in compile(); e.g. loss='mse'")
        if loss_weights is not None or weighted_metrics is not None:
            raise ValueError("loss_weights and weighted_metrics are not supported by fastmlp "
                             "(single-output models); metrics are weighted by sample_weight already")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        if self.loss.reduction not in ("sum_over_batch_size", "mean", "sum"):
            raise ValueError(f"A loss used for training needs a scalar reduction ('sum_over_batch_size', "
                             f"'mean' or 'sum'); got reduction={self.loss.reduction!r}")
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        if not isinstance(metrics, (list, tuple)):
            raise TypeError(f"`metrics` must be a list. Received: metrics={metrics!r}")
        for m in metrics:   # validate names now, resolve 'accuracy' once the output is known
            if isinstance(m, str) and m not in ("accuracy", "acc"):
                metrics_module.get(m)
            elif not isinstance(m, (str, metrics_module.Metric)):
                metrics_module.get(m)
        self._metric_ids = list(metrics)
        self._metrics = None
        self.compiled = True
        if self.built and self._trainable_layers() != self._net_trainable:
            self._make_network()

    def _compiled_metrics(self):
        if self._metrics is None:
            self._metrics = [metrics_module.get(m, sparse_targets=self.loss.sparse, n_out=self._output_dim)
                             for m in self._metric_ids]
            names = [m.name for m in self._metrics]
            if len(set(names)) != len(names):
                raise ValueError(f"Metric names must be unique; got {names}")
        return self._metrics

    @property
    def metrics_names(self):
        if not self.compiled:
            return []
        if not self.built:
            return ["loss"] + [m if isinstance(m, str) else m.name for m in self._metric_ids]
        return ["loss"] + [m.name for m in self._compiled_metrics()]

    def _ensure_optimizer(self):
        """Build the optimizer's slots for this model's parameters on first use.  One
        optimizer serves one model, as in Keras: its slots are sized for it."""
        opt = self.optimizer
        if not opt.built:
            opt.build(self._n_params, self._dtype)
            opt._owner = id(self)
        elif getattr(opt, "_owner", id(self)) != id(self) or opt._n_params != self._n_params \
                or opt._slots.dtype != np.dtype(self._dtype):
            raise ValueError(f"The optimizer {opt.name!r} was built for another model's variables; "
                             f"give each model its own optimizer instance (as in Keras).")

    def _require_compiled(self):
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")

    # ------------------------------------------------------------------ data
    def _prepare_x(self, x, what="x"):
        if x is None:
            raise ValueError(f"`{what}` must be provided; got None")
        if isinstance(x, dict):
            raise TypeError("fastmlp Sequential models take a single input array, not a dict")
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"Expected numeric input data for `{what}`; got an array of dtype "
                            f"{arr.dtype} (convert strings/objects to numbers first)")
        if arr.ndim == 1:
            if self.built and self._input_shape == (1,):
                arr = arr.reshape(-1, 1)
            else:
                raise ValueError(f"`{what}` must be 2-D (samples, features); got a 1-D array of shape "
                                 f"{arr.shape}. Use x.reshape(1, -1) for one sample or "
                                 f"x.reshape(-1, 1) for one feature.")
        if arr.ndim > 2 and not any(isinstance(layer, Flatten) for layer in self._layers):
            raise ValueError(f"A dense stack expects 2-D input (samples, features); `{what}` has shape "
                             f"{arr.shape}. Add a Flatten() layer first, or flatten the data, e.g. "
                             f"x.reshape(len(x), -1).")
        if not self.built:
            self.build((None,) + arr.shape[1:])
        if arr.shape[1:] != self._input_shape:
            expected = (f"axis -1 of input shape to have value {self._input_shape[0]}"
                        if len(self._input_shape) == 1 and arr.ndim == 2 else
                        f"input of shape {(None,) + self._input_shape}")
            raise ValueError(f"Input 0 of layer {self._layers[0].name!r} is incompatible with the layer: "
                             f"expected {expected}, but received input with shape {arr.shape}")
        if arr.ndim > 2:
            arr = arr.reshape(len(arr), self._n_features)
        return np.ascontiguousarray(arr, dtype=self._dtype)

    @staticmethod
    def _check_finite(arr, what):
        if arr.size and not _engine.all_finite(arr):
            raise ValueError(f"`{what}` contains NaN or infinity; clean the data before training")

    def _prepare_xy(self, x, y, sample_weight=None, class_weight=None, what="x"):
        X = self._prepare_x(x, what)
        if y is None:
            raise ValueError("Targets `y` must be provided for training and evaluation")
        y_arr = np.asarray(y)
        if y_arr.dtype.kind not in "biuf":
            raise TypeError(f"Expected numeric targets `y`; got an array of dtype {y_arr.dtype}")
        if y_arr.ndim == 0 or len(y_arr) != len(X):
            raise ValueError(f"x and y must have the same number of samples; got x with {len(X)} and "
                             f"y with {0 if y_arr.ndim == 0 else len(y_arr)} rows")
        self._check_finite(X, what)
        Y, labels = self.loss.prepare_targets(y_arr, self._output_dim, self._dtype)
        w = None
        if sample_weight is not None:
            sw = np.asarray(sample_weight)
            if sw.dtype.kind not in "biuf":
                raise TypeError(f"`sample_weight` must be numeric; got dtype {sw.dtype}")
            if sw.ndim == 2 and sw.shape[1] == 1:
                sw = sw[:, 0]
            if sw.shape != (len(X),):
                raise ValueError(f"`sample_weight` must have shape ({len(X)},); got {sw.shape}")
            if not np.isfinite(sw).all() or (sw < 0).any():
                raise ValueError("`sample_weight` must be finite and non-negative")
            w = sw.astype(np.float64)
        if class_weight is not None:
            if not isinstance(class_weight, dict):
                raise TypeError(f"`class_weight` must be a dict mapping class index to weight; got "
                                f"{type(class_weight).__name__}")
            if labels is not None:
                cls = labels
            elif Y.shape[1] > 1:
                cls = np.argmax(Y, axis=1)
            else:
                cls = np.round(Y[:, 0]).astype(np.int64)
            for k, v in class_weight.items():
                if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
                    raise ValueError(f"`class_weight` keys must be non-negative class indices; got {k!r}")
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                        or not np.isfinite(v) or v < 0:
                    raise ValueError(f"`class_weight` values must be finite and non-negative; got "
                                     f"{k!r}: {v!r}")
            table = np.ones(int(max(max(class_weight, default=0), cls.max(initial=0))) + 1)
            for k, v in class_weight.items():
                table[int(k)] = float(v)
            cw = table[cls]
            w = cw if w is None else w * cw
        if w is not None:
            w = np.ascontiguousarray(w, dtype=self._dtype)
        return X, Y, labels, w

    # ------------------------------------------------------------------ training
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns a ``History``.  Keras semantics:
        ``validation_split`` takes the last fraction of the data before shuffling;
        ``class_weight`` and ``sample_weight`` multiply."""
        self._require_compiled()
        batch_size = _check_positive_int("batch_size", batch_size) or 32
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"`epochs` must be a non-negative integer. Received: epochs={epochs!r}")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) or initial_epoch < 0:
            raise ValueError(f"`initial_epoch` must be a non-negative integer. Received: {initial_epoch!r}")
        steps_per_epoch = _check_positive_int("steps_per_epoch", steps_per_epoch)
        validation_freq = _check_positive_int("validation_freq", validation_freq)
        if not 0 <= float(validation_split) < 1:
            raise ValueError(f"`validation_split` must be in [0, 1). Received: {validation_split!r}")
        verbose = _resolve_verbose(verbose)

        if validation_split and validation_data is None:
            n_all = len(np.asarray(x)) if not hasattr(x, "shape") else x.shape[0]
            split = int(n_all * (1.0 - validation_split))
            if split == 0 or split == n_all:
                raise ValueError(f"validation_split={validation_split} leaves no training or no "
                                 f"validation samples out of {n_all}")
            x_arr, y_arr = np.asarray(x), np.asarray(y)
            validation_data = (x_arr[split:], y_arr[split:]) if sample_weight is None else \
                (x_arr[split:], y_arr[split:], np.asarray(sample_weight)[split:])
            x, y = x_arr[:split], y_arr[:split]
            if sample_weight is not None:
                sample_weight = np.asarray(sample_weight)[:split]

        X, Y, labels, w = self._prepare_xy(x, y, sample_weight, class_weight)
        n = len(X)
        if n == 0:
            raise ValueError("Expected input data to be non-empty: `x` has 0 samples")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("`validation_data` must be a tuple (x_val, y_val) or "
                                 "(x_val, y_val, val_sample_weight)")
            val = self._prepare_xy(validation_data[0], validation_data[1],
                                   validation_data[2] if len(validation_data) == 3 else None,
                                   what="validation x")
            if len(val[0]) == 0:
                raise ValueError("`validation_data` is empty")

        self._ensure_optimizer()
        steps = -(-n // batch_size)
        if steps_per_epoch is not None:
            steps = min(steps, steps_per_epoch)
        metrics = self._compiled_metrics()

        history = callbacks_module.History()
        cbs = list(callbacks or [])
        if not all(isinstance(cb, callbacks_module.Callback) for cb in cbs):
            bad = next(cb for cb in cbs if not isinstance(cb, callbacks_module.Callback))
            raise TypeError(f"callbacks must be fastmlp.callbacks.Callback instances; got {type(bad).__name__}")
        progbar = None
        if verbose and not any(isinstance(cb, callbacks_module.ProgbarLogger) for cb in cbs):
            progbar = callbacks_module.ProgbarLogger(verbose=verbose)
            cbs.append(progbar)
        cbs.append(history)
        params = {"verbose": verbose, "epochs": epochs, "steps": steps, "batch_size": batch_size,
                  "samples": n}
        cb_list = callbacks_module.CallbackList(cbs, model=self, params=params)
        batch_hooks = cb_list.wants_train_batch_hooks
        progress = next((cb for cb in cbs if isinstance(cb, callbacks_module.ProgbarLogger)
                         and cb.verbose == 1), None)

        self.stop_training = False
        cb_list.on_train_begin(None)
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self._epoch = epoch
            cb_list.on_epoch_begin(epoch, None)
            order = _engine.permutation(self._seed, epoch, n) if shuffle else None
            mspecs = [m._engine_spec(self._output_dim) for m in metrics]
            totals = np.zeros(3 + len(mspecs))
            step = 0
            chunk = 1 if batch_hooks else (steps if progress is None else 4)
            while step < steps and not (batch_hooks and self.stop_training):
                start, stop = step, min(steps, step + chunk)
                if batch_hooks:
                    cb_list.on_train_batch_begin(step, None)
                t0 = time.perf_counter()
                self._ensure_optimizer()   # a callback may have recompiled the model
                lrs = self.optimizer._learning_rates(stop - step)
                spec = self.optimizer._engine_spec()
                out = self._net.train(self._params, self.optimizer._slots, spec, X, Y, labels, w, order,
                                      batch_size, step, stop, lrs, self.loss._spec(), mspecs,
                                      self._seed)
                self.optimizer._store_state(spec)
                totals += (out[0], out[1], out[2], *out[3])
                step = stop
                logs = self._logs(metrics, mspecs, totals)
                if batch_hooks:
                    cb_list.on_train_batch_end(step - 1, logs)
                if progress is not None:
                    progress.progress(step, logs, samples=totals[1])
                    if not batch_hooks:   # aim for ~0.1 s per engine call
                        per_step = (time.perf_counter() - t0) / max(stop - start, 1)
                        chunk = int(min(max(1, 0.1 / max(per_step, 1e-9)), steps))
            if progress is not None:   # the final line is drawn at epoch end, with val_* logs
                progress.last_step, progress.last_samples = step, totals[1]
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                vlogs = self._evaluate_arrays(*val, batch_size=validation_batch_size or batch_size)
                epoch_logs.update({f"val_{k}": v for k, v in vlogs.items()})
            cb_list.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if self.stop_training:
                break
        cb_list.on_train_end(logs)
        self.history = history
        return history

    @staticmethod
    def _logs(metrics, specs, totals):
        """Epoch logs from the engine's sums: loss is a per-row mean, simple metrics
        a weighted mean, stateful metrics finish from their counts."""
        out = {"loss": float(totals[0] / totals[1]) if totals[1] else 0.0}
        for i, (m, spec) in enumerate(zip(metrics, specs)):
            out[m.name] = m._finish(spec[3]) if m._stateful else m._finish_sum(totals[3 + i], totals[2])
        return out

    def _run_eval(self, X, Y, labels, w, chunk):
        metrics = self._compiled_metrics()
        specs = [m._engine_spec(self._output_dim) for m in metrics]
        out = self._net.evaluate(self._params, X, Y, labels, w, chunk, self.loss._spec(), specs)
        return self._logs(metrics, specs, np.array([out[0], out[1], out[2], *out[3]]))

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns the loss (and metrics) before the step."""
        self._require_compiled()
        X, Y, labels, w = self._prepare_xy(x, y, sample_weight, class_weight)
        if len(X) == 0:
            raise ValueError("Expected input data to be non-empty")
        self._ensure_optimizer()
        metrics = self._compiled_metrics()
        specs = [m._engine_spec(self._output_dim) for m in metrics]
        spec = self.optimizer._engine_spec()
        out = self._net.train(self._params, self.optimizer._slots, spec, X, Y, labels, w, None, len(X),
                              0, 1, self.optimizer._learning_rates(1), self.loss._spec(), specs,
                              self._seed)
        self.optimizer._store_state(spec)
        logs = self._logs(metrics, specs, np.array([out[0], out[1], out[2], *out[3]]))
        return self._format_result(logs, return_dict)

    # ------------------------------------------------------------------ evaluation
    def _evaluate_arrays(self, X, Y, labels, w, batch_size=None):
        # Row results do not depend on the chunking and larger chunks run faster, but a
        # "sum" reduction makes each batch's loss a sum over that batch, as in Keras.
        batch = int(batch_size or 32)
        return self._run_eval(X, Y, labels, w, batch if self.loss.reduction == "sum" else max(batch, 1024))

    def _format_result(self, logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (a float) without metrics, ``[loss, *metrics]`` with them, or a dict."""
        self._require_compiled()
        batch_size = _check_positive_int("batch_size", batch_size) or 32
        verbose = _resolve_verbose(verbose, default_tty=0) if verbose == "auto" else _resolve_verbose(verbose)
        X, Y, labels, w = self._prepare_xy(x, y, sample_weight)
        if len(X) == 0:
            raise ValueError("Expected input data to be non-empty: `x` has 0 samples")
        if steps is not None:
            steps = _check_positive_int("steps", steps)
            m = min(len(X), steps * batch_size)
            X, Y, labels, w = X[:m], None if Y is None else Y[:m], None if labels is None else labels[:m], \
                None if w is None else w[:m]
        t0 = time.perf_counter()
        logs = self._evaluate_arrays(X, Y, labels, w, batch_size)
        if verbose == 1:
            steps_done = -(-len(X) // batch_size)
            print(f"{steps_done}/{steps_done} - {time.perf_counter() - t0:.0f}s - " +
                  " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        return self._format_result(logs, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled()
        X, Y, labels, w = self._prepare_xy(x, y, sample_weight)
        return self._format_result(self._run_eval(X, Y, labels, w, len(X)), return_dict)

    # ------------------------------------------------------------------ inference
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for every row of ``x``, shape ``(n, units)``, in the model's dtype.

        Rows are independent, so ``batch_size`` does not change the result; it is
        validated for Keras compatibility.  ``verbose='auto'`` is silent here."""
        if batch_size is not None:
            _check_positive_int("batch_size", batch_size)
        X = self._prepare_x(x)
        out = np.empty((X.shape[0], self._output_dim), dtype=self._dtype)
        if X.shape[0]:
            self._net.predict(self._params, X, out)
        if verbose == 1:
            print(f"predicted {X.shape[0]} samples")
        return out

    def predict_on_batch(self, x):
        return self.predict(x, verbose=0)

    def __call__(self, x, training=False):
        return self.predict(x, verbose=0)

    # ------------------------------------------------------------------ saving
    def save(self, filepath, overwrite=True, include_optimizer=True, dtype=None):
        """Write the whole model (architecture, weights, compile config and, by
        default, the optimizer/training state) atomically to ``filepath``."""
        from . import saving
        return saving.save_model(self, filepath, overwrite=overwrite,
                                 include_optimizer=include_optimizer, dtype=dtype)

    def save_weights(self, filepath, overwrite=True):
        from . import saving
        return saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        from . import saving
        return saving.load_weights(self, filepath)

    def to_bytes(self, include_optimizer=True, dtype=None):
        """The model file's bytes (what ``save`` writes)."""
        from . import saving
        return saving.model_to_bytes(self, include_optimizer=include_optimizer, dtype=dtype)

    def __reduce__(self):
        if not self.built:   # nothing in C yet: plain attribute pickling
            return (copyreg.__newobj__, (type(self),), dict(self.__dict__))
        from . import saving
        return (saving.model_from_bytes, (self.to_bytes(),))

    # ------------------------------------------------------------------ display
    def summary(self, line_length=None, positions=None, print_fn=None):
        """Print a Keras-style table of layers, output shapes and parameter counts."""
        print_fn = print_fn or print
        names = [f"{layer.name} ({type(layer).__name__})" for layer in self._layers]
        c1 = max([29] + [len(n) + 2 for n in names])
        width = line_length or c1 + 36
        lines = [f'Model: "{self.name}"', "_" * width,
                 f"{'Layer (type)':<{c1}}{'Output Shape':<22}{'Param #':>10}", "=" * width]
        shape = self.input_shape
        total = trainable = 0
        for layer, label in zip(self._layers, names):
            if shape is not None:
                shape = layer.compute_output_shape(shape)
            params = sum(w.size for w in layer.weights) if layer.built else 0
            total += params
            if layer.built and layer.trainable and self.trainable:
                trainable += sum(w.size for w in layer.trainable_weights)
            out = str(shape) if shape is not None else "?"
            lines.append(f"{label:<{c1}}{out:<22}{params if layer.built else '0 (unbuilt)':>10}")
        lines += ["=" * width, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", "_" * width]
        for line in lines:
            print_fn(line)

    def get_config(self):
        cfg = {"name": self.name, "trainable": bool(self.trainable), "layers": []}
        if self._input_shape is not None:
            cfg["layers"].append({"class_name": "InputLayer",
                                  "config": {"batch_shape": (None,) + tuple(self._input_shape),
                                             "dtype": self.dtype}})
        for layer in self._layers:
            cfg["layers"].append({"class_name": type(layer).__name__, "config": layer.get_config()})
        return cfg

    @classmethod
    def from_config(cls, config):
        """A new, unbuilt-or-built model from ``get_config()`` (declarative: only
        fastmlp's own layer kinds are accepted)."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("A Sequential config is a dict with a 'layers' list")
        model = cls(name=config.get("name"), trainable=bool(config.get("trainable", True)))
        for entry in config["layers"]:
            kind = entry.get("class_name") if isinstance(entry, dict) else None
            if kind not in _LAYER_CLASSES:
                raise ValueError(f"Unknown layer class {kind!r} in the config; expected one of "
                                 f"{sorted(_LAYER_CLASSES)}")
            model.add(_LAYER_CLASSES[kind].from_config(dict(entry.get("config", {}))), rebuild=False)
        model._maybe_build()
        return model

    def __repr__(self):
        return f"<Sequential name={self.name}, built={self.built}>"


def load_model(filepath, compile=True, mmap=True, verify=True):
    """Load a model saved by ``Model.save`` (the format is detected by its magic)."""
    from . import saving
    return saving.load_model(filepath, compile=compile, mmap=mmap, verify=verify)


def from_bytes(data, compile=True, verify=True):
    """A model from the bytes of a model file (``Model.to_bytes``)."""
    from . import saving
    return saving.model_from_bytes(data, compile=compile, verify=verify)
