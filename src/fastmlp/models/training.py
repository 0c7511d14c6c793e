"""The training loop and inference of a model: ``compile``, ``fit``,
``evaluate``, ``predict`` and the batch-level calls, with Keras 3's semantics
for one output or several (per-output losses, ``loss_weights`` and metrics).

``fit`` converts the data once, then hands the engine chunks of batches
(gather, forward, backward, update, loss and metric sums) with the GIL
released; Python runs again between chunks — about every 50 ms, so Ctrl-C is
prompt — for callbacks that override batch hooks and for the progress bar.
When History is the only callback (``verbose=0``, no validation), one call
runs as many whole short epochs as fit in that time, and their logs go to
History afterwards.
An interrupt lands between two chunks: the model is then exactly as after the
last step taken (weights, optimizer slots, step counter).
"""
import copyreg
import os
import sys
import time
import warnings

import numpy as np

from .. import _engine, callbacks as callbacks_module, losses as losses_module, metrics as metrics_module
from .. import optimizers, utils
import fastmlp.models.data as data_module
import fastmlp.models.plan as plan_module
import fastmlp.models.quantization as quantization
import fastmlp.models.streams as streams_module

__all__ = ["Trainer"]

_CHUNK_SECONDS = 0.05   # the engine's share of one call between two looks at Python (signals, progress)


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


def _per_output(struct, names, what, default):
    """One entry per output name from a dict, a list or (for one output, or a value
    shared by all) a single value."""
    if isinstance(struct, dict):
        unknown = [k for k in struct if k not in names]
        if unknown:
            raise ValueError(f"`{what}` names unknown output(s) {unknown}; the model's outputs are {names}")
        return [struct.get(k, default) for k in names]
    if isinstance(struct, (list, tuple)):
        if len(struct) != len(names):
            raise ValueError(f"`{what}` is a list of {len(struct)} entries, but the model has {len(names)} "
                             f"outputs {names}")
        return list(struct)
    return [struct] * len(names)


class Trainer:
    """Compile, training and inference for models built on the engine's plan."""

    def __init__(self):
        self.compiled = False
        self.run_eagerly, self.jit_compile, self.steps_per_execution = False, "auto", 1
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.history = None
        self._net = None
        self._params = None
        self._seed = None
        self._epoch = 0
        self._epoch_step = 0     # batches of epoch _epoch already taken (an interrupted fit)
        self._generation = -1
        self._compile_args = None
        self._losses = None
        self._metrics = None

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto",
                auto_scale_loss=True):
        """Configure training: optimizer, loss(es), loss weights and metrics (Keras defaults).
        With several outputs, ``loss``, ``loss_weights`` and ``metrics`` may be dicts keyed
        by output name or lists in output order; one loss serves every output.

        Accepted for Keras compatibility, with no effect on what is computed:

        * ``run_eagerly`` (bool), ``jit_compile`` (True, False or "auto"): fastmlp has no
          graph tracing or XLA; every step runs the same compiled C engine.
        * ``steps_per_execution`` (a positive int): ``fit`` already runs whole chunks of
          batches in C without returning to Python; batch-level callback hooks still fire
          for every batch (Keras fires them once per ``steps_per_execution`` batches).
        * ``auto_scale_loss`` (bool): loss scaling only matters for mixed-precision float16
          policies, which fastmlp does not have (it trains in float32 or float64).

        The values are kept as ``model.run_eagerly``, ``model.jit_compile`` and
        ``model.steps_per_execution``.  A Python loss function (or a Loss subclass with its
        own ``call``) raises NotImplementedError: losses run inside the engine."""
        if not isinstance(run_eagerly, (bool, np.bool_)):
            raise ValueError(f"`run_eagerly` must be True or False. Received: run_eagerly={run_eagerly!r}")
        if jit_compile not in (True, False, "auto") or isinstance(jit_compile, (int, float)) \
                and not isinstance(jit_compile, bool):
            raise ValueError(f"`jit_compile` must be True, False or 'auto'. Received: jit_compile={jit_compile!r}")
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, (int, np.integer)) \
                or steps_per_execution < 1:
            raise ValueError(f"`steps_per_execution` must be a positive integer. "
                             f"Received: steps_per_execution={steps_per_execution!r}")
        if not isinstance(auto_scale_loss, (bool, np.bool_)):
            raise ValueError(f"`auto_scale_loss` must be True or False. Received: auto_scale_loss={auto_scale_loss!r}")
        if loss is None:
            raise ValueError("fastmlp models need a `loss` in compile(); e.g. loss='mse'")
        optimizer = optimizers.get(optimizer)

        def resolve(value):
            got = losses_module.get(value)
            if got.reduction not in ("sum_over_batch_size", "mean", "sum"):
                raise ValueError(f"A loss used for training needs a scalar reduction ('sum_over_batch_size', "
                                 f"'mean' or 'sum'); got reduction={got.reduction!r}")
            return got
        if isinstance(loss, dict):
            resolved = {k: resolve(v) for k, v in loss.items()}
        elif isinstance(loss, (list, tuple)):
            resolved = [resolve(v) for v in loss]
        else:
            resolved = resolve(loss)
        if loss_weights is not None and not isinstance(loss_weights, (dict, list, tuple)):
            raise TypeError(f"`loss_weights` must be a list or a dict. Received: loss_weights={loss_weights!r}")
        for w in (loss_weights.values() if isinstance(loss_weights, dict) else loss_weights or []):
            if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(w) or w < 0:
                raise ValueError(f"`loss_weights` must be finite non-negative numbers; got {w!r}")
        def as_struct(metrics, what):
            if metrics is None:
                return []
            if isinstance(metrics, (str, metrics_module.Metric)):
                return [metrics]
            if not isinstance(metrics, (list, tuple, dict)):
                raise TypeError(f"`{what}` must be a list or a dict. Received: {what}={metrics!r}")
            return metrics
        # Keras 3: `metrics` count every row once; only `weighted_metrics` see sample weights
        metrics = as_struct(metrics, "metrics")
        weighted_metrics = as_struct(weighted_metrics, "weighted_metrics")

        def check_metric(m):   # names are validated now, 'accuracy' resolved once the outputs are known
            if isinstance(m, str) and m.lower() not in ("accuracy", "acc"):
                metrics_module.get(m)
            elif type(m) in (metrics_module.Mean, metrics_module.Sum, metrics_module.Metric):
                raise ValueError(f"{type(m).__name__} takes values, not (y_true, y_pred): it cannot be a "
                                 f"compiled metric (use it standalone, or MeanMetricWrapper(fn))")
            elif not isinstance(m, (str, metrics_module.Metric)):
                metrics_module.get(m)
        for struct in (metrics, weighted_metrics):
            for entry in (struct.values() if isinstance(struct, dict) else struct):
                for m in (entry if isinstance(entry, (list, tuple)) else [entry]):
                    check_metric(m)
        self.optimizer = optimizer
        self.loss = resolved
        self.run_eagerly, self.jit_compile = bool(run_eagerly), jit_compile
        self.steps_per_execution = int(steps_per_execution)
        self._compile_args = {"loss": resolved, "loss_weights": loss_weights, "metrics": metrics,
                              "weighted_metrics": weighted_metrics}
        self._metric_ids = metrics if not isinstance(metrics, tuple) else list(metrics)
        self._losses = None
        self._metrics = None
        self.compiled = True
        if self.built:
            self._resolve_compile()
            if [w.trainable for w in self._plan.weights] != self._plan.trainable_state:
                self._make_network()

    def _resolve_compile(self):
        """Per-output losses, weights and metrics, once the outputs are known."""
        names = self.output_names
        args = self._compile_args
        loss = args["loss"]
        if isinstance(loss, dict):
            missing = [k for k in names if k not in loss]
            unknown = [k for k in loss if k not in names]
            if unknown:
                raise ValueError(f"`loss` names unknown output(s) {unknown}; the model's outputs are {names}")
            if missing:
                raise ValueError(f"`loss` has no entry for output(s) {missing}; fastmlp trains every output")
            self._loss_order = [names.index(k) for k in loss]
        else:
            self._loss_order = list(range(len(names)))
        self._losses = _per_output(loss, names, "loss", None)
        weights = _per_output(args["loss_weights"], names, "loss_weights", 1.0) \
            if args["loss_weights"] is not None else [1.0] * len(names)
        self._loss_weights = [float(w) for w in weights]
        self._metrics = []
        self._metric_weighted = []
        counters = {}   # a name's uses so far: the second gets "_1", and so on, as Keras names results
        try:
            for weighted in (False, True):
                self._resolve_metrics(args["weighted_metrics" if weighted else "metrics"], weighted, counters)
        except Exception:
            self._metrics = None
            raise

    def _resolve_metrics(self, metrics, weighted, counters):
        names = self.output_names
        multi = len(names) > 1
        what = "weighted_metrics" if weighted else "metrics"
        if isinstance(metrics, dict):
            per = _per_output(metrics, names, what, [])
        elif multi and metrics and all(isinstance(m, (list, tuple)) for m in metrics):
            per = _per_output(list(metrics), names, what, [])
        elif multi and metrics:
            if len(metrics) != len(names):
                raise ValueError(f"Invalid `{what}` for a model with {len(names)} outputs {names}: give one "
                                 f"entry per output (a list of lists, or a dict keyed by output name); got "
                                 f"{list(metrics)}")
            per = [[m] for m in metrics]
        else:
            per = [list(metrics)] + [[] for _ in names[1:]]
        labels = [label for _, _, label in self._metrics]
        for k, entry in enumerate(per):
            entry = entry if isinstance(entry, (list, tuple)) else [entry]
            loss_k = self._losses[k]
            for m in entry:
                metric = metrics_module.get(m, sparse_targets=loss_k.sparse, n_out=self._plan.output_widths[k])
                if metric._in_engine and metric._needs == "sparse" and not loss_k.sparse:
                    raise ValueError(f"The metric {metric.name!r} needs integer labels (an output trained with "
                                     f"loss='sparse_categorical_crossentropy'); output {names[k]!r} has dense "
                                     f"targets for its loss {loss_k.name!r}")
                label = f"{names[k]}_{metric.name}" if multi else metric.name
                if label in counters and weighted:   # Keras: a weighted twin of a metric is weighted_<name>
                    label = f"{names[k]}_weighted_{metric.name}" if multi else f"weighted_{metric.name}"
                if label in counters:
                    counters[label] += 1
                    label = f"{label}_{counters[label] - 1}"
                else:
                    counters[label] = 1
                labels.append(label)
                self._metrics.append((k, metric, label))
                self._metric_weighted.append(weighted)
        if len(set(labels)) != len(labels):
            raise ValueError(f"Metric names must be unique; got {labels}")

    def _compiled(self):
        if self._metrics is None:
            self._resolve_compile()
        return self._metrics

    def _compiled_metrics(self):
        return [m for _, m, _ in self._compiled()]

    @property
    def metrics_names(self):
        if not self.compiled:
            return []
        if not self.built:
            return ["loss"] + [m if isinstance(m, str) else metrics_module.get(m).name for m in self._metric_ids]
        self._compiled()
        names = ["loss"]
        if len(self.output_names) > 1:
            names += [f"{self.output_names[k]}_loss" for k in self._loss_order]
        return names + [label for _, _, label in self._metrics]

    def get_compile_config(self):
        """The arguments of ``compile`` as plain data (None when not compiled)."""
        if not self.compiled:
            return None

        def metric(m):
            if isinstance(m, str):
                return m
            if isinstance(m, metrics_module.Metric) or callable(m):
                return metrics_module.serialize(metrics_module.get(m))
            raise ValueError(f"Cannot save metric {m!r}: only names and fastmlp.metrics.Metric objects")

        def metrics(struct):
            if isinstance(struct, dict):
                return {k: [metric(m) for m in (v if isinstance(v, (list, tuple)) else [v])]
                        for k, v in struct.items()}
            return [[metric(x) for x in m] if isinstance(m, (list, tuple)) else metric(m) for m in struct]
        loss = self._compile_args["loss"]
        if isinstance(loss, dict):
            loss = {k: losses_module.serialize(v) for k, v in loss.items()}
        elif isinstance(loss, list):
            loss = [losses_module.serialize(v) for v in loss]
        else:
            loss = losses_module.serialize(loss)
        cfg = {"optimizer": optimizers.serialize(self.optimizer), "loss": loss,
               "metrics": metrics(self._compile_args["metrics"])}
        if self._compile_args["weighted_metrics"]:
            cfg["weighted_metrics"] = metrics(self._compile_args["weighted_metrics"])
        if self._compile_args["loss_weights"] is not None:
            lw = self._compile_args["loss_weights"]
            cfg["loss_weights"] = {k: float(v) for k, v in lw.items()} if isinstance(lw, dict) else \
                [float(v) for v in lw]
        return cfg

    def compile_from_config(self, config):
        """``compile`` from ``get_compile_config()`` (declarative: fastmlp's own classes only)."""
        if not isinstance(config, dict) or not isinstance(config.get("optimizer"), dict):
            raise ValueError("A compile config is a dict with an 'optimizer' object")
        opt = optimizers.deserialize(config["optimizer"])

        def loss(v):
            if not isinstance(v, dict):
                raise ValueError(f"a loss must be an object; got {v!r}")
            return losses_module.deserialize(v)
        raw = config.get("loss")
        if isinstance(raw, list):
            loss_arg = [loss(v) for v in raw]
        elif isinstance(raw, dict) and "class_name" not in raw:
            loss_arg = {k: loss(v) for k, v in raw.items()}
        else:
            loss_arg = loss(raw)

        def metric(m):
            if isinstance(m, str):
                return m
            if isinstance(m, dict) and m.get("class_name") in metrics_module._CLASSES:
                return metrics_module.deserialize(m)
            raise ValueError(f"unknown metric {m!r}")
        def metric_struct(key):
            raw_metrics = config.get(key, [])
            if isinstance(raw_metrics, dict):
                return {k: [metric(m) for m in v] if isinstance(v, list) else metric(v)
                        for k, v in raw_metrics.items()}
            if isinstance(raw_metrics, list):
                return [[metric(x) for x in m] if isinstance(m, list) else metric(m) for m in raw_metrics]
            raise ValueError(f"the compile config's {key!r} must be a list or an object")
        self.compile(optimizer=opt, loss=loss_arg, metrics=metric_struct("metrics"),
                     weighted_metrics=metric_struct("weighted_metrics") or None,
                     loss_weights=config.get("loss_weights"))
        opt._loaded = True   # (Keras builds the optimizer here: load_weights then restores its state)

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

    def _ensure_attached(self):
        """Make the layers view this model's parameter vector again if another model took them."""
        plan_module.ensure_attached(self)

    def _attach(self, params):
        """Use ``params`` (a vector in this model's layout, e.g. a file's) as the weights, as it is."""
        plan_module.attach(self, params, fill=False)
        self._make_network()

    def _require_compiled(self):
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")

    # ------------------------------------------------------------------ engine arguments
    def _loss_specs(self):
        """Per output: (kind, from_logits, label_smoothing, delta, sum_reduction, loss weight)."""
        out = []
        for loss, weight in zip(self._losses, self._loss_weights):
            spec = tuple(loss._spec())
            out.append(spec + (0,) * (5 - len(spec)) + (weight,))
        return out

    def _metric_specs(self):
        """Per metric the engine runs: (kind, param, class_id, state, output, extra)."""
        return [m._engine_spec(self._plan.output_widths[k], k, weighted)
                for (k, m, _), weighted in zip(self._compiled(), self._metric_weighted) if m._in_engine]

    def _python_metrics(self):
        """The compiled metrics that run in Python (functions, Metric subclasses):
        (output, metric, weighted)."""
        return [(k, m, weighted) for (k, m, _), weighted in zip(self._compiled(), self._metric_weighted)
                if not m._in_engine]

    @staticmethod
    def _update_python_metrics(py, outs, Y, labels, w, rows):
        """Python metrics on one batch: ``outs`` are its predictions per output, ``rows``
        selects its targets and weights."""
        for k, m, weighted in py:
            y_true = labels[k][rows] if labels[k] is not None else Y[k][rows]
            m.update_state(y_true, outs[k], sample_weight=w[rows] if weighted and w is not None else None)

    def _prepare(self, x, y, sample_weight=None, class_weight=None, what="x", finite=True):
        """Inputs, targets, labels and weights as the engine reads them."""
        X = data_module.model_inputs(self, x, what)
        n = len(X[0])
        Ys, labels = data_module.model_targets(self, y, n)
        if finite:
            data_module.check_finite(X, what)
        w = data_module.sample_weights(self, n, sample_weight, class_weight, Ys, labels)
        return X, Ys, labels, w

    def _input_consumer_name(self, k):
        """The name of the first layer that reads input k (for error messages)."""
        for node in self._nodes:
            if any(t is self.inputs[k] for t in node.inputs):
                return node.layer.name
        return self.input_names[k]

    def _logs(self, totals, specs):
        """Logs from the engine's sums: losses are per-row means, simple metrics a
        weighted mean, stateful metrics finish from their counts."""
        loss_sum, rows, weight_sum, metric_sums, output_sums = totals
        out = {"loss": float(loss_sum / rows) if rows else 0.0}
        multi = len(self.output_names) > 1
        if multi:
            for k in self._loss_order:
                out[f"{self.output_names[k]}_loss"] = float(output_sums[k] / rows) if rows else 0.0
        metric_logs = {}
        i = 0
        for (_, m, label), weighted in zip(self._metrics, self._metric_weighted):
            if not m._in_engine:
                r = m.result()
                metric_logs[label] = float(r) if np.ndim(r) == 0 else np.asarray(r)
                continue
            spec = specs[i]
            metric_logs[label] = m._finish(spec[3]) if m._stateful else \
                m._finish_sum(metric_sums[i], weight_sum if weighted else rows)
            i += 1
        if multi:   # Keras: the metrics sorted by name after the losses
            for label in sorted(metric_logs):
                out[label] = metric_logs[label]
        else:
            out.update(metric_logs)
        return out

    @staticmethod
    def _add(totals, out):
        totals[0] += out[0]
        totals[1] += out[1]
        totals[2] += out[2]
        for i, v in enumerate(out[3]):
            totals[3][i] += v
        for k, v in enumerate(out[4]):
            totals[4][k] += v

    # ------------------------------------------------------------------ training
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns a ``History``.  Keras semantics:
        ``validation_split`` takes the last fraction of the data before shuffling;
        ``class_weight`` and ``sample_weight`` multiply."""
        self._require_compiled()
        quantization.check_trainable(self)
        batch_size_given, batch_size = batch_size, _check_positive_int("batch_size", batch_size) or 32
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or not 0 <= epochs < 1 << 62:
            raise ValueError(f"`epochs` must be a non-negative integer. Received: epochs={epochs!r}")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
                or not 0 <= initial_epoch < 1 << 62:
            raise ValueError(f"`initial_epoch` must be a non-negative integer. Received: {initial_epoch!r}")
        steps_per_epoch = _check_positive_int("steps_per_epoch", steps_per_epoch)
        validation_freq = _check_positive_int("validation_freq", validation_freq)
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float, np.integer,
                                                                                   np.floating)) \
                or not 0 <= validation_split < 1:
            raise ValueError(f"`validation_split` must be in [0, 1) (a number). Received: "
                             f"validation_split={validation_split!r}")
        verbose = _resolve_verbose(verbose)
        if streams_module.uses_streams(x, y, sample_weight, validation_data):   # batches from Python, memmaps
            return streams_module.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                                      validation_data, shuffle, class_weight, sample_weight, initial_epoch,
                                      steps_per_epoch, _check_positive_int("validation_steps", validation_steps),
                                      validation_batch_size, validation_freq, batch_size_given)
        if not self.built:
            self._build_from_data(x)
        self._compiled()

        if validation_split and validation_data is None:
            n_all = data_module.n_samples(x)
            split = int(n_all * (1.0 - validation_split))
            if split == 0 or split == n_all:
                raise ValueError(f"validation_split={validation_split} leaves no training or no "
                                 f"validation samples out of {n_all}")
            tail, head = slice(split, None), slice(None, split)
            validation_data = (data_module.take(x, tail), data_module.take(y, tail)) if sample_weight is None \
                else (data_module.take(x, tail), data_module.take(y, tail), np.asarray(sample_weight)[tail])
            x, y = data_module.take(x, head), data_module.take(y, head)
            if sample_weight is not None:
                sample_weight = np.asarray(sample_weight)[head]

        X, Y, labels, w = self._prepare(x, y, sample_weight, class_weight)
        n = len(X[0])
        if n == 0:
            raise ValueError("Expected input data to be non-empty: `x` has 0 samples")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("`validation_data` must be a tuple (x_val, y_val) or "
                                 "(x_val, y_val, val_sample_weight)")
            val = self._prepare(validation_data[0], validation_data[1],
                                validation_data[2] if len(validation_data) == 3 else None, what="validation x")
            if len(val[0][0]) == 0:
                raise ValueError("`validation_data` is empty")

        plan_module.ensure_attached(self)
        self._ensure_optimizer()
        steps = -(-n // batch_size)
        if steps_per_epoch is not None:
            steps = min(steps, steps_per_epoch)
        if self.optimizer.iterations + (epochs - initial_epoch) * steps > (1 << 63) - 1:
            raise ValueError(f"The optimizer has taken {self.optimizer.iterations} steps; {epochs - initial_epoch} "
                             f"more epochs of {steps} would overflow its 64-bit step counter")

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
        self._initial_epoch = None
        cb_list.on_train_begin({})
        restored = self._initial_epoch   # set by a callback that restored a backup (BackupAndRestore)
        if restored is not None:
            initial_epoch, self._initial_epoch = restored, None
        logs = {}
        # the first chunk from a rough cost (6 flops per parameter and row at 2 GFLOP/s), then measured
        chunk = int(min(max(1, _CHUNK_SECONDS / (batch_size * max(self._n_params, 1) * 3e-9)), steps))
        # A fit interrupted in the middle of an epoch (Ctrl-C) resumes there: fit(initial_epoch=e)
        # with the epoch it stopped in continues with that epoch's next batch.
        resume = self._epoch_step if (self._epoch_step and initial_epoch == self._epoch
                                      and (restored is not None or shuffle and steps_per_epoch is None)) else 0
        # History alone needs Python once per epoch, for its logs: short epochs run several to an engine call
        whole_epochs = chunk >= steps and len(cbs) == 1 and val is None and not self._python_metrics() \
            and all(spec[3] is None for spec in self._metric_specs())
        epoch = initial_epoch
        while epoch < epochs:
            if whole_epochs and not resume:
                whole_epochs = False   # what is left after an epoch longer than _CHUNK_SECONDS goes in chunks
                epoch, logs = self._fit_whole_epochs(history, X, Y, labels, w, shuffle, batch_size, steps, epoch,
                                                     epochs, logs)
                if self.stop_training:
                    break
                continue
            self._epoch = epoch
            if progress is not None:   # an early first frame in every epoch
                chunk = min(chunk, 4)
            cb_list.on_epoch_begin(epoch, {})
            order = _engine.permutation(self._seed, epoch, n) if shuffle else None
            mspecs = self._metric_specs()
            py_metrics = self._python_metrics()   # these need one batch per engine call
            for _, m, _ in py_metrics:
                m.reset_state()
            totals = [0.0, 0.0, 0.0, [0.0] * len(mspecs), [0.0] * len(self.output_names)]
            step, resume = min(resume, steps), 0
            self._epoch_step = step
            while step < steps and not (batch_hooks and self.stop_training):
                start, stop = step, min(steps, step + (1 if batch_hooks or py_metrics else chunk))
                if batch_hooks:
                    cb_list.on_train_batch_begin(step, {})
                t0 = time.perf_counter()
                self._ensure_optimizer()   # a callback may have recompiled the model
                lrs = self.optimizer._learning_rates(stop - step)
                spec = self.optimizer._engine_spec()
                try:   # the engine updates weights, slots and spec together: keep the counters with them
                    out = self._net.train(self._params, self.optimizer._slots, spec, X, Y, labels, w, order,
                                          batch_size, step, stop, lrs, self._loss_specs(), mspecs, self._seed)
                finally:
                    if spec["iterations"] != self.optimizer.iterations:
                        self._epoch_step = step + int(spec["iterations"] - self.optimizer.iterations)
                    self.optimizer._store_state(spec)
                self._add(totals, out)
                if py_metrics:
                    r0, r1 = step * batch_size, min(n, (step + 1) * batch_size)
                    self._update_python_metrics(py_metrics, self._net.last_outputs(r1 - r0), Y, labels, w,
                                                slice(r0, r1) if order is None else order[r0:r1])
                step = stop
                logs = self._logs(totals, mspecs)
                if batch_hooks:
                    cb_list.on_train_batch_end(step - 1, logs)
                if progress is not None:
                    progress.progress(step, logs, samples=totals[1])
                if not batch_hooks:   # aim for _CHUNK_SECONDS per engine call
                    per_step = (time.perf_counter() - t0) / max(stop - start, 1)
                    chunk = int(min(max(1, _CHUNK_SECONDS / max(per_step, 1e-9)), steps))
            if progress is not None:   # the final line is drawn at epoch end, with val_* logs
                progress.last_step, progress.last_samples = step, totals[1]
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                vlogs = self._evaluate_arrays(*val, batch_size=validation_batch_size or batch_size,
                                              cb_list=cb_list)
                epoch_logs.update({f"val_{k}": v for k, v in vlogs.items()})
            cb_list.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if self.stop_training:
                break
            epoch += 1
        cb_list.on_train_end(logs)
        self._epoch_step = 0
        self.history = history
        return history

    def _fit_whole_epochs(self, history, X, Y, labels, w, shuffle, batch_size, steps, epoch, epochs, logs):
        """fit's epochs from ``epoch`` on when ``history`` is the only callback, with no
        validation and only stateless engine metrics: several whole epochs per engine call
        (about _CHUNK_SECONDS of work), then each epoch's logs to ``history`` as
        ``on_epoch_end`` gives them.  Stops before ``epochs`` when an epoch takes longer than
        _CHUNK_SECONDS (fit's chunks take the rest).  Returns the next epoch and the logs.
        An interrupt while History takes a call's logs leaves it without the rest of them;
        the model is as after the call's last step, ``_epoch`` and ``_epoch_step`` included."""
        mspecs = self._metric_specs()
        losses = self._loss_specs()
        opt = self.optimizer
        nm = len(mspecs)
        width = 3 + nm + len(self.output_names)   # the engine's sums of an epoch: see Network.train_epochs
        n_epochs = 1   # the first call measures the time of an epoch
        while epoch < epochs and n_epochs and not self.stop_training:
            k = min(n_epochs, epochs - epoch)
            self._epoch, self._epoch_step = epoch, 0
            self._ensure_optimizer()
            lrs = opt._learning_rates(k * steps)
            spec = opt._engine_spec()
            sums = np.empty((k, width))
            t0 = time.perf_counter()
            status = 0
            try:   # the engine updates weights, slots and spec together: keep the counters with them
                status = self._net.train_epochs(self._params, opt._slots, spec, X, Y, labels, w, epoch, k,
                                                      bool(shuffle), batch_size, steps, lrs, losses, mspecs,
                                                      self._seed, sums)
            finally:
                taken = int(spec["iterations"] - opt.iterations)
                if taken:   # the epoch of the last step taken, and its batches taken
                    full, part = divmod(taken, steps)
                    self._epoch, self._epoch_step = (epoch + full, part) if part or status else \
                        (epoch + full - 1, steps)
                opt._store_state(spec)
            for row in sums[:spec.get("epochs_done", 0)].tolist():
                logs = self._logs((row[0], row[1], row[2], row[3:3 + nm], row[3 + nm:]), mspecs)
                history.on_epoch_end(epoch, logs)
                epoch += 1
            _engine.raise_status(status)
            per_epoch = (time.perf_counter() - t0) / k
            n_epochs = int(min(_CHUNK_SECONDS / max(per_epoch, 1e-9), 1 << 20))
        return epoch, logs

    def _build_from_data(self, x):
        """Models that learn their input shape from the first data (Sequential) build here."""
        raise ValueError(f"Model {self.name!r} is not built")

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns the loss (and metrics) of that batch."""
        self._require_compiled()
        quantization.check_trainable(self)
        if not self.built:
            self._build_from_data(x)
        self._compiled()
        X, Y, labels, w = self._prepare(x, y, sample_weight, class_weight)
        if len(X[0]) == 0:
            raise ValueError("Expected input data to be non-empty")
        plan_module.ensure_attached(self)
        self._ensure_optimizer()
        specs = self._metric_specs()
        spec = self.optimizer._engine_spec()
        py_metrics = self._python_metrics()
        for _, m, _ in py_metrics:
            m.reset_state()
        out = self._net.train(self._params, self.optimizer._slots, spec, X, Y, labels, w, None, len(X[0]),
                              0, 1, self.optimizer._learning_rates(1), self._loss_specs(), specs, self._seed)
        self.optimizer._store_state(spec)
        if py_metrics:
            self._update_python_metrics(py_metrics, self._net.last_outputs(len(X[0])), Y, labels, w,
                                        slice(None))
        return self._format_result(self._logs(out, specs), return_dict)

    # ------------------------------------------------------------------ evaluation
    def _rows_per_call(self, batch=1):
        """Rows for one engine call of inference: about _CHUNK_SECONDS of work (at a
        modest 10 GFLOP/s), so that Ctrl-C is seen promptly; a multiple of ``batch``."""
        rows = max(1024, int(_CHUNK_SECONDS * 1e10 / (2 * max(self._n_params, 1))))
        return max(batch, rows // batch * batch)

    def _run_eval(self, X, Y, labels, w, chunk, cb_list=None, batch=None):
        """Losses and metrics over all rows.  With ``cb_list``, Keras's test hooks run: begin and
        end, and the batch hooks (one engine call per batch of ``batch`` rows) when overridden."""
        plan_module.ensure_attached(self)
        specs = self._metric_specs()
        n = len(X[0])
        hooks = cb_list is not None and (cb_list.wants("on_test_batch_begin") or cb_list.wants("on_test_batch_end"))
        step = batch if hooks else self._rows_per_call(chunk)
        totals = [0.0, 0.0, 0.0, [0.0] * len(specs), [0.0] * len(self.output_names)]
        py_metrics = self._python_metrics()   # they read predictions: one more forward pass
        for _, m, _ in py_metrics:
            m.reset_state()
        if py_metrics and batch and not hooks:   # engine calls on Keras's batch boundaries
            step = max(batch, step // batch * batch)
        if cb_list is not None:
            cb_list.on_test_begin({})
        for i, r0 in enumerate(range(0, n, step)):
            sl = slice(r0, min(n, r0 + step))
            if hooks:
                cb_list.on_test_batch_begin(i, {})
            self._add(totals, self._net.evaluate(
                self._params, [a[sl] for a in X], [None if a is None else a[sl] for a in Y],
                [None if a is None else a[sl] for a in labels], None if w is None else w[sl],
                min(chunk, step), self._loss_specs(), specs))
            if py_metrics:
                outs = [np.empty((sl.stop - sl.start, width), dtype=self._dtype) for width in self._plan.output_widths]
                self._net.predict(self._params, [a[sl] for a in X], outs)
                kb = batch or chunk   # in Keras's batches: a metric may reduce each batch
                for b0 in range(0, sl.stop - sl.start, kb):
                    b1 = min(sl.stop - sl.start, b0 + kb)
                    self._update_python_metrics(py_metrics, [o[b0:b1] for o in outs], Y, labels, w,
                                                slice(sl.start + b0, sl.start + b1))
            if hooks:
                cb_list.on_test_batch_end(i, self._logs(totals, specs))
        logs = self._logs(totals, specs)
        if cb_list is not None:
            cb_list.on_test_end(dict(logs))
        return logs

    def _evaluate_arrays(self, X, Y, labels, w, batch_size=None, cb_list=None):
        # Row results do not depend on the chunking and larger chunks run faster, but a
        # "sum" reduction makes each batch's loss a sum over that batch, as in Keras.
        batch = int(batch_size or 32)
        any_sum = any(loss.reduction == "sum" for loss in self._losses)
        return self._run_eval(X, Y, labels, w, batch if any_sum else max(batch, 1024), cb_list, batch)

    def _format_result(self, logs, return_dict):
        if return_dict:
            return dict(sorted(logs.items())) if len(self.output_names) > 1 else logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (a float) without metrics, ``[loss, *metrics]`` with them, or a dict."""
        self._require_compiled()
        batch_size_given, batch_size = batch_size, _check_positive_int("batch_size", batch_size) or 32
        verbose = _resolve_verbose(verbose, default_tty=0) if verbose == "auto" else _resolve_verbose(verbose)
        if streams_module.is_stream(x) or streams_module.is_mapped(x, y, sample_weight):
            logs = streams_module.evaluate(self, x, y, batch_size, verbose, sample_weight,
                                           _check_positive_int("steps", steps), callbacks, batch_size_given)
            return self._format_result(logs, return_dict)
        if not self.built:
            self._build_from_data(x)
        self._compiled()
        X, Y, labels, w = self._prepare(x, y, sample_weight)
        n = len(X[0])
        if n == 0:
            raise ValueError("Expected input data to be non-empty: `x` has 0 samples")
        if steps is not None:
            steps = _check_positive_int("steps", steps)
            m = min(n, steps * batch_size)
            X = [a[:m] for a in X]
            Y = [None if a is None else a[:m] for a in Y]
            labels = [None if a is None else a[:m] for a in labels]
            w = None if w is None else w[:m]
            n = m
        cb_list = None
        if callbacks:
            cb_list = callbacks_module.CallbackList(
                callbacks, model=self, params={"verbose": verbose, "epochs": 1, "steps": -(-n // batch_size)})
        bar = utils.Progbar(-(-n // batch_size), verbose=verbose, stateless_metrics=set()) if verbose else None
        logs = self._evaluate_arrays(X, Y, labels, w, batch_size, cb_list)
        if bar is not None:   # Keras's finished line: "32/32 ━━━━ 0s 2ms/step - loss: ..."
            bar.update(bar.target, list(logs.items()), finalize=True)
        return self._format_result(logs, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled()
        if not self.built:
            self._build_from_data(x)
        self._compiled()
        X, Y, labels, w = self._prepare(x, y, sample_weight)
        if len(X[0]) == 0:
            raise ValueError("Expected input data to be non-empty: `x` has 0 samples")
        return self._format_result(self._run_eval(X, Y, labels, w, len(X[0])), return_dict)

    # ------------------------------------------------------------------ inference
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for every row of ``x`` in the model's output structure (an array,
        a list or a dict keyed by output name), in the model's dtype.

        Rows are independent, so ``batch_size`` does not change the result; it is
        validated for Keras compatibility.  ``verbose='auto'`` is silent here."""
        if batch_size is not None:
            _check_positive_int("batch_size", batch_size)
        if streams_module.is_stream(x) or streams_module.is_mapped(x):
            return streams_module.predict(self, x, batch_size or 32, verbose, _check_positive_int("steps", steps),
                                          callbacks, batch_size)
        if not self.built:
            self._build_from_data(x)
        plan = self._plan
        if plan.simple_io and type(x) is np.ndarray and x.dtype == self._dtype and x.ndim == 2 \
                and x.shape[1] == plan.input_widths[0] and x.flags.c_contiguous:
            X = [x]   # one sample or a batch, as the engine reads it already: the fast path
            if plan.id_checks:
                data_module.check_ids(plan, X)
        else:
            X = data_module.model_inputs(self, x)
        n = X[0].shape[0]
        bar = utils.Progbar(-(-n // (batch_size or 32)), verbose=verbose) if verbose in (1, 2) and n else None
        outs = [np.empty((n, width), dtype=self._dtype) for width in plan.output_widths]
        if callbacks:
            return self._predict_with_callbacks(X, outs, batch_size or 32, callbacks, verbose)
        if n:
            if self._generation != plan_module._GENERATION[0]:
                plan_module.ensure_attached(self)
            step = n if n <= 1024 else self._rows_per_call()
            if step >= n:
                self._net.predict(self._params, X, outs)
            else:   # in pieces, so that Ctrl-C is seen between them
                for r0 in range(0, n, step):
                    sl = slice(r0, min(n, r0 + step))
                    self._net.predict(self._params, [a[sl] for a in X], [o[sl] for o in outs])
        if bar is not None:   # Keras's finished line: "32/32 ━━━━ 0s 1ms/step"
            bar.update(bar.target, finalize=True)
        if not plan.simple_io:
            outs = [o.reshape((n,) + tuple(t.shape[1:])) if len(t.shape) > 2 else o
                    for o, t in zip(outs, self.outputs)]
        return self._structure(outs)

    def _predict_with_callbacks(self, X, outs, batch, callbacks, verbose):
        """predict with Keras's predict hooks: begin, end, and one engine call per batch with
        the batch hooks (``logs={"outputs": ...}``) when a callback overrides them."""
        n = len(X[0])
        cb_list = callbacks_module.CallbackList(callbacks, model=self,
                                                params={"verbose": verbose, "epochs": 1, "steps": -(-n // batch)})
        hooks = cb_list.wants("on_predict_batch_begin") or cb_list.wants("on_predict_batch_end")
        plan_module.ensure_attached(self)
        cb_list.on_predict_begin({})
        step = batch if hooks else max(1, n)
        for i, r0 in enumerate(range(0, n, step)):
            sl = slice(r0, min(n, r0 + step))
            if hooks:
                cb_list.on_predict_batch_begin(i, {})
            self._net.predict(self._params, [a[sl] for a in X], [o[sl] for o in outs])
            if hooks:
                cb_list.on_predict_batch_end(i, {"outputs": self._structure([o[sl] for o in outs])})
        cb_list.on_predict_end({})
        return self._structure(outs)

    def predict_on_batch(self, x):
        return self.predict(x, verbose=0)

    # ------------------------------------------------------------------ quantization
    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Quantize the Dense layers' kernels to int8, as ``keras.Model.quantize`` does;
        predict and evaluate then run them with int8 kernels and int8 inputs quantized
        per row at run time (other layers stay float32).  ``mode`` must be ``"int8"``
        and ``config`` None; ``filters`` (a regex string, a list of them, or a callable
        taking the layer) selects layers as in Keras.  A quantized model cannot be
        trained (fit raises)."""
        quantization.quantize(self, mode, config, filters, **kwargs)

    def _set_int8_kernels(self, kernels):
        """Make Dense layers of the model int8 with the given kernels, ``[(layer, (int8 kernel,
        scale per unit))]`` (an imported graph's int8 layers), and run them so."""
        for layer, (q, scale) in kernels:
            quantization.set_int8(layer, q, scale)
        quantization.bind(self)

    # ------------------------------------------------------------------ saving
    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Write the whole model (architecture, weights, compile config and, by
        default, the optimizer/training state) atomically to ``filepath``, in the
        format its name asks for: ``.keras`` (a Keras 3 file), ``.h5``/``.hdf5`` (a
        legacy Keras HDF5 file), ``.fmlp`` or no extension (fastmlp's own format;
        ``dtype=`` stores compact weights there).  ``zipped=False`` writes Keras 3's
        unzipped model, a folder (its name may not end in ``.keras``), which
        ``load_model`` reads too.  ``include_optimizer=False`` leaves the optimizer's
        state out; ``save_format`` is Keras 2's, accepted with a warning where the
        name gives the same format, as Keras 3 does."""
        from ..saving import keras_file, writer
        include_optimizer = kwargs.pop("include_optimizer", True)
        dtype = kwargs.pop("dtype", None)
        save_format = kwargs.pop("save_format", None)
        if kwargs:
            raise ValueError(f"The following argument(s) are not supported: {list(kwargs)}")
        folder = zipped is not None and not zipped   # (Keras: any false value)
        kind = "folder" if folder else keras_file.format_of(filepath)
        if save_format:
            if not str(os.fspath(filepath)).endswith((".h5", ".hdf5", ".keras")):
                raise ValueError(f"The `save_format` argument is deprecated in Keras 3. Please remove this argument "
                                 f"and pass a file path with either `.keras` or `.h5` extension. Received: "
                                 f"save_format={save_format}")
            warnings.warn(f"The `save_format` argument is deprecated in Keras 3. We recommend removing this argument "
                          f"as it can be inferred from the file path. Received: save_format={save_format}",
                          stacklevel=2)
        if kind != "fmlp" and dtype is not None and str(dtype) != self._dtype:
            raise ValueError(f"`dtype` ({dtype!r}) applies to fastmlp's own format ('.fmlp'); "
                             f"{'a Keras model folder keeps' if folder else 'Keras files keep'} the model's dtype")
        if not writer.proceed_with_overwrite(filepath, overwrite):
            return None
        if folder:
            return keras_file.save_keras_dir(self, filepath, True, include_optimizer)
        if kind == "fmlp":
            return writer.save_model(self, filepath, include_optimizer=include_optimizer, dtype=dtype)
        if kind == "keras":
            return keras_file.save_keras(self, filepath, True, include_optimizer)
        return keras_file.save_h5(self, filepath, True, include_optimizer)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Export the model for inference, as ``keras.Model.export``: fastmlp writes
        ``format="onnx"`` (opset ``opset_version``, 18 by default; needs ``pip install
        fastmlp[onnx]``); ``dtype="int8"`` stores the Dense kernels as int8 (QDQ).
        ``format="c"`` writes standalone C99 into the folder ``filepath``
        (``name=``, ``dtype="float32"|"int8"``, ``overwrite=``; see ``fastmlp.saving.export_c``).
        Keras's other formats raise NotImplementedError."""
        if format == "c":
            from ..saving import c_export
            if input_signature is not None:
                raise ValueError("model.export(format='c') takes no input_signature: the C function reads one "
                                 "sample of the model's inputs")
            info = c_export.export_c(self, filepath, **kwargs)
            if verbose is not False:
                print(f"Saved artifact at '{info['header']}' and '{info['source']}'.")
            return info
        from ..saving import onnx_export
        return onnx_export.model_export(self, filepath, format=format, verbose=verbose,
                                        input_signature=input_signature, **kwargs)

    def save_weights(self, filepath, overwrite=True, max_shard_size=None):
        """Save the weights: Keras 3's layout for ``.weights.h5``, a legacy Keras weights
        file for another ``.h5``, fastmlp's format for ``.fmlp`` or no extension.  Keras's
        sharded weights (``max_shard_size``) are not written."""
        from ..saving import keras_file, writer
        if max_shard_size is not None:
            raise NotImplementedError(f"save_weights(max_shard_size={max_shard_size!r}) (Keras's sharded "
                                      f"weights files) is not supported by fastmlp: save one file")
        kind = keras_file.format_of(filepath)
        if kind == "keras":
            raise ValueError(f"save_weights writes weights only: name the file '*.weights.h5' (Keras 3's "
                             f"weights file) or use model.save({str(filepath)!r}). Received: {filepath!r}")
        if not writer.proceed_with_overwrite(filepath, overwrite):
            return None
        if kind == "weights_h5":
            return keras_file.save_weights_h5(self, filepath)
        if kind == "h5":
            return keras_file.save_legacy_weights(self, filepath)
        return writer.save_weights(self, filepath)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Set the weights from a file ``save_weights`` or ``save`` wrote (Keras's
        ``.keras``/``.h5``/``.weights.h5`` files included); every weight must match,
        except with ``skip_mismatch=True`` (Keras 3's files): a layer the file holds no
        fitting weights for keeps its own, with a warning.  Keras's ``by_name`` and
        ``objects_to_skip`` are not supported (an error names them)."""
        from ..saving import keras_file, reader
        unknown = [k for k in kwargs if k not in ("by_name", "objects_to_skip")]
        if unknown:
            raise ValueError(f"Invalid keyword arguments: {unknown}")
        unsupported = [k for k, v in kwargs.items() if v]   # (False, None, []: the default)
        if unsupported:
            raise NotImplementedError(f"load_weights({', '.join(f'{k}=...' for k in unsupported)}) is not supported "
                                      f"by fastmlp: it loads every weight of a matching model")
        if keras_file.is_keras_name(filepath):
            return keras_file.load_weights(self, filepath, skip_mismatch=bool(skip_mismatch))
        if skip_mismatch:
            raise NotImplementedError(f"load_weights(skip_mismatch=True) applies to Keras 3's '.weights.h5' and "
                                      f"'.keras' files in fastmlp, not to {str(filepath)!r}")
        return reader.load_weights(self, filepath)

    def to_bytes(self, include_optimizer=True, dtype=None):
        """The model file's bytes (what ``save`` writes)."""
        from ..saving import writer
        return writer.model_to_bytes(self, include_optimizer=include_optimizer, dtype=dtype)

    def __reduce__(self):
        if not self.built:   # nothing in C yet: plain attribute pickling
            return (copyreg.__newobj__, (type(self),), dict(self.__dict__))
        from ..saving import reader
        return (reader.model_from_bytes, (self.to_bytes(),))
