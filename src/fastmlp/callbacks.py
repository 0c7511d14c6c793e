"""Callbacks with the Keras 3 hooks.

``fit`` runs whole chunks of batches in C; it returns to Python for batch
hooks only when some callback overrides one of them, so a plain ``History``
or an epoch-level callback costs nothing per batch.
"""
import sys
import time

import numpy as np

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger"]

_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end",
                "on_batch_begin", "on_batch_end")


class Callback:
    """Base class: every hook is a no-op taking ``logs=None``."""

    def __init__(self):
        self.params = {}
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    def on_batch_begin(self, batch, logs=None):
        """A backwards-compatibility alias for `on_train_batch_begin`."""

    def on_batch_end(self, batch, logs=None):
        """A backwards-compatibility alias for `on_train_batch_end`."""

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def _overrides(self, hook):
        return getattr(type(self), hook) is not getattr(Callback, hook)


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


class ProgbarLogger(Callback):
    """Keras-style progress: ``verbose=1`` a bar per epoch (redrawn a few times a
    second at most, from chunk ends), ``verbose=2`` one line per epoch."""

    def __init__(self, verbose=1, stream=None, interval=0.25):
        super().__init__()
        self.verbose = verbose
        self.stream = stream
        self.interval = interval

    def _out(self):
        return self.stream or sys.stdout

    def on_train_begin(self, logs=None):
        self.epochs = self.params.get("epochs", 1)
        self.steps = self.params.get("steps")

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._last = 0.0
        if self.verbose == 1:
            self._out().write(f"Epoch {epoch + 1}/{self.epochs}\n")

    def _format_logs(self, logs):
        return " - ".join(f"{k}: {v:.4f}" for k, v in (logs or {}).items())

    def progress(self, step, logs, samples=None, final=False):
        """Called by fit at chunk ends with the running logs."""
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if not final and now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self._start
        steps = self.steps or step
        width = 20
        done = int(width * step / max(steps, 1))
        bar = "=" * max(done - 1, 0) + (">" if done < width else "=") + "." * (width - done)
        if final:
            timing = f"{elapsed:.0f}s {1e3 * elapsed / max(step, 1):.0f}ms/step"
        else:
            eta = elapsed / max(step, 1) * (steps - step)
            timing = f"ETA: {eta:.0f}s"
        rate = f" - {samples / max(elapsed, 1e-9):,.0f} samples/s" if samples else ""
        line = f"\r{step}/{steps} [{bar}] - {timing}{rate} - {self._format_logs(logs)}"
        self._out().write(line + ("\n" if final else ""))
        self._out().flush()

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose == 2:
            elapsed = time.perf_counter() - self._start
            self._out().write(f"Epoch {epoch + 1}/{self.epochs}\n{self.steps}/{self.steps} - "
                              f"{elapsed:.0f}s - {self._format_logs(logs)}\n")
            self._out().flush()


class CallbackList:
    """Dispatches hooks to a list of callbacks; knows whether any wants batch hooks."""

    def __init__(self, callbacks=None, model=None, params=None):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Expected a fastmlp.callbacks.Callback; got {type(cb).__name__}")
            if model is not None:
                cb.set_model(model)
            if params is not None:
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
