"""Data that reaches ``fit``/``evaluate``/``predict`` in pieces: a ``PyDataset``, a
Python generator or other iterator, an iterable of batches such as a torch
``DataLoader``, and arrays mapped from disk (``np.memmap``), which are read chunk
by chunk and never converted whole.

Each piece is converted as the array path converts its arrays and handed to the
engine in one call (a Python batch: one step; a chunk of a mapped array: all its
batches, the GIL released throughout), so the numbers equal the array path's for
the same batches.  Which batches an epoch sees follows Keras 3's rules:

* a PyDataset gives ``len(ds)`` batches per epoch (in a random order with
  ``fit(shuffle=True)``); its ``on_epoch_begin``/``on_epoch_end`` run where Keras
  runs them (``on_epoch_end`` also once as ``fit``/``evaluate`` start);
* a generator is read on across epochs when ``steps_per_epoch`` is given, and
  once per epoch otherwise; its first two batches are read ahead when ``fit``
  starts and are replayed whenever Keras would begin it again (after it ran
  out); running out ends the epoch early with Keras's warning, not training.
"""
import concurrent.futures
import inspect
import itertools
import mmap
import multiprocessing
import time
import warnings

import numpy as np

from .. import _engine, callbacks as callbacks_module, utils
import fastmlp.models.data as data_module
import fastmlp.models.plan as plan_module

__all__ = ["is_stream", "is_mapped", "uses_streams", "fit", "evaluate", "predict"]

_PEEKED = 2                # batches a generator is read ahead by, as Keras's adapter
_CHUNK_BYTES = 16 << 20    # input bytes of one chunk of a mapped array
_CHUNK_SECONDS = 0.05      # the engine's share of one call between two looks at Python
_FIRST_GROUP = 4           # Python batches merged into the first engine call of a fit
_MAX_GROUP = 64            # and at most, later (the merged copy stays small)


# ---------------------------------------------------------------- what the data is
def _is_pydataset(x):
    if isinstance(x, utils.PyDataset):
        return True
    names = {c.__name__ for c in type(x).__mro__}   # keras.utils.PyDataset / Sequence subclasses too
    return bool(names & {"PyDataset", "Sequence"}) and hasattr(x, "__getitem__") and hasattr(x, "on_epoch_end")


def _is_array_like(x):
    return isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or hasattr(x, "__array__") \
        or hasattr(x, "shape")


def is_stream(x):
    """Whether ``x`` gives batches rather than being the data itself."""
    if x is None or _is_array_like(x):
        return False
    return _is_pydataset(x) or inspect.isgenerator(x) or hasattr(x, "__next__") or hasattr(x, "__iter__")


def _mapped_array(a):
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


def _leaves(struct):
    if isinstance(struct, dict):
        return list(struct.values())
    if isinstance(struct, (list, tuple)):
        return list(struct)
    return [struct]


def is_mapped(*structs):
    """Whether any array in ``structs`` (arrays, lists or dicts of them) is mapped from a file."""
    return any(_mapped_array(a) for s in structs if s is not None for a in _leaves(s))


def _is_streamed_validation(v):
    if v is None:
        return False
    if is_stream(v):
        return True
    return isinstance(v, (list, tuple)) and is_mapped(*v)


def uses_streams(x, y=None, sample_weight=None, validation_data=None):
    """Whether ``fit`` must take the streaming path for these arguments."""
    return is_stream(x) or is_mapped(x, y, sample_weight) or _is_streamed_validation(validation_data)


def _interrupted_warning():
    warnings.warn("Your input ran out of data; interrupting training. Make sure that your dataset or generator "
                  "can generate at least `steps_per_epoch * epochs` batches.", UserWarning, stacklevel=4)


# ---------------------------------------------------------------- sources of batches
class _Batch:
    """One piece of data: ``x``, ``y``, ``sample_weight`` (Python objects as given),
    and for a chunk of arrays the batch size and the order of its rows."""
    __slots__ = ("x", "y", "sw", "batch_size", "order", "python")

    def __init__(self, x, y=None, sw=None, batch_size=None, order=None, python=True):
        self.x, self.y, self.sw, self.batch_size, self.order = x, y, sw, batch_size, order
        self.python = python   # made by Python code (not a chunk of the arrays given to fit)

    def steps(self):
        rows = data_module.n_samples(self.x)
        return 1 if self.batch_size is None else -(-rows // self.batch_size)


def _unpack(batch, what):
    """(x, y, sample_weight) of a batch as Keras unpacks it."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return _Batch(batch)
    if len(batch) not in (1, 2, 3):
        raise ValueError(f"{what} must yield (inputs,), (inputs, targets) or (inputs, targets, sample_weights); "
                         f"got a tuple of {len(batch)} elements")
    return _Batch(*batch)


def _get_item(index):
    return _WORKER_DATASET[index]


_WORKER_DATASET = None


def _set_worker_dataset(ds):
    global _WORKER_DATASET
    _WORKER_DATASET = ds


class PyDatasetSource:
    """The batches of a PyDataset, read ahead by ``workers`` threads or processes."""

    def __init__(self, ds, shuffle=False, seed=0):
        self.ds = ds
        self.shuffle = shuffle
        self.seed = seed
        self._orders = 0
        self.workers = int(getattr(ds, "workers", 1))
        self.processes = bool(getattr(ds, "use_multiprocessing", False))
        self.queue = int(getattr(ds, "max_queue_size", 10))

    @property
    def num_batches(self):
        n = self.ds.num_batches if hasattr(type(self.ds), "num_batches") else len(self.ds)
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
            raise ValueError(f"The PyDataset's length must be a non-negative integer or None; got {n!r}")
        return None if n is None else int(n)

    def first(self):
        return _unpack(self.ds[0], "PyDataset.__getitem__()")

    def on_epoch_begin(self):
        getattr(self.ds, "on_epoch_begin", lambda: None)()

    def on_epoch_end(self):
        self.ds.on_epoch_end()

    def _indices(self):
        n = self.num_batches
        if n is None:
            return itertools.count()
        if not self.shuffle:
            return range(n)
        self._orders += 1
        return (int(i) for i in _engine.permutation(self.seed, self._orders, n))

    def iterator(self):
        if self.workers > 1 or (self.workers > 0 and self.processes):
            return self._read_ahead(self._indices())
        return (_unpack(self.ds[i], "PyDataset.__getitem__()") for i in self._indices())

    def _read_ahead(self, indices):
        if self.processes:
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                              else None)
            pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=ctx,
                                                          initializer=_set_worker_dataset, initargs=(self.ds,))
            get = _get_item
        else:
            pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="fastmlp-pydataset")
            get = self.ds.__getitem__
        pending = []
        try:
            for i in indices:
                pending.append(pool.submit(get, i))
                if len(pending) >= self.queue:
                    yield _unpack(pending.pop(0).result(), "PyDataset.__getitem__()")
            while pending:
                yield _unpack(pending.pop(0).result(), "PyDataset.__getitem__()")
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


class GeneratorSource:
    """A generator or other iterator: its first batches read ahead and replayed each
    time it is begun again, as Keras's generator adapter does."""

    def __init__(self, gen):
        self.gen = iter(gen)
        self.peeked = list(itertools.islice(self.gen, _PEEKED))
        if not self.peeked:
            raise ValueError("When passing a Python generator to a fastmlp model, the generator must yield at "
                             "least one batch. Received an empty generator.")
        if not isinstance(self.peeked[0], tuple):
            raise ValueError("When passing a Python generator to a fastmlp model, the generator must return a "
                             "tuple, either (input,) or (inputs, targets) or (inputs, targets, sample_weights). "
                             f"Received: {type(self.peeked[0]).__name__}")

    num_batches = None

    def first(self):
        return _unpack(self.peeked[0], "The generator")

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass

    def iterator(self):
        return (_unpack(b, "The generator") for b in itertools.chain(self.peeked, self.gen))


class IterableSource(GeneratorSource):
    """An iterable that can be iterated again (e.g. a torch DataLoader): one pass per epoch."""

    def __init__(self, iterable):
        self.iterable = iterable
        if not hasattr(iterable, "__len__"):
            raise TypeError(f"Unrecognized data type: x={type(iterable).__name__}. Pass arrays, a "
                            f"fastmlp.utils.PyDataset, a generator or an iterable with a length")

    @property
    def num_batches(self):
        return len(self.iterable)

    def first(self):
        return _unpack(next(iter(self.iterable)), "The iterable")

    def iterator(self):
        return (_unpack(b, "The iterable") for b in self.iterable)


class ArraySource:
    """Arrays (mapped from disk or in memory) in chunks of whole batches: each chunk is
    one engine call.  With shuffle, the chunks come in a random order and the rows of
    each chunk in a random order (the whole array is never gathered)."""

    def __init__(self, x, y, sw, batch_size, shuffle=False, seed=0, chunk_rows=None, steps=None):
        self.x, self.y, self.sw = x, y, sw
        self.n = data_module.n_samples(x)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        if chunk_rows is None:
            row_bytes = sum(int(np.prod(np.shape(a)[1:], dtype=np.int64)) * 8 for a in _leaves(x))
            chunk_rows = max(1, _CHUNK_BYTES // max(row_bytes, 1))
        self.chunk_rows = max(batch_size, chunk_rows // batch_size * batch_size)
        total = -(-self.n // batch_size)
        self.num_batches = total if steps is None else min(total, steps)
        self._epochs = 0

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass

    def first(self):
        return self._rows(slice(0, min(self.n, self.batch_size)), None)

    def _rows(self, sl, order):
        take = data_module.take
        return _Batch(take(self.x, sl), None if self.y is None else take(self.y, sl),
                      None if self.sw is None else np.asarray(self.sw)[sl], self.batch_size, order, python=False)

    def iterator(self):
        self._epochs += 1
        rows = min(self.n, self.num_batches * self.batch_size)
        starts = np.arange(0, rows, self.chunk_rows)
        if self.shuffle and len(starts) > 1:
            starts = starts[_engine.permutation(self.seed, 2 * self._epochs, len(starts))]
        for k, r0 in enumerate(starts):
            r1 = min(rows, int(r0) + self.chunk_rows)
            order = None
            if self.shuffle:
                order = _engine.permutation(self.seed ^ (k + 1), 2 * self._epochs + 1, r1 - int(r0))
            yield self._rows(slice(int(r0), r1), order)


def source_for(x, shuffle=False, seed=0):
    if _is_pydataset(x):
        return PyDatasetSource(x, shuffle=shuffle, seed=seed)
    if inspect.isgenerator(x) or hasattr(x, "__next__"):
        return GeneratorSource(x)
    return IterableSource(x)


class EpochFeed:
    """Which batches each epoch sees, by Keras 3's rules (see the module docstring).
    ``steps`` counts engine steps: a chunk of arrays is several."""

    def __init__(self, source, steps_per_epoch=None):
        self.source = source
        self.steps_per_epoch = steps_per_epoch
        self._it = None
        self._seen = 0
        self._known = source.num_batches

    @property
    def num_batches(self):
        return self.steps_per_epoch or self._known

    def close(self):
        """Stop reading ahead (worker threads or processes end)."""
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
        self._it = None

    def reset(self):
        """Forget where the data was, as Keras does when fit/evaluate start."""
        self._it = None
        self._seen = 0
        self._known = self.source.num_batches
        self.source.on_epoch_end()

    def _next(self):
        try:
            return next(self._it)
        except StopIteration:
            if self._known is None:
                self._known = self._seen - 1
            _interrupted_warning()
            self._it = None
            self.source.on_epoch_end()
            return None

    def epoch(self):
        """Yields (first step, batch) for one epoch; closing it early skips the dataset's
        on_epoch_end, as breaking out of Keras's loop does."""
        self.source.on_epoch_begin()
        limit = self.steps_per_epoch or self._known or -1
        step = 0
        if isinstance(self.source, ArraySource):   # arrays: every epoch from the start, as the array path
            for batch in self.source.iterator():
                yield step, batch
                step += batch.steps()
        elif limit > 0:
            if self._it is None or self.steps_per_epoch is None:
                self._it = iter(self.source.iterator())
                self._seen = 0
            while step < limit:
                if self._known and self._seen >= self._known:
                    if self.steps_per_epoch:
                        _interrupted_warning()
                    break
                self._seen += 1
                batch = self._next()
                if batch is None:
                    return
                yield step, batch
                step += batch.steps()
            if self._known and self._seen >= self._known:
                self._it = iter(self.source.iterator())
                self._seen = 0
        else:
            self._it = iter(self.source.iterator())
            while True:
                self._seen = step + 1
                batch = self._next()
                if batch is None:
                    return
                yield step, batch
                step += batch.steps()
        self.source.on_epoch_end()


# ---------------------------------------------------------------- batches in groups
def _plain(b):
    return b.python and b.order is None and type(b.x) is np.ndarray and b.x.ndim >= 1 \
        and all(v is None or (type(v) is np.ndarray and v.ndim >= 1) for v in (b.y, b.sw))


def _joinable(group, b):
    """Whether ``b`` can follow ``group`` in one engine call: same kind of arrays, and
    every batch but the last of the full size."""
    head, last = group[0], group[-1]
    if not _plain(b) or len(last.x) != len(head.x) or len(b.x) > len(head.x) or len(b.x) == 0:
        return False
    for u, v in ((head.x, b.x), (head.y, b.y), (head.sw, b.sw)):
        if (u is None) != (v is None) or (u is not None and (u.shape[1:] != v.shape[1:] or u.dtype != v.dtype)):
            return False
    return True


def _adjacent(vs):
    """Whether C-contiguous arrays lie one right after another in one buffer."""
    base = vs[0].base
    if base is None or not all(v.base is base and v.flags.c_contiguous for v in vs):
        return False
    end = vs[0].__array_interface__["data"][0] + vs[0].nbytes
    for v in vs[1:]:
        if v.__array_interface__["data"][0] != end:
            return False
        end += v.nbytes
    return True


def _merge(group, buffers):
    """One piece from several batches, copied into buffers kept from one group to the
    next (fresh memory each time would cost a page fault per 4 KiB)."""
    if len(group) == 1:
        return group[0]

    def cat(slot, vs):
        if vs[0] is None:
            return None
        rows = sum(len(v) for v in vs)
        if _adjacent(vs):   # slices one after another of one array (x[i:i + n]): a view, no copy
            return np.lib.stride_tricks.as_strided(vs[0], shape=(rows,) + vs[0].shape[1:], writeable=False)
        buf = buffers.get(slot)
        if buf is None or len(buf) < rows or buf.shape[1:] != vs[0].shape[1:] or buf.dtype != vs[0].dtype:
            buf = buffers[slot] = np.empty((rows,) + vs[0].shape[1:], dtype=vs[0].dtype)
        return np.concatenate(vs, out=buf[:rows])
    return _Batch(cat(0, [b.x for b in group]), cat(1, [b.y for b in group]), cat(2, [b.sw for b in group]),
                  batch_size=len(group[0].x))


def _grouped(batches, limit):
    """Consecutive Python batches of plain arrays merged, up to ``limit[0]`` at a time, into
    one piece of several steps (the engine then runs them in one call); anything else
    passes through as it is."""
    group, first, buffers = [], 0, {}
    for step, b in batches:
        if group and (len(group) >= limit[0] or not _joinable(group, b)):
            yield first, _merge(group, buffers)
            group = []
        if not _plain(b) or limit[0] <= 1:
            yield step, b
            continue
        if not group:
            first = step
        group.append(b)
    if group:
        yield first, _merge(group, buffers)


# ---------------------------------------------------------------- the loops
def _check_stream_args(x, y, sample_weight, class_weight, validation_split=0.0, batch_size=None):
    kind = "PyDataset" if _is_pydataset(x) else "generator"
    if y is not None:
        raise ValueError(f"When providing `x` as a {kind}, `y` should not be passed. Instead, the targets "
                         f"should be included as part of the {kind}.")
    if sample_weight is not None:
        raise ValueError(f"When providing `x` as a {kind}, `sample_weights` should not be passed. Instead, "
                         f"the sample weights should be included as part of the {kind}.")
    if class_weight is not None and kind != "PyDataset":
        raise ValueError(f"Argument `class_weight` is not supported for Python generator inputs. Received: "
                         f"class_weight={class_weight}")
    if validation_split:
        raise ValueError(f"Argument `validation_split` is only supported for tensors or NumPy arrays. Found "
                         f"incompatible type in the input: {type(x).__name__}")
    if batch_size is not None:
        warnings.warn(f"`batch_size={batch_size}` is not used: the {kind} makes its own batches "
                      f"(Keras ignores it too)", UserWarning, stacklevel=4)


def _feed(model, x, y, sw, batch_size, shuffle, steps, class_weight=None, validation_split=0.0,
          batch_size_given=None, what="fit"):
    """An EpochFeed over ``x`` (a stream, or arrays to read in chunks)."""
    if is_stream(x):
        _check_stream_args(x, y, sw, class_weight, validation_split, batch_size_given)
        return _stream_feed(x, shuffle, model._seed or 0, steps, what)
    if x is None:
        raise ValueError("`x` must be provided; got None")
    whole = None if is_mapped(x, y, sw) else data_module.n_samples(x)   # in memory: one chunk, one shuffle
    return EpochFeed(ArraySource(x, y, sw, batch_size, shuffle=shuffle, seed=model._seed or 0, steps=steps,
                                 chunk_rows=whole))


def _stream_feed(x, shuffle, seed, steps, what):
    source = source_for(x, shuffle=shuffle, seed=seed)
    if isinstance(source, PyDatasetSource) and steps is None and source.num_batches is None:
        arg = "steps_per_epoch" if what == "fit" else "steps"
        raise ValueError(f"The PyDataset is endless (num_batches is None): pass `{arg}` to {what}() to say how "
                         f"many batches to take")
    return EpochFeed(source, steps)


def _array_feed(x, y, sw, batch_size, steps):
    return EpochFeed(ArraySource(x, y, sw, batch_size, steps=steps))


def _prepare(model, batch, class_weight, what):
    if class_weight is not None and batch.sw is not None and batch.python:
        raise ValueError("You cannot specify `class_weight` and `sample_weight` at the same time.")
    return model._prepare(batch.x, batch.y, batch.sw, class_weight, what=what)


def _build(model, feed, end_epoch=False):
    """Build an unbuilt model from the first batch (read as Keras's symbolic build reads it:
    a PyDataset's epoch is begun, and ended by the reset that follows)."""
    if model.built:
        return
    src = feed.source
    if isinstance(src, PyDatasetSource):
        src.on_epoch_begin()
    model._build_from_data(src.first().x)
    if end_epoch:
        src.on_epoch_end()


def _train_call(model, X, Y, labels, w, order, bs, b0, b1, mspecs):
    model._ensure_optimizer()   # a callback may have recompiled the model
    lrs = model.optimizer._learning_rates(b1 - b0)
    spec = model.optimizer._engine_spec()
    try:
        return model._net.train(model._params, model.optimizer._slots, spec, X, Y, labels, w, order, bs, b0, b1,
                                lrs, model._loss_specs(), mspecs, model._seed)
    finally:
        model.optimizer._store_state(spec)


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
        class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_steps, validation_batch_size,
        validation_freq, batch_size_given):
    """``Trainer.fit`` for streamed data (arguments already validated)."""
    if not is_stream(x) and validation_split and validation_data is None:
        n_all = data_module.n_samples(x)
        split = int(n_all * (1.0 - validation_split))
        if split == 0 or split == n_all:
            raise ValueError(f"validation_split={validation_split} leaves no training or no validation samples "
                             f"out of {n_all}")
        tail, head = slice(split, None), slice(None, split)
        take = data_module.take
        validation_data = (take(x, tail), take(y, tail)) + \
            (() if sample_weight is None else (np.asarray(sample_weight)[tail],))
        x, y = take(x, head), take(y, head)
        sample_weight = None if sample_weight is None else np.asarray(sample_weight)[head]
    feed = _feed(model, x, y, sample_weight, batch_size, shuffle, steps_per_epoch, class_weight,
                 validation_split, batch_size_given)
    _build(model, feed)
    model._compiled()
    feed.reset()
    val_feed = None
    if validation_data is not None and not is_stream(validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("`validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, "
                             "val_sample_weight), a PyDataset or a generator")
        vx, vy = validation_data[0], validation_data[1]
        vw = validation_data[2] if len(validation_data) == 3 else None
        val_feed = _array_feed(vx, vy, vw, validation_batch_size or batch_size, validation_steps)
    plan_module.ensure_attached(model)
    model._ensure_optimizer()

    history = callbacks_module.History()
    cbs = list(callbacks or [])
    if not all(isinstance(cb, callbacks_module.Callback) for cb in cbs):
        bad = next(cb for cb in cbs if not isinstance(cb, callbacks_module.Callback))
        raise TypeError(f"callbacks must be fastmlp.callbacks.Callback instances; got {type(bad).__name__}")
    if verbose and not any(isinstance(cb, callbacks_module.ProgbarLogger) for cb in cbs):
        cbs.append(callbacks_module.ProgbarLogger(verbose=verbose))
    cbs.append(history)
    params = {"verbose": verbose, "epochs": epochs, "steps": feed.num_batches}
    if isinstance(feed.source, ArraySource):
        params.update(batch_size=batch_size, samples=feed.source.n)
    cb_list = callbacks_module.CallbackList(cbs, model=model, params=params)
    batch_hooks = cb_list.wants_train_batch_hooks
    progress = next((cb for cb in cbs if isinstance(cb, callbacks_module.ProgbarLogger) and cb.verbose == 1), None)

    model.stop_training = False
    model._epoch_step = 0
    cb_list.on_train_begin({})
    logs = {}
    chunk = 1
    group = [1 if progress is not None else _FIRST_GROUP]   # batches per engine call (measured as it goes)
    try:
        for epoch in range(initial_epoch, epochs):
            model._epoch = epoch
            cb_list.on_epoch_begin(epoch, {})
            mspecs = model._metric_specs()
            totals = [0.0, 0.0, 0.0, [0.0] * len(mspecs), [0.0] * len(model.output_names)]
            logs = {}
            batches = feed.epoch()
            step = 0
            for step, batch in (batches if batch_hooks else _grouped(batches, group)):
                X, Y, labels, w = _prepare(model, batch, class_weight, "x")
                rows = len(X[0])
                if rows == 0:
                    raise ValueError(f"Batch {step} of the training data is empty")
                bs = batch.batch_size or rows
                nsteps = -(-rows // bs)
                done = 0
                while done < nsteps:
                    stop = min(nsteps, done + (1 if batch_hooks else nsteps if batch.python else chunk))
                    if batch_hooks:
                        cb_list.on_train_batch_begin(step + done, {})
                    t0 = time.perf_counter()
                    model._add(totals, _train_call(model, X, Y, labels, w, batch.order, bs, done, stop, mspecs))
                    if batch_hooks or progress is not None:
                        logs = model._logs(totals, mspecs)
                    if batch_hooks:
                        cb_list.on_train_batch_end(step + done, logs)
                    if progress is not None:
                        progress.progress(step + stop, logs, samples=totals[1])
                    if not batch_hooks:
                        per_step = (time.perf_counter() - t0) / (stop - done)
                        chunk = int(min(max(1, _CHUNK_SECONDS / max(per_step, 1e-9)), 1 << 20))
                        group[0] = min(chunk, _MAX_GROUP)
                    done = stop
                    if batch_hooks and model.stop_training:
                        break
                step += done
                if batch_hooks and model.stop_training:
                    batches.close()   # leaves the dataset's on_epoch_end out, as Keras's break does
                    break
            if totals[1]:
                logs = model._logs(totals, mspecs)
            if progress is not None:
                progress.last_step, progress.last_samples = step, totals[1]
            epoch_logs = dict(logs)
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                if val_feed is None:   # made at the first validation, as Keras makes it
                    val_feed = _feed(model, validation_data, None, None, None, False, validation_steps)
                vlogs = _evaluate_feed(model, val_feed, cb_list)
                epoch_logs.update({f"val_{k}": v for k, v in vlogs.items()})
            cb_list.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if model.stop_training:
                break
    finally:   # worker threads/processes end with fit, also on an error
        feed.close()
        if val_feed is not None:
            val_feed.close()
    cb_list.on_train_end(logs)
    model._epoch_step = 0
    model.history = history
    return history


def _evaluate_feed(model, feed, cb_list=None):
    """Losses and metrics over one pass of ``feed``, with Keras's test hooks."""
    feed.reset()
    plan_module.ensure_attached(model)
    specs = model._metric_specs()
    totals = [0.0, 0.0, 0.0, [0.0] * len(specs), [0.0] * len(model.output_names)]
    hooks = cb_list is not None and (cb_list.wants("on_test_batch_begin") or cb_list.wants("on_test_batch_end"))
    if cb_list is not None:
        cb_list.on_test_begin({})
    for step, batch in (feed.epoch() if hooks else _grouped(feed.epoch(), [_MAX_GROUP])):
        X, Y, labels, w = _prepare(model, batch, None, "x")
        rows = len(X[0])
        bs = batch.batch_size or rows
        nsteps = -(-rows // bs) if rows else 0
        any_sum = any(loss.reduction == "sum" for loss in model._losses)
        per_call = 1 if hooks else nsteps
        for s0 in range(0, nsteps, per_call):
            s1 = min(nsteps, s0 + per_call)
            sl = slice(s0 * bs, min(rows, s1 * bs))
            if hooks:
                cb_list.on_test_batch_begin(step + s0, {})
            model._add(totals, model._net.evaluate(
                model._params, [np.ascontiguousarray(a[sl]) for a in X],
                [None if a is None else np.ascontiguousarray(a[sl]) for a in Y],
                [None if a is None else np.ascontiguousarray(a[sl]) for a in labels],
                None if w is None else np.ascontiguousarray(w[sl]),
                bs if any_sum else max(bs, 1024), model._loss_specs(), specs))
            if hooks:
                cb_list.on_test_batch_end(step + s0, model._logs(totals, specs))
    logs = model._logs(totals, specs)
    if cb_list is not None:
        cb_list.on_test_end(dict(logs))
    return logs


def evaluate(model, x, y, batch_size, verbose, sample_weight, steps, callbacks, batch_size_given):
    """``Trainer.evaluate`` for streamed data: a dict of logs."""
    feed = _feed(model, x, y, sample_weight, batch_size, False, steps, batch_size_given=batch_size_given,
                 what="evaluate")
    _build(model, feed)
    model._compiled()
    cb_list = None
    if callbacks:
        cb_list = callbacks_module.CallbackList(callbacks, model=model,
                                                params={"verbose": verbose, "epochs": 1, "steps": feed.num_batches})
    t0 = time.perf_counter()
    try:
        logs = _evaluate_feed(model, feed, cb_list)
    finally:
        feed.close()
    if verbose == 1:
        print(f"{feed.num_batches or ''} batches - {time.perf_counter() - t0:.0f}s - "
              + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
    return logs


def predict(model, x, batch_size, verbose, steps, callbacks, batch_size_given):
    """``Trainer.predict`` for streamed data: the outputs of every batch, concatenated."""
    if is_stream(x) and batch_size_given is not None:
        _check_stream_args(x, None, None, None, batch_size=batch_size_given)
    feed = _stream_feed(x, False, 0, steps, "predict") if is_stream(x) else \
        _array_feed(x, None, None, batch_size, steps)
    _build(model, feed, end_epoch=True)
    plan_module.ensure_attached(model)
    cb_list = callbacks_module.CallbackList(callbacks or [], model=model,
                                            params={"verbose": verbose, "epochs": 1, "steps": feed.num_batches})
    hooks = cb_list.wants("on_predict_batch_begin") or cb_list.wants("on_predict_batch_end")
    widths = model._plan.output_widths
    cb_list.on_predict_begin({})
    if isinstance(feed.source, ArraySource):   # mapped arrays: write into the whole result chunk by chunk
        rows = min(feed.source.n, feed.num_batches * batch_size)
        parts = [[np.empty((rows, wd), dtype=model._dtype)] for wd in widths]
    else:
        parts = [[] for _ in widths]
    for step, batch in (feed.epoch() if hooks else _grouped(feed.epoch(), [_MAX_GROUP])):
        X = data_module.model_inputs(model, batch.x)
        rows = len(X[0])
        bs = batch.batch_size or rows
        per_call = bs if hooks else max(rows, 1)
        r_begin = step * bs
        for i, r0 in enumerate(range(0, rows, per_call)):
            r1 = min(rows, r0 + per_call)
            if isinstance(feed.source, ArraySource):
                outs = [p[0][r_begin + r0:r_begin + r1] for p in parts]
            else:
                outs = [np.empty((r1 - r0, wd), dtype=model._dtype) for wd in widths]
                for p, o in zip(parts, outs):
                    p.append(o)
            if hooks:
                cb_list.on_predict_batch_begin(step + i, {})
            if r1 > r0:
                model._net.predict(model._params, [np.ascontiguousarray(a[r0:r1]) for a in X], outs)
            if hooks:
                cb_list.on_predict_batch_end(step + i, {"outputs": model._structure(outs)})
    feed.close()
    cb_list.on_predict_end({})
    if not parts[0]:
        raise ValueError("predict() got no batches from its input")
    outs = [p[0] if len(p) == 1 else np.concatenate(p) for p in parts]
    n = len(outs[0])
    if verbose == 1:
        print(f"predicted {n} samples")
    if not model._plan.simple_io:
        outs = [o.reshape((n,) + tuple(t.shape[1:])) if len(t.shape) > 2 else o
                for o, t in zip(outs, model.outputs)]
    return model._structure(outs)
