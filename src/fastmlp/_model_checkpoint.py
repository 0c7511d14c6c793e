"""``ModelCheckpoint``: save the model (or its weights) during ``fit``, Keras 3 style.

Files are written atomically with ``Model.save`` and, unless
``save_weights_only``, carry the optimizer/training state, so
``fastmlp.load_model(path).fit(x, y, epochs=E, initial_epoch=k)`` continues a
run saved after epoch ``k`` bit for bit.
"""
import os
import sys
import warnings

import numpy as np

from ._callback import Callback

__all__ = ["ModelCheckpoint"]

_MAX_WORDS = ("acc", "auc", "precision", "recall", "fmeasure", "f1")


class ModelCheckpoint(Callback):
    """Save the model after every epoch (or every ``save_freq`` batches).

    ``filepath`` may contain ``str.format`` fields: ``{epoch}`` (1-based, as
    in Keras) and any key of the epoch logs, e.g. ``{val_loss:.4f}``.  With
    ``save_best_only`` a file is written only when ``monitor`` improves
    (``mode`` 'min', 'max' or 'auto': 'max' for accuracy-like names).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        import os
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        if save_freq != "epoch" and not (isinstance(save_freq, int) and not isinstance(save_freq, bool)
                                         and save_freq > 0):
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}. Expected 'epoch' or a positive "
                             f"integer (a number of batches)")
        self.save_freq = save_freq
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"ModelCheckpoint mode {mode!r} is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        if mode == "auto":
            mode = "max" if any(w in str(monitor) for w in _MAX_WORDS) else "min"
        self.mode = mode
        self._better = np.greater if mode == "max" else np.less
        if initial_value_threshold is not None:
            self.best = float(initial_value_threshold)
        else:
            self.best = -np.inf if mode == "max" else np.inf
        self._batches = 0
        self._epoch = 0

    def _overrides(self, hook):
        # Batch hooks (which make fit return to Python every batch) only for a batch frequency.
        if hook in ("on_train_batch_end",):
            return self.save_freq != "epoch"
        return super()._overrides(hook)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches % self.save_freq == 0:
            self._save(self._epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs)

    def _path(self, epoch, logs):
        try:
            return self.filepath.format(epoch=epoch + 1, **(logs or {}))
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {e!r} is not in the logs {sorted(logs or {})}") from None

    def _save(self, epoch, logs):
        logs = dict(logs or {})
        path = self._path(epoch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available, skipping.",
                              stacklevel=2)
                return
            current = float(current)
            if not self._better(current, self.best):
                if self.verbose > 0:
                    sys.stdout.write(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                                     f"{self.best:.5f}\n")
                return
            if self.verbose > 0:
                sys.stdout.write(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                                 f"{current:.5f}, saving model to {path}\n")
            self.best = current
        elif self.verbose > 0:
            sys.stdout.write(f"\nEpoch {epoch + 1}: saving model to {path}\n")
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)   # Keras creates the checkpoint's folder too
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)
