"""Progress output as Keras 3 draws it: ``utils.Progbar`` against Keras's own
Progbar (same updates, same clock), and ``fit(verbose=1)`` through a pipe (one
finished line per epoch) and through a pseudo-terminal (a redrawn bar)."""
import io
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

from fastmlp.utils import Progbar

os.environ.setdefault("KERAS_BACKEND", "torch")

_ANSI = re.compile(r"\x1b\[\d+m")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr(time, "time", c)
    return c


_UPDATES = [(1, [("loss", 2.0), ("acc", 0.5)]), (2, [("loss", 1.0), ("acc", 0.25)]),
            (5, [("loss", 0.5), ("acc", 0.0001)]), (7, [("loss", -3.0), ("acc", 0.75)])]


def _drive(bar, clock, updates, finalize_at=None):
    for i, (current, values) in enumerate(updates):
        clock.now += 0.4 * (i + 1)
        bar.update(current, values, finalize=(current == finalize_at) if finalize_at else None)


# ---------------------------------------------------------------------------- against Keras's Progbar
@pytest.mark.parametrize("kwargs", [{}, {"stateful_metrics": ["acc"]}, {"stateless_metrics": set()},
                                    {"width": 7, "unit_name": "sample"}])
def test_a_redrawn_bar_shows_what_keras_shows_for_the_same_updates_and_clock(clock, monkeypatch, kwargs):
    keras = pytest.importorskip("keras")
    from keras.src.utils import io_utils
    monkeypatch.setattr(io_utils, "is_interactive_logging_enabled", lambda: True)
    theirs = _Terminal()
    monkeypatch.setattr(sys, "stdout", theirs)
    kbar = keras.utils.Progbar(7, **kwargs)
    _drive(kbar, clock, _UPDATES)
    monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    clock.now = 1000.0
    ours = _Terminal()
    _drive(Progbar(7, stream=ours, **kwargs), clock, _UPDATES)
    assert ours.getvalue() == theirs.getvalue().replace("\b", "")
    assert ours.getvalue().count("\r") == 4 and ours.getvalue().endswith("\n")


def test_the_verbose_two_line_is_keras_s(clock, monkeypatch):
    keras = pytest.importorskip("keras")
    from keras.src.utils import io_utils
    monkeypatch.setattr(io_utils, "is_interactive_logging_enabled", lambda: True)
    theirs = io.StringIO()
    monkeypatch.setattr(sys, "stdout", theirs)
    _drive(keras.utils.Progbar(7, verbose=2), clock, _UPDATES)
    monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    clock.now = 1000.0
    ours = io.StringIO()
    _drive(Progbar(7, verbose=2, stream=ours), clock, _UPDATES)
    assert ours.getvalue() == theirs.getvalue()
    assert ours.getvalue().count("\n") == 1


# ---------------------------------------------------------------------------- without Keras
def test_averages_are_weighted_by_steps_and_the_finished_line_shows_the_last_values(clock):
    out = _Terminal()
    bar = Progbar(10, stream=out, stateful_metrics=["acc"])
    clock.now += 1
    bar.update(2, [("loss", 1.0), ("acc", 0.5)])
    clock.now += 1
    bar.update(6, [("loss", 4.0), ("acc", 0.25)])
    frame = _ANSI.sub("", out.getvalue().split("\r")[-1])
    assert "loss: 3.0000" in frame and "acc: 0.2500" in frame       # (2*1 + 4*4) / 6
    assert re.match(r"^ 6/10 \u2501{12}\u2501{8} \d+s \d+ms/step", frame)
    clock.now += 1
    bar.add(4, [("loss", 9.0)])                                     # reaches the target: finished
    last = _ANSI.sub("", out.getvalue().split("\r")[-1])
    assert last.endswith("\n") and "loss: 9.0000" in last and "10/10" in last


def test_a_non_terminal_stream_gets_only_the_finished_line_without_colour_codes(clock):
    out = io.StringIO()
    bar = Progbar(4, stream=out)
    for step in range(1, 4):
        clock.now += 1
        bar.update(step, [("loss", 0.5)])
    assert out.getvalue() == ""
    clock.now += 1
    bar.update(4, [("loss", 0.25)])
    assert out.getvalue() == "4/4 " + "\u2501" * 20 + " 4s 1s/step - loss: 0.2500\n"


def test_redraws_are_at_least_interval_seconds_apart(clock):
    out = _Terminal()
    bar = Progbar(1000, stream=out, interval=0.5)
    for step in range(1, 1000):
        clock.now += 0.01
        bar.update(step)
    assert out.getvalue().count("\r") == 20   # 10 s of updates, one redraw per 0.5 s


def test_an_unknown_target_counts_up_until_finalized(clock):
    out = _Terminal()
    bar = Progbar(None, stream=out)
    clock.now += 1
    bar.update(3)
    assert "      3/Unknown" in out.getvalue()
    bar.update(5, finalize=True)
    assert out.getvalue().endswith("\n")


def test_verbose_zero_writes_nothing(clock):
    out = _Terminal()
    bar = Progbar(3, verbose=0, stream=out)
    bar.update(3, [("loss", 1.0)])
    assert out.getvalue() == ""


@pytest.mark.parametrize("kwargs, match", [
    ({"target": -1}, "target"), ({"target": 3, "width": 0}, "width"), ({"target": 3, "verbose": 3}, "verbose"),
    ({"target": 3, "interval": -1}, "interval"),
    ({"target": 3, "stateful_metrics": ["a"], "stateless_metrics": ["b"]}, "stateful_metrics"),
])
def test_bad_arguments_raise_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Progbar(**kwargs)


# ---------------------------------------------------------------------------- fit through a pipe and a pty
_FIT = textwrap.dedent("""
    import numpy as np, fastmlp
    from fastmlp import layers
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((2000, 8)).astype(np.float32), rng.integers(0, 3, 2000)
    model = fastmlp.Sequential([fastmlp.Input(shape=(8,)), layers.Dense(64, activation="relu"),
                                layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Slow(fastmlp.callbacks.Callback):   # a batch hook: 94 batches of 3 ms, so the bar is redrawn
        def on_train_batch_end(self, batch, logs=None):
            import time; time.sleep(0.003)

    model.fit(X, y, epochs=2, batch_size=16, verbose=1, validation_split=0.25, callbacks=[Slow()])
""")
_FINAL = (r"94/94 \u2501{20} \d+s \d+(ms|us)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4} - "
          r"val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}")


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), PYTHONIOENCODING="utf-8")


def test_fit_into_a_pipe_writes_one_line_per_epoch():
    proc = subprocess.run([sys.executable, "-c", _FIT], capture_output=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert len(lines) == 4 and lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert re.fullmatch(_FINAL, lines[1]) and re.fullmatch(_FINAL, lines[3]), out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_fit_on_a_terminal_redraws_the_bar_in_place():
    import pty
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", _FIT], stdout=slave, stderr=subprocess.PIPE, env=_env())
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:   # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    out = b"".join(chunks).decode().replace("\r\n", "\n")   # the tty turns \n into \r\n
    assert out.startswith("Epoch 1/2\n")
    frames = out.split("\r")
    assert len(frames) >= 4                                  # redrawn, not just one line per epoch
    plain = [_ANSI.sub("", f) for f in frames]
    assert "\x1b[1m" in out and "\x1b[32m" in out           # Keras's colours on a terminal
    assert any(re.match(r"^\s*\d+/94 \u2501{20} \S+ \d+(ms|us)/step - loss: ", f) for f in plain[1:-1])
    finals = [f.rstrip("\n").split("\n")[0].rstrip() for f in plain if f.startswith("94/94") and "val_loss" in f]
    assert len(finals) == 2 and all(re.fullmatch(_FINAL, f) for f in finals), plain
