"""Callbacks with the Keras 3 hooks.

``fit`` runs whole chunks of batches in C; it returns to Python for batch
hooks only when some callback overrides one of them, so a plain ``History``
or an epoch-level callback costs nothing per batch.
"""
import csv
import os
import sys
import warnings

import numpy as np

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ReduceLROnPlateau",
           "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "LambdaCallback", "ModelCheckpoint",
           "BackupAndRestore", "TensorBoard"]

from ._callback import _BATCH_HOOKS, Callback  # noqa: F401  (the base class lives apart: ModelCheckpoint needs it)


class History(Callback):
    """Records the logs of every epoch in ``history`` (a dict of lists) and ``epoch``."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


    def plot(self, keys=None, path=None):
        """Plot the recorded curves (needs matplotlib, the ``plot`` extra).  Saves
        to ``path`` when given or when there is no display; returns the figure."""
        try:
            import matplotlib
            if path is not None or not os.environ.get("DISPLAY"):
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("History.plot needs matplotlib: pip install 'fastmlp[plot]'") from e
        keys = list(keys or self.history)
        fig, ax = plt.subplots()
        for k in keys:
            ax.plot(self.epoch[:len(self.history[k])], self.history[k], label=k)
        ax.set_xlabel("epoch")
        ax.legend()
        if path is not None or not os.environ.get("DISPLAY"):
            fig.savefig(path or "history.png")
        return fig


def _monitor_op(monitor, mode, min_delta, who):
    """(is_better(current, best), initial best) following Keras's 'auto' rule."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who} mode {mode!r} is unknown; expected 'auto', 'min' or 'max'")
    if mode == "auto":
        name = monitor[4:] if monitor.startswith("val_") else monitor
        maximize = any(k in name for k in ("acc", "auc", "precision", "recall", "f1"))
        mode = "max" if maximize else "min"
    delta = abs(min_delta)
    if mode == "max":
        return (lambda current, best: current - delta > best), -np.inf
    return (lambda current, best: current + delta < best), np.inf


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (Keras 3 semantics,
    including ``baseline``, ``start_from_epoch`` and ``restore_best_weights``, which
    restores the best epoch's weights when training ends, stopped early or not)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), int(patience)
        self.verbose, self.mode, self.baseline = verbose, mode, baseline
        self.restore_best_weights, self.start_from_epoch = bool(restore_best_weights), int(start_from_epoch)
        self._better, self._initial = _monitor_op(monitor, mode, min_delta, "EarlyStopping")

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value, reference):
        return reference is None or self._better(value, reference)

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs or {})}", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), int(patience), verbose
        self.min_delta, self.cooldown, self.min_lr = min_delta, int(cooldown), float(min_lr)
        self._better, self._initial = _monitor_op(monitor, mode, min_delta, "ReduceLROnPlateau")
        self.cooldown_counter = 0
        self.wait = 0
        self.best = self._initial

    def on_train_begin(self, logs=None):
        self.cooldown_counter = 0
        self.wait = 0
        self.best = self._initial

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["learning_rate"] = float(opt.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is "
                          f"not available. Available metrics are: {','.join(logs)}.", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.learning_rate)
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    opt.learning_rate = new
                    if self.verbose > 0:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start from ``schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = float(opt.learning_rate)
        try:
            lr = self.schedule(epoch, lr)
        except TypeError:   # a one-argument schedule
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, int, np.floating, np.integer)):
            raise ValueError(f'The output of the "schedule" function should be a float. Got: {lr}')
        opt.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """Stream epoch results to a CSV file: ``epoch`` then the log keys, sorted."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys = None
        self._file = None

    def on_train_begin(self, logs=None):
        exists = os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._header_needed = not (self.append and exists)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if not any(k.startswith("val_") for k in self.keys):   # as Keras: NA columns
                self.keys += [f"val_{k}" for k in self.keys]
        writer = csv.writer(self._file, delimiter=self.sep)
        if self._header_needed:
            writer.writerow(["epoch"] + self.keys)
            self._header_needed = False
        writer.writerow([epoch] + [logs.get(k, "NA") for k in self.keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (a batch hook:
    fit returns to Python after every batch while this callback is present).
    With ``raise_error=True`` a ``RuntimeError`` is raised instead."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Stopping training.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback built from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, **hooks):
        super().__init__()
        valid = {name for name in dir(Callback) if name.startswith("on_")}
        unknown = set(hooks) - valid
        if unknown:
            raise ValueError(f"Unknown hook(s) for LambdaCallback: {sorted(unknown)}")
        self._given = {k for k, v in hooks.items() if v is not None}
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)

    def _overrides(self, hook):
        return hook in self._given


class ProgbarLogger(Callback):
    """Progress output of ``fit`` (Keras 3's): ``Epoch i/N`` (with more than one epoch),
    then a ``utils.Progbar`` per epoch: with ``verbose=1`` a bar redrawn on a terminal
    or in a notebook and only the finished line in a pipe or log file, with
    ``verbose=2`` the finished line.  ``verbose`` (default: ``fit``'s) and ``stream``
    (default: stdout) are fastmlp's additions."""

    def __init__(self, verbose=None, stream=None, interval=0.05):
        super().__init__()
        self.verbose = verbose
        self._given_verbose = verbose
        self.stream = stream
        self.interval = interval
        self.epochs = 1
        self.steps = None
        self.progbar = None
        self.last_step = None

    def set_params(self, params):
        super().set_params(params)
        verbose = self._given_verbose if self._given_verbose is not None else params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.steps = params.get("steps")

    def _out(self):
        return self.stream or sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        self.last_step = None
        self.progbar = None
        if self.verbose:
            if self.epochs > 1:
                self._out().write(f"Epoch {epoch + 1}/{self.epochs}\n")
                self._out().flush()
            self.progbar = self._new_bar()

    def _new_bar(self):
        from ._progbar import Progbar
        return Progbar(self.steps, verbose=self.verbose, interval=self.interval, stateless_metrics=set(),
                       unit_name="step", stream=self._out())

    def progress(self, step, logs, samples=None):
        """Called by fit at chunk ends (after ``step`` batches of the epoch) with the running logs."""
        self.last_step = step
        if self.verbose == 1 and self.progbar is not None:
            self.progbar.update(step, list((logs or {}).items()), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.progbar is None:
            return
        if self.steps is None:
            self.progbar.target = self.last_step or 0
        self.progbar.update(self.steps or self.last_step or 0, list((logs or {}).items()), finalize=True)


class CallbackList(Callback):
    """Dispatches hooks to a list of callbacks; knows whether any wants batch hooks.
    A Callback itself, as in Keras: every ``on_*`` hook calls that hook of each callback."""

    def __init__(self, callbacks=None, model=None, params=None):
        super().__init__()
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Expected a fastmlp.callbacks.Callback; got {type(cb).__name__}")
            if model is not None:
                cb.set_model(model)
            if params is not None:
                cb.set_params(params)

    def set_model(self, model):
        super().set_model(model)
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)

    def wants(self, hook):
        return any(cb._overrides(hook) for cb in self.callbacks)

    @property
    def wants_train_batch_hooks(self):
        return any(self.wants(h) for h in ("on_train_batch_begin", "on_train_batch_end",
                                           "on_batch_begin", "on_batch_end"))

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)
        return call


def _dispatcher(hook):
    def call(self, *args, **kwargs):
        for cb in self.callbacks:
            getattr(cb, hook)(*args, **kwargs)
    call.__name__ = hook
    return call


for _hook in [n for n in vars(Callback) if n.startswith("on_")]:   # Callback's no-ops would shadow __getattr__
    setattr(CallbackList, _hook, _dispatcher(_hook))
del _hook


from ._model_checkpoint import ModelCheckpoint  # noqa: E402
from ._backup_and_restore import BackupAndRestore  # noqa: E402
from ._tensorboard import TensorBoard  # noqa: E402
