"""The TensorBoard callback's event files, read back with TensorBoard's own reader."""
import json
import zlib

import numpy as np
import pytest

import fastmlp
from fastmlp import callbacks as C, layers

try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util
except ImportError:   # the optional extra: pip install fastmlp[tensorboard]
    EventAccumulator = tensor_util = None

needs_tensorboard = pytest.mark.skipif(EventAccumulator is None, reason="needs the tensorboard package")


def _read(folder):
    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def _series(acc, tag):
    return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def _model():
    model = fastmlp.Sequential([fastmlp.Input(shape=(5,)), layers.Dense(8, activation="relu", name="hidden"),
                                layers.Dense(3, activation="softmax", name="out")])
    model.compile(optimizer=fastmlp.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 5)).astype(np.float32), rng.integers(0, 3, n)


@needs_tensorboard
def test_epoch_scalars_go_to_train_and_validation_folders_with_the_history_values(tmp_path):
    X, y = _data()
    model = _model()
    hist = model.fit(X, y, epochs=3, batch_size=16, verbose=0, validation_data=(X[:32], y[:32]),
                     callbacks=[C.TensorBoard(tmp_path)])
    train, val = _read(tmp_path / "train"), _read(tmp_path / "validation")
    for key in ("loss", "accuracy"):
        got = _series(train, f"epoch_{key}")
        assert [s for s, _ in got] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in got], hist.history[key], rtol=1e-6)
        got = _series(val, f"epoch_{key}")
        np.testing.assert_allclose([v for _, v in got], hist.history[f"val_{key}"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in _series(train, "epoch_learning_rate")], [0.01] * 3, rtol=1e-6)
    # Keras: the evaluation after each epoch also goes in at the optimizer's step count
    got = _series(val, "evaluation_loss_vs_iterations")
    assert [s for s, _ in got] == [4, 8, 12]
    np.testing.assert_allclose([v for _, v in got], hist.history["val_loss"], rtol=1e-6)
    assert not any(t.startswith("batch_") for t in train.Tags()["tensors"])
    assert all(name.endswith(".v2") and name.startswith("events.out.tfevents.")
               for name in (p.name for p in (tmp_path / "train").iterdir()))


@needs_tensorboard
def test_batch_scalars_every_update_freq_batches_with_a_global_step(tmp_path):
    X, y = _data()
    seen = []

    class Spy(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])

    _model().fit(X, y, epochs=2, batch_size=16, verbose=0,
                 callbacks=[Spy(), C.TensorBoard(tmp_path, update_freq=3, write_steps_per_second=True)])
    train = _read(tmp_path / "train")
    got = _series(train, "batch_loss")
    assert [s for s, _ in got] == [3, 6]          # 8 batches in all, global steps 1..8
    np.testing.assert_allclose([v for _, v in got], [seen[2], seen[5]], rtol=1e-6)
    assert [s for s, _ in _series(train, "batch_steps_per_second")] == [3, 6]
    assert all(v > 0 for _, v in _series(train, "epoch_steps_per_second"))


@needs_tensorboard
def test_update_freq_batch_logs_every_batch(tmp_path):
    X, y = _data()
    _model().fit(X, y, epochs=1, batch_size=16, verbose=0, callbacks=[C.TensorBoard(tmp_path, update_freq="batch")])
    assert [s for s, _ in _series(_read(tmp_path / "train"), "batch_accuracy")] == [1, 2, 3, 4]


@needs_tensorboard
def test_histograms_of_every_weight_every_histogram_freq_epochs(tmp_path):
    X, y = _data()
    model = _model()
    snapshots = []

    class Snap(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(model.get_weights())

    model.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[Snap(), C.TensorBoard(tmp_path, histogram_freq=2)])
    train = _read(tmp_path / "train")
    tags = ["hidden/kernel/histogram", "hidden/bias/histogram", "out/kernel/histogram", "out/bias/histogram"]
    assert all(t in train.Tags()["tensors"] for t in tags)
    for i, tag in enumerate(tags):
        events = train.Tensors(tag)
        assert [e.step for e in events] == [0, 2]
        for e in events:
            buckets = tensor_util.make_ndarray(e.tensor_proto)
            w = snapshots[e.step][i]
            assert buckets.shape == (30, 3)
            assert buckets[:, 2].sum() == w.size
            assert np.isclose(buckets[0, 0], w.min()) and np.isclose(buckets[-1, 1], w.max())


@needs_tensorboard
def test_write_images_adds_a_png_per_weight(tmp_path):
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=1, batch_size=16, verbose=0,
              callbacks=[C.TensorBoard(tmp_path, histogram_freq=1, write_images=True)])
    train = _read(tmp_path / "train")
    (event,) = train.Tensors("hidden/kernel/image")
    width, height, png = tensor_util.make_ndarray(event.tensor_proto)
    assert (int(width), int(height)) == (8, 5)    # a 5x8 kernel: the longer axis across
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    idat = png[png.index(b"IDAT") + 4:]
    rows = zlib.decompress(idat[:int.from_bytes(png[png.index(b"IDAT") - 4:png.index(b"IDAT")], "big")])
    pixels = np.frombuffer(rows, np.uint8).reshape(5, 9)[:, 1:]
    expected = np.floor(np.clip(model.get_weights()[0], 0, 1) * 255.5).astype(np.uint8)
    np.testing.assert_array_equal(pixels, expected)
    (bias,) = train.Tensors("out/bias/image")
    assert [int(v) for v in tensor_util.make_ndarray(bias.tensor_proto)[:2]] == [1, 3]


@needs_tensorboard
def test_the_graph_dashboard_reads_the_model_config(tmp_path):
    from tensorboard.plugins.graph import keras_util
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=1, verbose=0, callbacks=[C.TensorBoard(tmp_path)])
    (event,) = _read(tmp_path / "train").Tensors("keras")
    config = json.loads(tensor_util.make_ndarray(event.tensor_proto).item())
    graph = keras_util.keras_model_to_graph_def(config)
    names = [n.name for n in graph.node]
    assert any(n.endswith("hidden") for n in names) and any(n.endswith("out") for n in names)


@needs_tensorboard
def test_write_graph_false_writes_no_graph(tmp_path):
    X, y = _data()
    _model().fit(X, y, epochs=1, verbose=0, callbacks=[C.TensorBoard(tmp_path, write_graph=False)])
    assert "keras" not in _read(tmp_path / "train").Tags()["tensors"]


@needs_tensorboard
def test_evaluate_with_the_callback_logs_its_results(tmp_path):
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    loss, acc = model.evaluate(X, y, verbose=0, callbacks=[C.TensorBoard(tmp_path)])
    got = _series(_read(tmp_path / "validation"), "evaluation_accuracy_vs_iterations")
    assert got == [(4, pytest.approx(acc, rel=1e-6))]


@needs_tensorboard
@pytest.mark.parametrize("kwargs, match", [
    ({"profile_batch": 2}, "profile_batch"),
    ({"profile_batch": "10,20"}, "profile_batch"),
    ({"embeddings_freq": 1}, "embeddings_freq"),
    ({"embeddings_metadata": "meta.tsv"}, "embeddings_metadata"),
    ({"update_freq": 0}, "update_freq"),
    ({"update_freq": "sometimes"}, "update_freq"),
    ({"histogram_freq": -1}, "histogram_freq"),
])
def test_unsupported_or_bad_arguments_raise_naming_them(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        C.TensorBoard(tmp_path, **kwargs)


def test_without_the_package_the_error_says_how_to_install_it(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.startswith("tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install fastmlp\[tensorboard\]"):
        C.TensorBoard("logs")
