"""``BackupAndRestore``: survive a killed ``fit`` (Keras 3's callback, resuming exactly).

The backup is one fastmlp model file, written atomically by ``Model.save``: the
weights, the optimizer's slots and step count, the model's seed (which fixes the
shuffling and dropout of every step) and the position reached, an epoch and the
batches of it already taken.  A restarted ``fit`` with the same callback loads it
in ``on_train_begin`` and continues with the next batch, so the run ends with the
weights an uninterrupted run ends with (Keras itself restarts the interrupted
epoch from its first batch).  What a restart does not restore, as in Keras: the
History of the epochs before, the state of other callbacks, and the running
metrics of an epoch resumed part way (its logs cover the batches after the
restart).
"""
import os
import shutil

from ._callback import Callback

__all__ = ["BackupAndRestore"]

_LATEST = "latest.fmlp"


class BackupAndRestore(Callback):
    """Back up the training state to ``backup_dir`` and restore it when ``fit`` restarts.

    Parameters
    ----------
    backup_dir : str or path
        The folder of the backup (created when needed).  Use one folder per
        training run, and for nothing else.
    save_freq : "epoch" or int
        Back up at each epoch end, or every ``save_freq`` batches (``fit`` then
        returns to Python after every batch).
    double_checkpoint : bool
        Keep the previous backup too (``latest.fmlp.bkp``), used when the latest
        one cannot be read.
    delete_checkpoint : bool
        Delete the backup when training ends normally.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if backup_dir is None or (isinstance(backup_dir, str) and not backup_dir):
            raise ValueError("Empty `backup_dir` argument passed")
        if not isinstance(backup_dir, (str, os.PathLike)):
            raise TypeError(f"`backup_dir` must be a path. Received: backup_dir={backup_dir!r}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq <= 0):
            raise ValueError(f"Invalid value for argument `save_freq`. Received: save_freq={save_freq!r}. "
                             f"Expected either 'epoch' or a positive integer value.")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._path = os.path.join(self.backup_dir, _LATEST)
        self._prev_path = self._path + ".bkp"
        self._batches_since_save = 0
        self._epoch = 0

    def _overrides(self, hook):
        # a batch hook (fit returns to Python every batch) only for a batch frequency
        if hook == "on_train_batch_end":
            return self.save_freq != "epoch"
        return super()._overrides(hook)

    # ------------------------------------------------------------------ restore
    def on_train_begin(self, logs=None):
        self._batches_since_save = 0
        from .saving.format import FormatError
        candidates = [p for p in (self._path, self._prev_path) if os.path.exists(p)]
        for i, path in enumerate(candidates):
            try:
                self._restore(path)
                return
            except (FormatError, OSError):
                if i + 1 == len(candidates):   # no older backup to fall back on
                    raise

    def _restore(self, path):
        from .saving.reader import load_model
        model = self.model
        saved = load_model(path)
        mine, theirs = [w.shape for w in model.weights], [w.shape for w in saved.weights]
        if mine != theirs:
            raise ValueError(f"The backup {path} holds weights of shapes {theirs}, but model {model.name!r} has "
                             f"{mine}: it is the backup of another model")
        opt, s_opt = model.optimizer, saved.optimizer
        if type(opt) is not type(s_opt):
            raise ValueError(f"The backup {path} was made with optimizer {type(s_opt).__name__}, but the model "
                             f"is compiled with {type(opt).__name__}")
        model._ensure_optimizer()
        s_opt._build_pending()
        model.set_weights(saved.get_weights())
        if s_opt._slots is not None:
            opt._slots[...] = s_opt._slots
        opt.iterations = s_opt.iterations
        opt._u_product = s_opt._u_product
        from .optimizers.schedules import LearningRateSchedule
        if not isinstance(opt._learning_rate, LearningRateSchedule) and \
                not isinstance(s_opt._learning_rate, LearningRateSchedule):
            opt.learning_rate = s_opt.learning_rate   # e.g. lowered by ReduceLROnPlateau before the kill
        model._seed = saved._seed
        model._epoch, model._epoch_step = saved._epoch, saved._epoch_step
        model._initial_epoch = saved._epoch   # fit starts there (and at the batch after _epoch_step)

    # ------------------------------------------------------------------ backup
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            step = batch + 1
            if step >= (self.params.get("steps") or step + 1):   # the epoch's last batch: the next epoch
                self._save(self._epoch + 1, 0)
            else:
                self._save(self._epoch, step)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch + 1, 0)

    def _save(self, epoch, step):
        model = self.model
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._path):
            tmp = self._prev_path + ".tmp"
            shutil.copyfile(self._path, tmp)
            os.replace(tmp, self._prev_path)
        kept = model._epoch, model._epoch_step
        model._epoch, model._epoch_step = epoch, step
        try:
            model.save(self._path, overwrite=True)
        finally:
            model._epoch, model._epoch_step = kept

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        for path in (self._path, self._prev_path):
            if os.path.exists(path):
                os.remove(path)
        try:   # the folder too, as Keras does, when nothing else is left in it
            os.rmdir(self.backup_dir)
        except OSError:
            pass
