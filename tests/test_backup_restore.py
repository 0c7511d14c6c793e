"""BackupAndRestore: a fit killed with SIGKILL and started again ends with the weights
of an uninterrupted run, bit for bit (the shuffling, dropout and optimizer state
resume at the batch after the last backup)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastmlp
from fastmlp import callbacks as C, layers

_CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import fastmlp
    from fastmlp import layers

    mode, backup, ready, out, save_freq = sys.argv[1:6]
    save_freq = save_freq if save_freq == "epoch" else int(save_freq)
    fastmlp.set_num_threads(1)
    # the restarted run starts from other weights and another seed: the backup must bring back both
    fastmlp.utils.set_random_seed(99 if mode == "resume" else 7)
    model = fastmlp.Sequential([fastmlp.Input(shape=(6,)), layers.Dense(16, activation="relu"),
                                layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=fastmlp.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    X = rng.standard_normal((320, 6)).astype(np.float32)
    y = rng.integers(0, 3, 320)

    class StallAfter(fastmlp.callbacks.Callback):   # tells the parent where it is, then waits to be killed
        def __init__(self, n):
            super().__init__()
            self.n, self.seen = n, 0
        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen == self.n:
                with open(ready, "w") as f:
                    f.write(str(self.seen))
                time.sleep(120)

    cbs = [] if mode == "plain" else [fastmlp.callbacks.BackupAndRestore(backup, save_freq=save_freq)]
    if mode == "killed":
        cbs.append(StallAfter(int(os.environ["STALL_AFTER"])))
    hist = model.fit(X, y, epochs=3, batch_size=16, callbacks=cbs, verbose=0)
    np.savez(out, *model.get_weights(), iterations=model.optimizer.iterations,
             epochs=np.array(hist.epoch))
""")


def _run(tmp_path, mode, save_freq, stall_after=None):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    ready, out = tmp_path / f"ready_{mode}", tmp_path / f"{mode}.npz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    if stall_after is not None:
        env["STALL_AFTER"] = str(stall_after)
    args = [sys.executable, str(script), mode, str(tmp_path / "backup"), str(ready), str(out), str(save_freq)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if mode != "killed":
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr.decode()
        return np.load(out)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "the child never reached the batch"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return None


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("save_freq, stall_after, resumed_epochs", [
    (7, 30, [1, 2]),          # 20 batches an epoch: killed at epoch 1 batch 10, backed up at batch 8
    ("epoch", 50, [2]),       # killed in epoch 2, backed up at the end of epoch 1
])
def test_a_fit_killed_mid_epoch_resumes_from_its_backup_and_ends_with_the_uninterrupted_weights(
        tmp_path, save_freq, stall_after, resumed_epochs):
    plain = _run(tmp_path, "plain", save_freq)
    _run(tmp_path, "killed", save_freq, stall_after)
    backup = tmp_path / "backup" / "latest.fmlp"
    assert backup.exists()
    saved = fastmlp.load_model(backup)
    expected_iterations = (stall_after // 7 * 7) if save_freq == 7 else 40
    assert saved.optimizer.iterations == expected_iterations
    resumed = _run(tmp_path, "resume", save_freq)
    assert list(resumed["epochs"]) == resumed_epochs
    assert int(resumed["iterations"]) == int(plain["iterations"]) == 60
    names = [k for k in plain.files if k.startswith("arr_")]
    assert names
    for k in names:
        np.testing.assert_array_equal(resumed[k], plain[k])
    assert not (tmp_path / "backup").exists(), "the backup is deleted after training completes"


# ---------------------------------------------------------------------------- in one process
def _model(seed=3):
    fastmlp.utils.set_random_seed(seed)
    model = fastmlp.Sequential([fastmlp.Input(shape=(6,)), layers.Dense(8, activation="relu"),
                                layers.Dense(3, activation="softmax")])
    model.compile(optimizer=fastmlp.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
    return model


def _data(n=96):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


class _InterruptAt(C.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("Interrupting!")


def test_the_keras_docstring_example_runs_only_the_remaining_epochs(tmp_path):
    X, y = _data()
    reference = _model()
    reference.fit(X, y, epochs=10, batch_size=16, verbose=0)
    cb = C.BackupAndRestore(tmp_path / "backup")
    model = _model()
    with pytest.raises(RuntimeError, match="Interrupting"):
        model.fit(X, y, epochs=10, batch_size=16, callbacks=[cb, _InterruptAt(4)], verbose=0)
    assert (tmp_path / "backup" / "latest.fmlp").exists()
    other = _model(seed=5)   # a fresh model in a new "process": weights come from the backup
    history = other.fit(X, y, epochs=10, batch_size=16, callbacks=[cb], verbose=0)
    assert len(history.history["loss"]) == 6 and history.epoch == [4, 5, 6, 7, 8, 9]
    for a, b in zip(other.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "backup").exists()


def test_delete_checkpoint_false_keeps_the_backup_of_the_finished_run(tmp_path):
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=2, batch_size=16, verbose=0,
              callbacks=[C.BackupAndRestore(tmp_path, delete_checkpoint=False)])
    saved = fastmlp.load_model(tmp_path / "latest.fmlp")
    assert saved.optimizer.iterations == 12 and saved._epoch == 2
    # a fit started again with the same backup has nothing left to do
    again = _model(seed=9)
    hist = again.fit(X, y, epochs=2, batch_size=16, verbose=0,
                     callbacks=[C.BackupAndRestore(tmp_path, delete_checkpoint=False)])
    assert hist.epoch == []
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_double_checkpoint_falls_back_on_the_previous_backup_when_the_latest_is_damaged(tmp_path):
    X, y = _data()
    model = _model()
    with pytest.raises(RuntimeError):
        model.fit(X, y, epochs=5, batch_size=16, verbose=0,
                  callbacks=[C.BackupAndRestore(tmp_path, double_checkpoint=True), _InterruptAt(3)])
    latest, prev = tmp_path / "latest.fmlp", tmp_path / "latest.fmlp.bkp"
    assert fastmlp.load_model(prev)._epoch == 2 and fastmlp.load_model(latest)._epoch == 3
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    latest.write_bytes(bytes(data))
    other = _model(seed=4)
    hist = other.fit(X, y, epochs=5, batch_size=16, verbose=0,
                     callbacks=[C.BackupAndRestore(tmp_path, double_checkpoint=True)])
    assert hist.epoch == [2, 3, 4]


def test_a_damaged_backup_without_a_previous_one_raises_the_format_error(tmp_path):
    (tmp_path / "latest.fmlp").write_bytes(b"not a model file at all")
    X, y = _data()
    with pytest.raises(fastmlp.FormatError):
        _model().fit(X, y, epochs=1, verbose=0, callbacks=[C.BackupAndRestore(tmp_path)])


def test_a_backup_of_another_architecture_is_refused(tmp_path):
    X, y = _data()
    model = _model()
    with pytest.raises(RuntimeError):
        model.fit(X, y, epochs=3, verbose=0, callbacks=[C.BackupAndRestore(tmp_path), _InterruptAt(1)])
    other = fastmlp.Sequential([fastmlp.Input(shape=(6,)), layers.Dense(5), layers.Dense(3, activation="softmax")])
    other.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="another model"):
        other.fit(X, y, epochs=3, verbose=0, callbacks=[C.BackupAndRestore(tmp_path)])


@pytest.mark.parametrize("kwargs, match", [
    ({"backup_dir": ""}, "Empty `backup_dir`"),
    ({"backup_dir": "b", "save_freq": 0}, "save_freq"),
    ({"backup_dir": "b", "save_freq": "batch"}, "save_freq"),
    ({"backup_dir": "b", "save_freq": True}, "save_freq"),
])
def test_bad_arguments_raise_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        C.BackupAndRestore(**kwargs)


def test_an_epoch_backup_resumes_as_keras_s_does(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    X, y = _data(n=40)
    y1 = np.eye(3, dtype=np.float32)[y]

    def build(lib):
        model = lib.Sequential([lib.Input(shape=(6,)), lib.layers.Dense(8, activation="tanh"),
                                lib.layers.Dense(3, activation="softmax")])
        model.compile(optimizer=lib.optimizers.SGD(0.1, momentum=0.9), loss="categorical_crossentropy")
        return model

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:
                raise RuntimeError("Interrupting!")

    kmodel = build(keras)
    start = kmodel.get_weights()
    kcb = keras.callbacks.BackupAndRestore(str(tmp_path / "keras"))
    with pytest.raises(RuntimeError):
        kmodel.fit(X, y1, epochs=6, batch_size=8, shuffle=False, verbose=0, callbacks=[kcb, Interrupt()])
    kmodel2 = build(keras)   # a fresh model: Keras restores the weights and the optimizer state
    khist = kmodel2.fit(X, y1, epochs=6, batch_size=8, shuffle=False, verbose=0, callbacks=[kcb])

    model = build(fastmlp)
    model.set_weights(start)
    cb = C.BackupAndRestore(tmp_path / "fastmlp")
    with pytest.raises(RuntimeError):
        model.fit(X, y1, epochs=6, batch_size=8, shuffle=False, verbose=0, callbacks=[cb, _InterruptAt(3)])
    model2 = build(fastmlp)
    hist = model2.fit(X, y1, epochs=6, batch_size=8, shuffle=False, verbose=0, callbacks=[cb])
    assert hist.epoch == khist.epoch == [3, 4, 5]
    np.testing.assert_allclose(hist.history["loss"], khist.history["loss"], rtol=2e-4, atol=2e-5)
    for a, b in zip(model2.get_weights(), kmodel2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    assert not (tmp_path / "keras").exists() and not (tmp_path / "fastmlp").exists()
