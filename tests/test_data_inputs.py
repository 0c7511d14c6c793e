"""Data inputs besides in-memory arrays: ``fastmlp.utils.PyDataset``, Python generators and
other iterables of batches, ``np.memmap`` arrays streamed chunk by chunk, and
``fastmlp.utils.split_dataset``.

The rules for when a generator runs out and when a PyDataset's epoch hooks run were
measured with Keras 3.15 (torch backend); the Keras tests below check them against
Keras itself where it is installed.
"""
import os
import threading
import tracemalloc
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp.utils import PyDataset, split_dataset

STEP_ATOL = 2e-4

_rng = np.random.default_rng(0)
X = _rng.normal(size=(100, 5)).astype(np.float32)
Y = _rng.normal(size=(100, 2)).astype(np.float32)
W = _rng.uniform(0.5, 2.0, size=100).astype(np.float32)


def _model(K=fastmlp, optimizer="adam", n_in=5, n_out=2):
    model = K.Sequential([K.Input(shape=(n_in,)), K.layers.Dense(8, activation="relu"), K.layers.Dense(n_out)])
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


def _twin(model):
    other = _model()
    other.set_weights(model.get_weights())
    return other


def _batches(bs=16, with_weights=False, n=100):
    out = []
    for i in range(0, n, bs):
        b = (X[i:i + bs], Y[i:i + bs])
        out.append(b + (W[i:i + bs],) if with_weights else b)
    return out


def make_dataset(base, bs=16, with_weights=False, log=None, n=100, **kwargs):
    class Batches(base):
        def __init__(self):
            super().__init__(**kwargs)
            self.items = _batches(bs, with_weights, n)

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            if log is not None:
                log.append(f"get{i}")
            return self.items[i]

        def on_epoch_begin(self):
            if log is not None:
                log.append("ds_epoch_begin")

        def on_epoch_end(self):
            if log is not None:
                log.append("ds_epoch_end")
    return Batches()


def counting_generator(batches, log=None, repeat=False):
    while True:
        for i, b in enumerate(batches):
            if log is not None:
                log.append(f"gen{i}")
            yield b
        if not repeat:
            return


def assert_same_history(h1, h2):
    # the same numbers; sums over the epoch may be added in another order (last bits)
    assert list(h1.history) == list(h2.history)
    for key in h1.history:
        np.testing.assert_allclose(h1.history[key], h2.history[key], rtol=1e-12, atol=0)


def assert_weights_equal(a, b, atol=0.0):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=atol, rtol=0)


# =========================================================================== PyDataset
def test_fit_on_a_pydataset_equals_fit_on_the_same_arrays_without_shuffle():
    a = _model()
    b = _twin(a)
    ha = a.fit(X, Y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    hb = b.fit(make_dataset(PyDataset), epochs=3, shuffle=False, verbose=0)
    assert_same_history(hb, ha)
    assert_weights_equal(a, b)


def test_pydataset_batches_with_sample_weights_equal_the_array_path_with_sample_weight():
    a = _model()
    b = _twin(a)
    ha = a.fit(X, Y, sample_weight=W, batch_size=16, epochs=2, shuffle=False, verbose=0)
    hb = b.fit(make_dataset(PyDataset, with_weights=True), epochs=2, shuffle=False, verbose=0)
    assert_same_history(hb, ha)
    assert_weights_equal(a, b)
    assert b.evaluate(make_dataset(PyDataset, with_weights=True), verbose=0) == \
        pytest.approx(a.evaluate(X, Y, sample_weight=W, batch_size=16, verbose=0), abs=1e-9)


@pytest.mark.parametrize("processes", [False, True])
def test_worker_threads_or_processes_give_the_same_training_as_one_worker(processes):
    a = _model()
    b = _twin(a)
    a.fit(make_dataset(PyDataset), epochs=2, shuffle=False, verbose=0)
    ds = make_dataset(PyDataset, workers=3, use_multiprocessing=processes, max_queue_size=2)
    b.fit(ds, epochs=2, shuffle=False, verbose=0)
    assert_weights_equal(a, b)
    np.testing.assert_array_equal(b.predict(ds, verbose=0), b.predict(X, verbose=0))


def test_worker_threads_read_batches_while_the_engine_trains():
    seen = set()

    class Slow(PyDataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            seen.add(threading.current_thread().name)
            return X[i * 12:(i + 1) * 12], Y[i * 12:(i + 1) * 12]
    _model().fit(Slow(workers=2), epochs=1, verbose=0)
    assert seen and all(name.startswith("fastmlp-pydataset") for name in seen)


def test_shuffle_visits_every_batch_once_per_epoch_in_a_new_order():
    log = []
    _model().fit(make_dataset(PyDataset, log=log, bs=10), epochs=3, shuffle=True, verbose=0)
    gets = [int(e[3:]) for e in log if e.startswith("get")]
    epochs = [gets[i:i + 10] for i in range(0, 30, 10)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1 and epochs[0] != list(range(10))


def test_pydataset_epoch_hooks_run_where_keras_runs_them():
    # measured with Keras 3.15: fit resets (on_epoch_end) once before training; each epoch
    # begins, reads its batches, ends before validation; evaluate resets then runs one epoch
    log = []

    class Spy(fastmlp.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            log.append(f"epoch_begin{epoch}")

        def on_epoch_end(self, epoch, logs=None):
            log.append(f"epoch_end{epoch}")
    model = _model()
    model.fit(make_dataset(PyDataset, log=log, bs=50), epochs=2, shuffle=False, verbose=0, callbacks=[Spy()])
    assert log == ["ds_epoch_end",
                   "epoch_begin0", "ds_epoch_begin", "get0", "get1", "ds_epoch_end", "epoch_end0",
                   "epoch_begin1", "ds_epoch_begin", "get0", "get1", "ds_epoch_end", "epoch_end1"]
    log.clear()
    model.evaluate(make_dataset(PyDataset, log=log, bs=50), verbose=0)
    assert log == ["ds_epoch_end", "ds_epoch_begin", "get0", "get1", "ds_epoch_end"]
    log.clear()
    model.predict(make_dataset(PyDataset, log=log, bs=50), verbose=0)
    assert log == ["ds_epoch_begin", "get0", "get1", "ds_epoch_end"]


def test_the_keras_sequence_alias_is_a_pydataset():
    assert fastmlp.utils.Sequence is PyDataset


def test_an_unbuilt_sequential_is_built_from_the_first_batch():
    model = fastmlp.Sequential([fastmlp.layers.Dense(2)])
    model.compile("sgd", "mse")
    model.fit(make_dataset(PyDataset), epochs=1, verbose=0)
    assert model.built and model.predict(X[:3], verbose=0).shape == (3, 2)


def test_steps_per_epoch_shorter_than_the_dataset_continues_where_the_last_epoch_stopped():
    # Keras: the iterator persists across epochs; when it has given len(ds) batches an epoch is cut short
    log = []
    with pytest.warns(UserWarning, match="ran out of data"):
        h = _model().fit(make_dataset(PyDataset, log=log, bs=34), epochs=2, steps_per_epoch=2,
                         shuffle=False, verbose=0)
    assert [e for e in log if e.startswith("get")] == ["get0", "get1", "get2"]
    assert len(h.history["loss"]) == 2


def test_multi_input_multi_output_models_take_dicts_and_lists_from_a_pydataset():
    K = fastmlp
    a_in, b_in = K.Input(shape=(3,), name="a"), K.Input(shape=(2,), name="b")
    h = K.layers.Concatenate()([K.layers.Dense(4)(a_in), b_in])
    model = K.Model([a_in, b_in], [K.layers.Dense(1, name="u")(h), K.layers.Dense(2, name="v")(h)])
    model.compile("sgd", {"u": "mse", "v": "mse"})
    twin = K.Model.from_config(model.get_config())
    twin.compile("sgd", {"u": "mse", "v": "mse"})
    twin.set_weights(model.get_weights())
    xa, xb, yu, yv = X[:, :3], X[:, 3:], Y[:, :1], Y

    class Named(PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            sl = slice(25 * i, 25 * (i + 1))
            return {"a": xa[sl], "b": xb[sl]}, [yu[sl], yv[sl]]
    h1 = model.fit(Named(), epochs=2, shuffle=False, verbose=0)
    h2 = twin.fit({"a": xa, "b": xb}, {"u": yu, "v": yv}, batch_size=25, epochs=2, shuffle=False, verbose=0)
    assert_same_history(h1, h2)
    assert_weights_equal(model, twin)
    out = model.predict(Named(), verbose=0)
    assert isinstance(out, list) and out[0].shape == (100, 1) and out[1].shape == (100, 2)


def test_class_weight_applies_to_pydataset_batches_as_to_arrays():
    labels = (X[:, 0] > 0).astype(np.int64)
    onehot = np.eye(2, dtype=np.float32)[labels]

    class Cls(PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return X[20 * i:20 * (i + 1)], onehot[20 * i:20 * (i + 1)]
    a = _model()
    b = _twin(a)
    a.fit(X, onehot, batch_size=20, class_weight={0: 1.0, 1: 3.0}, shuffle=False, epochs=1, verbose=0)
    b.fit(Cls(), class_weight={0: 1.0, 1: 3.0}, shuffle=False, epochs=1, verbose=0)
    assert_weights_equal(a, b)


def test_pydataset_arguments_keras_rejects_are_rejected_with_keras_messages():
    model = _model()
    ds = make_dataset(PyDataset)
    with pytest.raises(ValueError, match="`y` should not be passed"):
        model.fit(ds, Y, verbose=0)
    with pytest.raises(ValueError, match="`sample_weights` should not be passed"):
        model.fit(ds, sample_weight=W, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(ds, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="class_weight` and `sample_weight"):
        model.fit(make_dataset(PyDataset, with_weights=True), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="workers"):
        make_dataset(PyDataset, workers=-1)
    with pytest.raises(ValueError, match="max_queue_size"):
        make_dataset(PyDataset, max_queue_size=0)


def test_batch_size_with_a_pydataset_is_unused_as_in_keras_and_says_so():
    # Keras 3.15 accepts and ignores it; fastmlp does the same, with a warning
    model = _model()
    with pytest.warns(UserWarning, match="batch_size=8"):
        model.fit(make_dataset(PyDataset), batch_size=8, epochs=1, verbose=0)


def test_a_bad_batch_from_a_pydataset_raises_a_clear_error():
    class Bad(PyDataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return X, Y, W, W
    with pytest.raises(ValueError, match="tuple of 4"):
        _model().fit(Bad(), verbose=0)


# =========================================================================== generators
def test_a_generator_with_steps_per_epoch_trains_as_the_arrays_would():
    a = _model()
    b = _twin(a)
    ha = a.fit(X, Y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    hb = b.fit(counting_generator(_batches(), repeat=True), steps_per_epoch=7, epochs=3, verbose=0)
    assert_same_history(hb, ha)
    assert_weights_equal(a, b)


def test_generator_exhaustion_follows_keras_rules():
    # Keras 3.15: two batches are read ahead before training; without steps_per_epoch the first
    # epoch reads the generator to its end and later epochs replay only the two read ahead
    log = []
    seen = []

    class Count(fastmlp.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)
    with pytest.warns(UserWarning, match="ran out of data"):
        h = _model().fit(counting_generator(_batches(25), log), epochs=2, verbose=0, callbacks=[Count()])
    assert log == ["gen0", "gen1", "gen2", "gen3"]
    assert seen == [0, 1, 2, 3, 0, 1] and len(h.history["loss"]) == 2


def test_a_generator_read_across_epochs_with_steps_per_epoch_ends_the_last_epoch_early():
    seen = []

    class Count(fastmlp.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)
    with pytest.warns(UserWarning, match="ran out of data"):
        _model().fit(counting_generator(_batches(20)), steps_per_epoch=2, epochs=3, verbose=0, callbacks=[Count()])
    assert seen == [0, 1, 0, 0, 1, 1, 0, 2]


def test_validation_generator_with_validation_steps_is_begun_again_each_epoch():
    log = []
    h = _model().fit(counting_generator(_batches(), repeat=True), steps_per_epoch=2, epochs=2, verbose=0,
                     validation_data=counting_generator(_batches(25), log), validation_steps=1)
    assert log == ["gen0", "gen1"]   # read ahead once; epoch 2 replays the first batch, as Keras
    assert len(h.history["val_loss"]) == 2


def test_evaluate_and_predict_take_a_generator_with_steps():
    model = _model()
    full = model.evaluate(X[:32], Y[:32], batch_size=16, verbose=0)
    assert model.evaluate(counting_generator(_batches(), repeat=True), steps=2, verbose=0) == full
    out = model.predict(counting_generator(_batches(), repeat=True), steps=3, verbose=0)
    np.testing.assert_array_equal(out, model.predict(X[:48], verbose=0))
    with pytest.warns(UserWarning, match="ran out of data"):
        assert model.predict(counting_generator(_batches()), verbose=0).shape == (100, 2)


def test_an_iterable_with_a_length_is_read_once_per_epoch():
    a = _model()
    b = _twin(a)
    a.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    b.fit(TupleListLoader(), epochs=2, verbose=0)
    assert_weights_equal(a, b)


class TupleListLoader:
    """Like a torch DataLoader: iterable again and again, with a length."""

    def __len__(self):
        return 7

    def __iter__(self):
        return iter(_batches())


def test_generator_arguments_keras_rejects_are_rejected():
    model = _model()
    with pytest.raises(ValueError, match="`y` should not be passed"):
        model.fit(counting_generator(_batches()), Y, verbose=0)
    with pytest.raises(ValueError, match="class_weight"):
        model.fit(counting_generator(_batches()), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="at least one batch"):
        model.fit(counting_generator([]), verbose=0)
    with pytest.raises(ValueError, match="must return a tuple"):
        model.fit((x for x in [X]), verbose=0)


# =========================================================================== memmap
def _memmap(tmp_path, arr, dtype=np.float64):
    mm = np.memmap(tmp_path / "x.dat", dtype=dtype, mode="w+", shape=arr.shape)
    mm[:] = arr
    mm.flush()
    return np.memmap(tmp_path / "x.dat", dtype=dtype, mode="r", shape=arr.shape)


def test_a_memmap_trains_evaluates_and_predicts_as_the_array_in_memory(tmp_path):
    mm = _memmap(tmp_path, X)
    a = _model()
    b = _twin(a)
    ha = a.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_split=0.2)
    hb = b.fit(mm, Y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_split=0.2)
    assert_same_history(hb, ha)
    assert_weights_equal(a, b)
    assert b.evaluate(mm, Y, verbose=0) == pytest.approx(a.evaluate(X, Y, verbose=0), abs=1e-6)
    np.testing.assert_array_equal(b.predict(mm, verbose=0), a.predict(X, verbose=0))


def test_a_memmap_in_small_chunks_with_shuffle_sees_every_row_once_per_epoch(tmp_path, monkeypatch):
    import fastmlp.models.streams as streams
    monkeypatch.setattr(streams, "_CHUNK_BYTES", 16 * 5 * 8 * 2)   # two batches a chunk
    ids = np.arange(100, dtype=np.float64).reshape(-1, 1)
    mm = _memmap(tmp_path, np.hstack([ids, np.zeros((100, 4))]))
    src = streams.ArraySource(mm, Y, None, 16, shuffle=True, seed=3)
    for _ in range(2):
        chunks = list(src.iterator())
        rows = np.concatenate([np.asarray(c.x)[c.order, 0] for c in chunks])
        assert sorted(rows.astype(int)) == list(range(100)) and list(rows) != list(range(100))
    model = _model()
    model.fit(mm, Y, batch_size=16, epochs=2, verbose=0)


def test_fit_on_a_memmap_of_hundreds_of_mb_never_copies_it_whole(tmp_path):
    n, d = 400_000, 100   # 320 MB of float64 on disk (sparse), 160 MB if converted to float32
    mm = np.memmap(tmp_path / "big.dat", dtype=np.float64, mode="w+", shape=(n, d))
    y = np.zeros((n, 1), np.float32)
    model = fastmlp.Sequential([fastmlp.Input(shape=(d,)), fastmlp.layers.Dense(1)])
    model.compile("sgd", "mse")
    tracemalloc.start()
    try:
        model.fit(mm, y, batch_size=8192, epochs=1, verbose=0)
        model.evaluate(mm, y, batch_size=8192, verbose=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak {peak / 2**20:.0f} MiB"


# =========================================================================== split_dataset
def test_split_dataset_splits_arrays_and_tuples_by_fraction_or_count():
    x, y = np.arange(10).reshape(10, 1), np.arange(10)
    (lx, ly), (rx, ry) = split_dataset((x, y), left_size=0.8)
    assert ly.tolist() == list(range(8)) and ry.tolist() == [8, 9] and lx.shape == (8, 1)
    left, right = split_dataset(x, right_size=3)
    assert left.shape == (7, 1) and right[:, 0].tolist() == [7, 8, 9]
    (_, ly), (_, ry) = split_dataset((x, y), left_size=3, right_size=2)
    assert ly.tolist() == [0, 1, 2] and ry.tolist() == [8, 9]
    (_, ly), (_, ry) = split_dataset((x, y), right_size=0.25)   # round(2.5) = 2, as Keras
    assert len(ly) == 8 and len(ry) == 2


def test_split_dataset_shuffles_reproducibly_with_a_seed():
    x = np.arange(20)
    l1, r1 = split_dataset(x, left_size=0.5, shuffle=True, seed=7)
    l2, r2 = split_dataset(x, left_size=0.5, shuffle=True, seed=7)
    assert l1.tolist() == l2.tolist() and sorted(l1.tolist() + r1.tolist()) == list(range(20))
    assert l1.tolist() != list(range(10))


@pytest.mark.parametrize("kwargs, error, match", [
    ({}, ValueError, "At least one"),
    ({"left_size": 1.5}, ValueError, "left_size"),
    ({"left_size": 10}, ValueError, "smaller than 10"),
    ({"left_size": 0}, ValueError, "left_size"),
    ({"left_size": 8, "right_size": 5}, ValueError, "sum"),
    ({"left_size": 0.6, "right_size": 0.6}, ValueError, "greater than 1"),
    ({"left_size": 0.05}, ValueError, "empty"),
    ({"left_size": "a"}, TypeError, "left_size"),
])
def test_split_dataset_rejects_bad_sizes_as_keras(kwargs, error, match):
    with pytest.raises(error, match=match):
        split_dataset(np.arange(10), **kwargs)


def test_split_dataset_rejects_arrays_of_different_lengths():
    with pytest.raises(ValueError, match="same number of samples"):
        split_dataset((np.zeros(10), np.zeros(5)), left_size=0.5)


# =========================================================================== against Keras
def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


_HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
          "on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end",
          "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end"]


def _stream_hook_sequences(K):
    seen = []

    class Spy(K.callbacks.Callback):
        pass
    for hook in _HOOKS:
        def record(self, *args, logs=None, _hook=hook):
            logs = args[-1] if args and isinstance(args[-1], dict) else logs
            step = args[0] if args and not isinstance(args[0], dict) else None
            seen.append((_hook, step, sorted(logs) if isinstance(logs, dict) else logs))
        setattr(Spy, hook, record)
    model = _model(K)
    model.fit(X[:8], Y[:8], verbose=0)   # Keras peeks at a batch in its first fit; warm both up
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(make_dataset(K.utils.PyDataset, log=seen, bs=40), epochs=2, shuffle=False, verbose=0,
                  callbacks=[Spy()], validation_data=make_dataset(K.utils.PyDataset, log=seen, bs=60))
        out.append(list(seen)); seen.clear()
        model.fit(counting_generator(_batches(30), seen), steps_per_epoch=3, epochs=2, verbose=0,
                  callbacks=[Spy()], validation_data=counting_generator(_batches(50), seen), validation_steps=1)
        out.append(list(seen)); seen.clear()
        model.evaluate(counting_generator(_batches(30), seen), steps=2, verbose=0, callbacks=[Spy()])
        out.append(list(seen)); seen.clear()
        model.predict(make_dataset(K.utils.PyDataset, log=seen, bs=40), verbose=0, callbacks=[Spy()])
        out.append(list(seen)); seen.clear()
    return out


def test_hook_sequences_with_a_pydataset_and_a_generator_equal_keras():
    keras = _keras()
    ours, theirs = _stream_hook_sequences(fastmlp), _stream_hook_sequences(keras)
    for a, b in zip(ours, theirs):
        assert a == b


def test_training_from_a_pydataset_matches_keras_without_shuffle():
    keras = _keras()
    keras.utils.set_random_seed(0)
    k_model = _model(keras, optimizer="sgd")
    f_model = _model(fastmlp, optimizer="sgd")
    f_model.set_weights(k_model.get_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hk = k_model.fit(make_dataset(keras.utils.PyDataset, with_weights=True), epochs=2, shuffle=False, verbose=0)
        hf = f_model.fit(make_dataset(PyDataset, with_weights=True), epochs=2, shuffle=False, verbose=0)
        ek = k_model.evaluate(counting_generator(_batches(), repeat=True), steps=7, verbose=0)
        ef = f_model.evaluate(counting_generator(_batches(), repeat=True), steps=7, verbose=0)
    # only the loss: Keras 3 does not weight `metrics` by sample_weight, fastmlp does (as for arrays)
    np.testing.assert_allclose(hf.history["loss"], hk.history["loss"], atol=STEP_ATOL, rtol=0)
    for wk, wf in zip(k_model.get_weights(), f_model.get_weights()):
        np.testing.assert_allclose(wf, wk, atol=STEP_ATOL, rtol=0)
    np.testing.assert_allclose(ef, ek, atol=STEP_ATOL, rtol=0)


def _uneven_dataset():
    sizes = [16, 16, 10, 16, 16, 4, 12, 10]
    edges = np.cumsum([0] + sizes)

    class Uneven(PyDataset):
        def __len__(self):
            return len(sizes)

        def __getitem__(self, i):
            return X[edges[i]:edges[i + 1]], Y[edges[i]:edges[i + 1]]
    return Uneven()


def test_python_batches_are_merged_into_few_engine_calls_with_the_same_result(monkeypatch):
    import fastmlp.models.streams as streams
    calls = []
    real = streams._train_call

    def counting(model, X, Y, labels, w, order, bs, b0, b1, mspecs):
        calls.append(b1 - b0)
        return real(model, X, Y, labels, w, order, bs, b0, b1, mspecs)
    monkeypatch.setattr(streams, "_train_call", counting)
    a = _model()
    b = _twin(a)

    class PerBatch(fastmlp.callbacks.Callback):   # batch hooks: one engine call per batch
        def on_train_batch_end(self, batch, logs=None):
            pass
    ha = a.fit(_uneven_dataset(), epochs=2, shuffle=False, verbose=0, callbacks=[PerBatch()])
    assert len(calls) == 16
    calls.clear()
    hb = b.fit(_uneven_dataset(), epochs=2, shuffle=False, verbose=0)
    assert len(calls) < 16 and sum(calls) == 16
    assert_same_history(hb, ha)
    assert_weights_equal(a, b)


class Endless(PyDataset):
    @property
    def num_batches(self):
        return None

    def __getitem__(self, i):
        i %= 4
        return X[25 * i:25 * (i + 1)], Y[25 * i:25 * (i + 1)]


def test_an_endless_pydataset_needs_steps_and_then_trains():
    model = _model()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(Endless(), verbose=0)
    with pytest.raises(ValueError, match="`steps`"):
        model.predict(Endless(), verbose=0)
    h = model.fit(Endless(workers=2), steps_per_epoch=6, epochs=2, verbose=0)
    assert len(h.history["loss"]) == 2
    assert model.predict(Endless(), steps=3, verbose=0).shape == (75, 2)


def test_worker_threads_end_with_fit_even_when_a_batch_is_bad():
    class BadLater(PyDataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return (X[:10], Y[:10]) if i < 3 else (X[:10], Y[:10, :1])
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(ValueError):
        _model().fit(BadLater(workers=3), epochs=1, shuffle=False, verbose=0)
    _model().fit(make_dataset(PyDataset, workers=3), epochs=1, verbose=0)
    left = {t.name for t in threading.enumerate()} - before
    assert not any(name.startswith("fastmlp-pydataset") for name in left)


def test_a_dict_of_memmaps_feeds_a_model_with_named_inputs(tmp_path):
    K = fastmlp

    def build():
        a_in, b_in = K.Input(shape=(3,), name="a"), K.Input(shape=(2,), name="b")
        m = K.Model([a_in, b_in], K.layers.Dense(2)(K.layers.Concatenate()([a_in, b_in])))
        m.compile("sgd", "mse")
        return m
    m1, m2 = build(), build()
    m2.set_weights(m1.get_weights())
    xa = np.memmap(tmp_path / "a.dat", dtype=np.float32, mode="w+", shape=(100, 3))
    xa[:] = X[:, :3]
    h1 = m1.fit({"a": xa, "b": X[:, 3:]}, Y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    h2 = m2.fit({"a": X[:, :3], "b": X[:, 3:]}, Y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    assert_same_history(h1, h2)
    assert_weights_equal(m1, m2)
    np.testing.assert_array_equal(m1.predict({"a": xa, "b": X[:, 3:]}, verbose=0),
                                  m1.predict({"a": X[:, :3], "b": X[:, 3:]}, verbose=0))


def test_arrays_in_memory_validate_on_a_generator():
    model = _model()
    twin = _twin(model)
    h = model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0,
                  validation_data=counting_generator(_batches(), repeat=True), validation_steps=2)
    twin.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert_weights_equal(model, twin)
    assert h.history["val_loss"][0] == pytest.approx(twin.evaluate(X[:32], Y[:32], verbose=0)[0], abs=1e-9)
    h = model.fit(X, Y, batch_size=16, epochs=2, verbose=0, validation_data=make_dataset(PyDataset))
    assert len(h.history["val_mae"]) == 2


def test_adjacent_slices_of_one_array_merge_without_a_copy():
    import fastmlp.models.streams as streams
    parts = [X[0:16], X[16:32], X[32:40]]
    assert streams._adjacent(parts)
    merged = streams._merge([streams._Batch(p) for p in parts], {})
    assert np.shares_memory(merged.x, X) and np.array_equal(merged.x, X[:40])
    assert not streams._adjacent([X[0:16], X[32:48]]) and not streams._adjacent([X[0:16], X[16:32].copy()])
    merged = streams._merge([streams._Batch(X[0:16]), streams._Batch(X[32:48])], {})
    assert np.array_equal(merged.x, np.vstack([X[0:16], X[32:48]]))
