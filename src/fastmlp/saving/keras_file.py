"""Keras's own files, read and written without Keras: ``.keras`` (Keras 3's zip of
``metadata.json``, ``config.json`` and ``model.weights.h5``), ``.weights.h5``
(Keras 3's weights layout: ``layers/<name>/vars/<i>``, the optimizer's variables
under ``optimizer/vars``) and the legacy HDF5 model (``model_config`` and
``training_config`` attributes, ``model_weights/<layer>/<layer>/kernel:0``,
``optimizer_weights``), as Keras 3 and tf.keras 2.x write them; and Keras 3's unzipped
model, a folder of the ``.keras`` file's three members (``model.save(path, zipped=False)``).

HDF5 goes through ``h5py`` (``pip install fastmlp[keras]``).  Which format a
path gets is decided by its name (``format_of``), as Keras decides.

Layer weights map one to one: fastmlp's layers keep their weights in Keras's
order and layout, so a layer's ``vars/i`` is its ``i``-th weight spec that is
not a constant (a constant spec -- ``Rescaling``'s scale, a ``Normalization``'s
given mean -- holds a config value, which Keras keeps in the config too);
``_WEIGHT_CODECS`` holds per-kind exceptions (none yet).  Optimizer variables
follow Keras 3's order: ``iteration``, ``learning_rate`` (unless a schedule),
then per call of ``add_optimizer_variables`` the slots of every trainable
variable (interleaved within a call), then Nadam's ``u_product``.
"""
import collections
import contextlib
import datetime
import functools
import io
import json
import math
import os
import re
import struct
import threading
import warnings
import zipfile
import zlib

import numpy as np

from ..layers.base import _initial_value, deferred_weights
from ..layers import registry
import fastmlp.saving.keras_config as keras_config
import fastmlp.saving.h5index as h5index
import fastmlp._engine as _engine
from .writer import _pieces, _zip_crc32

__all__ = ["format_of", "save_keras", "save_h5", "save_weights_h5", "load_keras", "load_h5", "load_weights",
           "FORMATS"]

FORMATS = ("'.keras' (a Keras 3 model), '.h5' or '.hdf5' (a legacy Keras HDF5 model), '.weights.h5' "
           "(Keras 3 weights; save_weights/load_weights) and '.fmlp' (fastmlp's own format; also any name "
           "without an extension)")
_KERAS_VERSION = "3.0.0"   # the file layout these writers follow


def format_of(filepath):
    """'keras', 'weights_h5', 'h5' or 'fmlp' for a file name; ValueError for another extension."""
    name = os.path.basename(os.fsdecode(os.fspath(filepath))).lower()
    if name.endswith(".keras"):
        return "keras"
    if name.endswith(".weights.h5"):
        return "weights_h5"
    if name.endswith((".h5", ".hdf5")):
        return "h5"
    ext = os.path.splitext(name)[1]
    if ext in ("", ".fmlp") or name.startswith(".") and name.count(".") == 1:
        return "fmlp"
    raise ValueError(f"Unknown file extension {ext!r} in {os.fsdecode(os.fspath(filepath))!r}: fastmlp saves "
                     f"and loads {FORMATS}")


def is_keras_name(filepath):
    """Whether a file name is one of Keras's (read by this module; other names are fastmlp files)."""
    name = os.path.basename(os.fsdecode(os.fspath(filepath))).lower()
    return name.endswith((".keras", ".h5", ".hdf5"))


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Reading and writing Keras files (.keras, .h5, .weights.h5) needs h5py: "
                          "pip install fastmlp[keras]") from None
    return h5py


def _fail(message):
    raise keras_config.KerasConfigError(message)


# What HDF5, zipfile, the index and numpy raise on a damaged file, as the loaders see it.
_DAMAGE = (OSError, KeyError, RuntimeError, UnicodeError, TypeError, OverflowError, ValueError, IndexError,
           struct.error, EOFError, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile, h5index.Unsupported,
           h5index.Damaged)


@contextlib.contextmanager
def _reading(where):
    """Any failure inside, but fastmlp's own errors, is a damaged file: a ``FormatError`` naming it."""
    try:
        yield
    except (keras_config.KerasConfigError, ImportError, NotImplementedError, MemoryError):
        raise
    except _DAMAGE as e:
        raise keras_config.KerasConfigError(f"{where}: the file is damaged ({type(e).__name__}: {e})") from None


class _OwnZip(zipfile.ZipFile):
    """A ZipFile of a file object it closes when it closes (``ZipFile`` leaves a given one open)."""

    def __init__(self, fh):
        self._owned = fh
        super().__init__(fh)

    def close(self):
        try:
            super().close()
        finally:
            self._owned.close()


def _open_zip(filepath, where):
    """The ``.keras`` archive; a missing or unreadable path keeps its OSError."""
    fh = open(filepath, "rb")
    try:
        return _OwnZip(fh)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        fh.close()
        _fail(f"{where}: not a zip archive fastmlp can read, so not a .keras file ({e})")


# The largest member a .keras file may declare: config.json, and the weights against the archive.
_MAX_CONFIG = 64 << 20
_MAX_DEFLATE_RATIO = 1032   # deflate's own limit: a member declaring more is a zip bomb


def _member(z, name, where, limit):
    """The ZipInfo of ``name``, its declared size checked against ``limit`` and the archive."""
    try:
        info = z.getinfo(name)
    except KeyError:
        _fail(f"{where}: the archive has no {name}")
    if info.file_size > limit:
        _fail(f"{where}: {name} declares {info.file_size} bytes, more than a .keras file of this size can hold")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > _MAX_DEFLATE_RATIO * max(info.compress_size, 1):
        _fail(f"{where}: {name} declares {info.file_size} bytes from {info.compress_size} compressed: a zip bomb")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        _fail(f"{where}: {name} is compressed with method {info.compress_type}; Keras writes stored or deflated "
              f"members")
    if info.flag_bits & 0x61 or info.extract_version > zipfile.MAX_EXTRACT_VERSION:
        _fail(f"{where}: {name} is encrypted, patched or needs zip version {info.extract_version / 10}: "
              f"not what Keras writes")
    return info


# ---------------------------------------------------------------------------- weights of layers
# Per-kind weight layout, when a kind's Keras variables differ from its weight specs:
# class name -> (to Keras: list of arrays -> list, from Keras: list -> list).  None so far.
_WEIGHT_CODECS = {}


def _variable_specs(layer):
    """The layer's weight specs Keras has as variables (its config constants are not)."""
    return [s for s in layer._wspecs if not s.constant]


def _layer_arrays(layer):
    arrays = [getattr(layer, s.name) for s in _variable_specs(layer)]
    codec = _WEIGHT_CODECS.get(type(layer).__name__)
    return codec[0](arrays) if codec else arrays


def _checked_layer(layer, arrays, where):
    """``(specs, arrays)`` of a layer's weights from a file, once count and shapes are checked."""
    codec = _WEIGHT_CODECS.get(type(layer).__name__)
    if codec:
        arrays = codec[1](arrays)
    specs = _variable_specs(layer)
    if len(arrays) != len(specs):
        _fail(f"{where}: layer {layer.name!r} ({type(layer).__name__}) has {len(specs)} weights, the file "
              f"holds {len(arrays)}")
    for spec, a in zip(specs, arrays):
        if tuple(a.shape) != tuple(spec.shape):
            _fail(f"{where}: weight {spec.name!r} of layer {layer.name!r} has shape {tuple(a.shape)} in the file, "
                  f"the model expects {tuple(spec.shape)}")
    return specs, arrays


def _read_layer(layer, img, path):
    """Read the layer's weights from a file being fetched (``_Fetched``) straight into the
    model's arrays, when the file holds them as the model does (same count, shapes and dtypes;
    no codec); False, with nothing read, otherwise (the caller then checks and copies them, or says
    what is wrong)."""
    if not hasattr(img.fetch, "read_into") or img.index is None or type(layer).__name__ in _WEIGHT_CODECS:
        return False
    variables = [getattr(layer, s.name) for s in _variable_specs(layer)]
    if img.count(path) != len(variables):
        return False
    places = []
    for i, var in enumerate(variables):
        _, found = img._indexed(h5index.H5Index.dataset, f"{path}/vars/{i}")
        dest = var._value()
        if found is None or found[0] != dest.dtype or tuple(found[1]) != dest.shape or not dest.flags.c_contiguous:
            return False
        places.append((found[2], dest))
    for offset, dest in places:
        img.fetch.read_into(offset, dest)
    for var in variables:
        var._written()
    return True


@functools.lru_cache(maxsize=256)   # (class names: a few, asked for per layer at every save and load)
def _snake_case(name):
    """Keras's snake case of a class name (``BatchNormalization`` -> ``batch_normalization``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras_class(layer):
    if getattr(layer, "_is_model", False):
        return "Sequential" if type(layer).__name__ == "Sequential" else "Functional"
    return type(layer).__name__


def _walk(model):
    """(h5 path of the layer's group, layer) for every layer, nested models' layers under
    ``<model path>/layers/``, as Keras 3 lays them out: a layer's group is named after its
    class, not its name (``dense``, ``dense_1``, ... in the order of ``model.layers``)."""
    seen = set()

    def visit(m, prefix):
        used = {}
        for layer in m.layers:
            base = _snake_case(_keras_class(layer))
            if base in used:
                used[base] += 1
                name = f"{base}_{used[base]}"
            else:
                used[base] = 0
                name = base
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            path = f"{prefix}layers/{name}"
            yield path, layer
            if getattr(layer, "_is_model", False):
                yield from visit(layer, path + "/")
    yield from visit(model, "")


def _trainable_refs(model):
    """The model's trainable weights in Keras's order (``model.trainable_variables``)."""
    return [ref for ref in model._plan.weights if ref.trainable]


# ---------------------------------------------------------------------------- optimizer variables
def _slot_groups(opt):
    """Keras 3's ``add_optimizer_variables`` calls of this optimizer, as fastmlp slot names."""
    kind = type(opt).__name__
    if kind == "SGD":
        return [["momentum"]] if opt.momentum > 0 else []
    if kind == "RMSprop":
        return [["velocity"]] + ([["momentum"]] if opt.momentum > 0 else []) + \
            ([["average_gradient"]] if opt.centered else [])
    if kind == "Adagrad":
        return [["accumulator"]]
    if kind == "Adadelta":
        return [["accumulated_grad", "accumulated_delta_var"]]
    if kind in ("Adam", "AdamW"):
        return [["m", "v"]] + ([["v_hat"]] if opt.amsgrad else [])
    if kind == "Adamax":
        return [["m", "u"]]
    if kind == "Nadam":
        return [["m", "v"]]
    raise ValueError(f"internal: no Keras variable layout for the optimizer {kind}")


def _has_lr_variable(opt):
    return not isinstance(opt._learning_rate, keras_config.schedules.LearningRateSchedule)


def _optimizer_layout(model):
    """[(name, (slot name, ref) or a scalar key)] of the optimizer's Keras variables, in order."""
    opt = model.optimizer
    out = [("iteration", "iteration")]
    if _has_lr_variable(opt):
        out.append(("learning_rate", "learning_rate"))
    refs = _trainable_refs(model)
    keras_names = {"m": "momentum", "v": "velocity", "v_hat": "velocity_hat", "u": "norm"}
    for group in _slot_groups(opt):
        for ref in refs:
            for slot in group:
                out.append((f"{ref.name.replace('/', '_')}_{keras_names.get(slot, slot)}", (slot, ref)))
    if type(opt).__name__ == "Nadam":
        out.append(("u_product", "u_product"))
    return out


def _optimizer_values(model):
    opt = model.optimizer
    if not opt.built:
        opt._build_pending()
        if not opt.built:
            opt.build(model._n_params, model._dtype)
    n = model._n_params
    values = []
    for name, key in _optimizer_layout(model):
        if key == "iteration":
            values.append((name, np.array(opt.iterations, dtype=np.int64)))
        elif key == "learning_rate":
            values.append((name, np.array(opt.learning_rate, dtype=model._dtype)))
        elif key == "u_product":
            values.append((name, np.array(opt._u_product, dtype=model._dtype)))
        else:
            slot, ref = key
            s = opt.slot_names.index(slot)
            values.append((name, opt._slots[s * n + ref.offset:s * n + ref.offset + ref.size].reshape(ref.shape)))
    return values


def _restore_optimizer(model, count, get, where, lazy=None):
    """Set the optimizer's step count, learning rate and slots from Keras's variable list of
    ``count`` variables, ``get(i)`` giving the ``i``-th (see ``_optimizer_plan``)."""
    apply = _optimizer_plan(model, count, get, where, lazy)
    if apply is not None:
        apply()


def _optimizer_plan(model, count, get, where, lazy=None):
    """What ``_restore_optimizer`` does, checked now: a function that does it (None: nothing to
    do), so that a file whose optimizer state is damaged changes nothing.  The scalars are read
    now, and so are the slots without ``lazy``; with it (a fresh ``get``) the slots are read and
    checked when the optimizer is first built -- the first training step or a save -- so that a
    model loaded for inference never reads them."""
    opt = model.optimizer
    layout = _optimizer_layout(model)
    if count == 0:
        return None
    if count != len(layout):
        if count <= 2:   # Keras saved an optimizer that was never built: its step count only
            layout = layout[:count]
        else:
            def fresh():
                warnings.warn(f"{where}: the optimizer state in the file has {count} variables, the "
                              f"{type(opt).__name__} of this model has {len(layout)}; the optimizer starts fresh",
                              stacklevel=5)
            return fresh
    scalars, slots = {}, []
    for i, (name, key) in enumerate(layout):
        if not isinstance(key, str):
            slots.append((i, name, key))
            continue
        a = np.asarray(get(i))
        if key == "iteration":
            if a.size != 1 or a.dtype.kind not in "iu" or int(a.reshape(())) < 0:
                _fail(f"{where}: the optimizer's iteration count must be a non-negative integer")
            scalars[key] = int(a.reshape(()))
            continue
        if a.size != 1:
            _fail(f"{where}: the optimizer variable #{i} ({name}) must be a scalar; got shape {a.shape}")
        value = float(a.reshape(()))
        if key == "learning_rate" and not (math.isfinite(value) and value >= 0):
            _fail(f"{where}: the optimizer's learning rate must be a finite number >= 0; got {value}")
        if key == "u_product" and not 0 <= value <= 1:
            _fail(f"{where}: Nadam's u_product must lie in [0, 1]; got {value}")
        scalars[key] = value

    def segments(get=get):
        out = []
        for i, name, (slot, ref) in slots:
            a = get(i)
            if tuple(a.shape) != tuple(ref.shape):
                _fail(f"{where}: the optimizer variable #{i} ({name}) has shape {tuple(a.shape)}, "
                      f"the model's {ref.name} has {tuple(ref.shape)}")
            out.append((opt.slot_names.index(slot), ref.offset, np.asarray(a, dtype=model._dtype)))
        return out
    ready = None if lazy or not slots else segments()   # (read now: a damaged value fails before any change)

    def apply():
        if "iteration" in scalars:
            opt.iterations = scalars["iteration"]
        if "learning_rate" in scalars and np.float32(scalars["learning_rate"]) != np.float32(opt.learning_rate):
            opt.learning_rate = scalars["learning_rate"]   # Keras's variable wins over the config (a callback
            #                                                 may have set it)
        if "u_product" in scalars:
            opt._u_product = scalars["u_product"]
        if slots:
            opt._defer_slots(model._n_params, model._dtype, (lambda: segments(lazy())) if lazy else ready)
            opt._owner = id(model)
    return apply


# ---------------------------------------------------------------------------- Keras 3 weights files
class _H5Layout:
    """An HDF5 file's bytes without its datasets' values: h5py lays out the groups and datasets
    (storage allocated early, never filled) once per set of names, shapes and dtypes -- the same
    bytes every time, so a model saved again (a checkpoint each epoch) reuses them (an LRU of
    ``_LAYOUTS_KEPT``).  ``offsets[i]`` is where dataset ``i``'s bytes go (None: stored inline,
    size 0); ``segments`` holds the bytes around them, ``(offset, bytes)``; ``size`` is the file's."""

    def __init__(self, groups, datasets):
        h5py = _h5py()
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        buf = io.BytesIO()
        ids = []
        with h5py.File(buf, "w") as f:
            for g in groups:
                f.create_group(g)
            for path, shape, dtype in datasets:
                if 0 in shape:
                    f.create_dataset(path, shape=shape, dtype=dtype)
                    ids.append(None)
                elif not shape:   # HDF5 allocates a scalar's storage when it is written: a zero
                    ids.append(f.create_dataset(path, data=np.zeros((), dtype)).id)
                else:
                    ids.append(f.create_dataset(path, shape=shape, dtype=dtype, dcpl=dcpl).id)
            f.flush()
            self.size = f.id.get_filesize()
            self.offsets = [None if d is None else d.get_offset() for d in ids]
        # keep only the bytes around the datasets' storage (metadata: a few KB), not the zeros
        # h5py wrote in place of their values
        image, pos, self.segments = buf.getbuffer(), 0, []
        spans = sorted((o, int(np.prod(shape)) * np.dtype(dtype).itemsize)
                       for o, (_, shape, dtype) in zip(self.offsets, datasets) if o is not None)
        for offset, nbytes in spans + [(max(self.size, len(image)), 0)]:
            if offset > pos:
                self.segments.append((pos, bytes(image[pos:min(offset, len(image))])))
            pos = max(pos, offset + nbytes)
        image.release()


_LAYOUTS = collections.OrderedDict()
_LAYOUTS_KEPT = 8


def _layout(groups, datasets):
    key = (tuple(groups), tuple(datasets))
    found = _LAYOUTS.get(key)
    if found is None:
        found = _LAYOUTS[key] = _H5Layout(groups, datasets)
        if len(_LAYOUTS) > _LAYOUTS_KEPT:
            _LAYOUTS.popitem(last=False)
    _LAYOUTS.move_to_end(key)
    return found


class _H5File:
    """An HDF5 file to write: its layout, and the arrays that fill it."""

    def __init__(self):
        self.groups, self.datasets, self.arrays = [], [], []

    def group(self, path):
        self.groups.append(path)
        return path

    def put(self, group, name, a):
        a = np.asarray(a)
        a = a if a.flags.c_contiguous else a.copy()   # (np.ascontiguousarray makes a scalar 1-d)
        self.datasets.append((f"{group}/{name}", a.shape, a.dtype.str))
        self.arrays.append(a)

    def close(self):
        layout = _layout(self.groups, self.datasets)
        parts = [(offset, data) for offset, data in layout.segments]
        parts += [(o, memoryview(self.arrays[i].reshape(-1)).cast("B"))
                  for i, o in enumerate(layout.offsets) if o is not None]
        parts.sort(key=lambda t: t[0])
        pieces, pos = [], 0   # zeros stand for any gap (the layout may end before a dataset's storage)
        for offset, data in parts:
            if offset < pos:
                raise RuntimeError("internal: HDF5 datasets overlap")
            if offset > pos:
                pieces.append(bytes(offset - pos))
            if len(data):
                pieces.append(data)
            pos = offset + len(data)
        if pos < layout.size:
            pieces.append(bytes(layout.size - pos))
        self.pieces = pieces
        self.nbytes = sum(len(p) for p in pieces)
        return self

    def write_to(self, out):
        for p in self.pieces:
            out.write(p)


def _weights_h5(model, include_optimizer):
    """Keras 3's weights file of ``model`` (an ``_H5File``, closed)."""
    _h5py()   # writing needs the extra even when the layout is cached: one rule for every save
    w = _H5File()
    w.group("layers")
    for path, layer in _walk(model):
        w.group(path)
        v = w.group(f"{path}/vars")
        if not getattr(layer, "_is_model", False):
            for i, a in enumerate(_layer_arrays(layer)):
                w.put(v, str(i), a)
    w.group("vars")
    if include_optimizer and model.compiled:
        w.group("optimizer")
        v = w.group("optimizer/vars")
        for i, (_, a) in enumerate(_optimizer_values(model)):
            w.put(v, str(i), a)
    return w.close()


class _H5Image:
    """An HDF5 file in memory (bytes).  The groups and datasets of the layout h5py writes by
    default -- Keras's -- are found by ``H5Index`` straight from the bytes; any other file goes
    through h5py (opened on first use).  A contiguous dataset is a zero-copy view of the bytes at
    its offset, checked to lie inside the file.  ``reopen`` gives a new image of the same bytes."""

    def __init__(self, data, where, reopen=None, fetch=None):
        """``fetch`` (a ``_Fetched``): ``data`` is filled from the file as it is read, the
        structure by the index, a dataset's values when asked for."""
        self.data, self.where, self.fetch = data, where, fetch
        self.reopen = reopen or (lambda: _H5Image(data, where))
        self._file = self.index = None
        self.limit = None   # the most elements a dataset read through h5py may hold (the model's size)
        try:
            self.index = h5index.H5Index(data, fetch)
        except h5index.Unsupported:
            if fetch is not None:
                fetch(0, len(data))
            self.file   # h5py judges the file now

    @property
    def file(self):
        if self._file is None:
            try:
                self._file = _h5py().File(io.BytesIO(self.data), "r")
            except OSError as e:
                _fail(f"{self.where}: not an HDF5 file ({e})")
        return self._file

    @property
    def attrs(self):
        return self.file.attrs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()

    def _indexed(self, fn, *args):
        """(True, fn(index, *args)) when the file has the layout the index follows, else (False,
        None) and h5py answers.  In that layout -- the one Keras, TensorFlow and h5py's defaults
        write -- anything the index does not follow is taken as damage, not handed to HDF5,
        which has crashed the process on damaged files (``_unfollowed``)."""
        if self.index is not None:
            try:
                return True, fn(self.index, *args)
            except h5index.Unsupported as e:
                self._unfollowed(e)
        return False, None

    def _unfollowed(self, e):
        raise h5index.Damaged(f"{e}: the file is damaged, or uses HDF5 features fastmlp reads only in "
                              f"files of h5py's newest layout (chunked datasets, links) -- "
                              f"save it again with Keras, or with h5py's libver='latest'") from None

    def members(self, path):
        """The names in the group at ``path`` (a sorted list); None when there is no such group."""
        ok, found = self._indexed(h5index.H5Index.members, path)
        if ok:
            return None if found is None else sorted(found)
        g = self.file.get(path or "/")
        return sorted(g.keys()) if isinstance(g, _h5py().Group) else None

    def __contains__(self, path):
        ok, found = self._indexed(lambda ix, p: ix.members(p) is not None or ix.dataset(p) is not None, path)
        return found if ok else path in self.file

    def array(self, path):
        ok, found = self._indexed(h5index.H5Index.dataset, path)
        if ok:
            if found is None:
                _fail(f"{self.where}: the file has no dataset {path!r}")
            dtype, shape, offset = found
            count = math.prod(shape)
            if self.fetch is not None:
                self.fetch(offset, count * dtype.itemsize)
            return np.frombuffer(self.data, dtype, count, offset).reshape(shape)
        h5d = _h5py().h5d
        try:
            d = h5d.open(self.file.id, path.encode("utf8"))
        except KeyError:
            _fail(f"{self.where}: the file has no dataset {path!r}")
        dtype, shape = d.dtype, d.shape
        if dtype.kind not in "biuf":
            _fail(f"{self.where}: the dataset {path!r} is not numeric ({dtype})")
        offset = d.get_offset()
        count = int(np.prod(shape, dtype=np.int64))
        _check_storage(d, path, self.where, self.limit)
        if offset is None or d.get_create_plist().get_layout() != h5d.CONTIGUOUS:
            return self.file[path][()]   # (chunked or compact, checked: HDF5 reads the file's own bytes)
        if offset + count * dtype.itemsize > len(self.data):
            _fail(f"{self.where}: the dataset {path!r} runs past the end of the file")
        return np.frombuffer(self.data, dtype, count, offset).reshape(shape)

    def root(self):
        """The file's root group for the legacy readers, read through the index (groups,
        datasets and attributes: HDF5's own parser never sees the file).  A legacy file in
        another layout (h5py's newest, or one with a user block) is refused: its attributes
        would go to HDF5, which spins forever on a damaged string in them."""
        if self.index is None:
            _fail(f"{self.where}: fastmlp reads legacy Keras HDF5 files in the layout Keras and TensorFlow "
                  f"write; this one has another (h5py's newest layout, or a user block), whose attributes "
                  f"HDF5 cannot be trusted to read when damaged: save it again with Keras or TensorFlow, "
                  f"or as .keras")
        try:
            self.index.walk()
        except h5index.Unsupported as e:
            self._unfollowed(e)
        return _IndexedGroup(self, "")

    def count(self, path):
        """How many variables ``<path>/vars`` holds (numbered 0, 1, ...; 0 without a ``vars`` group)."""
        names = self.members(f"{path}/vars")
        if names is None:
            return 0
        if names != sorted(str(i) for i in range(len(names))):
            _fail(f"{self.where}: {path}/vars: the variables must be numbered 0..{len(names) - 1}; "
                  f"found {names[:6]}")
        return len(names)

    def vars(self, path):
        """The arrays ``<path>/vars/0``, ``1``, ... (an empty list when the group has no ``vars``)."""
        return [self.array(f"{path}/vars/{i}") for i in range(self.count(path))]


class _IndexedGroup:
    """The part of h5py's Group the legacy readers use (``attrs``, ``[name]``, ``in``, ``get``),
    answered by an ``_H5Image``'s index, which has walked the whole file (``H5Index.walk``), so
    every object is one it follows.  ``[name]`` gives a group or an ``_IndexedDataset``."""

    def __init__(self, img, path):
        self.img, self.path = img, path.strip("/")
        self.name = "/" + self.path
        self._attrs = None

    @property
    def attrs(self):
        if self._attrs is None:
            self._attrs = self.img.index.attrs(self.path) or {}
        return self._attrs

    def _child(self, name):
        return f"{self.path}/{name}" if self.path else str(name)

    def __contains__(self, name):
        path = self._child(name)
        return self.img.index.members(path) is not None or self.img.index.dataset(path) is not None

    def __getitem__(self, name):
        path = self._child(name)
        if self.img.index.members(path) is not None:
            return _IndexedGroup(self.img, path)
        if self.img.index.dataset(path) is not None:
            return _IndexedDataset(self.img, path)
        raise KeyError(f"no object {path!r}")

    def get(self, name, default=None):
        return self[name] if name in self else default


class _IndexedDataset:
    def __init__(self, img, path):
        self.img, self.path, self.name = img, path, "/" + path


def _h5_array(d, where, limit):
    """The array of an h5py dataset, refused unless numeric and at most ``limit`` elements (a
    damaged or hostile file may declare any shape)."""
    if isinstance(d, _IndexedDataset):   # bounded by the file: a view of its bytes
        return d.img.array(d.path)
    if isinstance(d, _IndexedGroup):
        _fail(f"{where}: {d.name} is not a dataset")
    h5py = _h5py()
    if not isinstance(d, h5py.Dataset):
        _fail(f"{where}: {d.name} is not a dataset")
    if d.dtype.kind not in "biuf":
        _fail(f"{where}: the dataset {d.name} is not numeric ({d.dtype})")
    _check_storage(d.id, d.name, where, limit)
    return d[()]


def _check_storage(d, path, where, limit):
    """Refuse a dataset (an h5py ``DatasetID``) whose values HDF5 would not read from the file's
    own bytes, or not boundedly: external files (any file on the machine, a FIFO), virtual
    datasets (which crashed the process), filters (a compressed chunk inflates past its size),
    and storage that was never written (fill values)."""
    h5d = _h5py().h5d
    plist = d.get_create_plist()
    layout = plist.get_layout()
    name = path if isinstance(path, str) else str(path)
    if limit is not None and d.shape and math.prod(d.shape) > max(limit, 1):
        _fail(f"{where}: the dataset {name} declares shape {d.shape}, more than the model's {limit} "
              f"parameters")
    if layout not in (h5d.CONTIGUOUS, h5d.CHUNKED, h5d.COMPACT):
        _fail(f"{where}: the dataset {name} is a virtual dataset (its values live in other files); "
              f"Keras writes its weights in the file")
    if plist.get_external_count():
        _fail(f"{where}: the dataset {name} keeps its values in external files; Keras writes its weights "
              f"in the file")
    if layout == h5d.CHUNKED and plist.get_nfilters():
        _fail(f"{where}: the dataset {name} is compressed or filtered; fastmlp reads Keras's weights as "
              f"Keras writes them, unfiltered")
    if layout != h5d.COMPACT and d.get_storage_size() < math.prod(d.shape) * d.dtype.itemsize:
        _fail(f"{where}: the dataset {name} holds fewer bytes than its shape {d.shape} needs (values never "
              f"written)")


def _read_weights(model, img, where, optimizer=True, skip_mismatch=False):
    """Set the layers' weights (and, with ``optimizer``, the optimizer's state) from a Keras 3
    weights file.  ``optimizer="built"`` (``load_weights``, as Keras 3 does it): only into an
    optimizer that is built (the model has trained, or was loaded with its optimizer's state);
    a fresh one is left fresh, with Keras's warning.  ``skip_mismatch`` (Keras's
    ``load_weights`` argument): a layer the file holds no fitting weights for keeps its own,
    with a warning, and so does the optimizer once a layer was skipped."""
    img.limit = model._n_params
    if optimizer is True and model.compiled:
        model.optimizer._loaded = True
    held = img.members("layers")
    if held is None:
        _fail(f"{where}: no 'layers' group: not a Keras 3 weights file")
    skipped, checked = [], []
    for path, layer in _walk(model):
        if getattr(layer, "_is_model", False) or not _variable_specs(layer):
            continue
        try:
            if path not in img:
                _fail(f"{where}: the file has no weights for layer {layer.name!r} ({type(layer).__name__}) at "
                      f"{path!r}; it holds {held[:10]}")
            if not _read_layer(layer, img, path):   # (a fresh model's, read straight in; else checked first)
                checked.append((layer, _checked_layer(layer, img.vars(path), where)))
        except keras_config.KerasConfigError as e:
            if not skip_mismatch:
                raise
            skipped.append(layer.name)
            warnings.warn(f"Skipping the weights of layer {layer.name!r} (skip_mismatch=True): {e}", stacklevel=4)
    if optimizer == "built":   # (load_weights: checked with the layers, so that a damaged file changes nothing)
        restore = _optimizer_state(model, img, where, optimizer, skipped)
        _write_checked(checked)
    else:   # (a model being loaded, which a failure discards: its weights are copied while the rest comes in)
        _write_checked(checked)
        restore = _optimizer_state(model, img, where, optimizer, skipped)
    if restore is not None:
        restore()


def _write_checked(checked):
    for layer, (specs, arrays) in checked:
        for spec, a in zip(specs, arrays):
            getattr(layer, spec.name)[...] = a


def _optimizer_state(model, img, where, optimizer, skipped):
    """The restoring of the optimizer's state from a Keras 3 weights file, checked (see
    ``_optimizer_plan``; None: nothing to restore), for ``_read_weights``."""
    if not (optimizer and model.compiled and "optimizer" in img):
        return None
    if skipped:
        warnings.warn(f"{where}: the optimizer's state is not loaded either (skip_mismatch=True skipped layers "
                      f"{skipped})", stacklevel=5)
        return None
    count = img.count("optimizer")
    opt = model.optimizer
    # (a fresh Keras optimizer holds its step count, and its rate unless a schedule gives it)
    fresh = 1 if isinstance(opt._learning_rate, keras_config.schedules.LearningRateSchedule) else 2
    if optimizer == "built" and not (opt.built or opt._pending is not None or opt._loaded) and count != fresh:
        warnings.warn(f"Skipping variable loading for optimizer {opt.name!r}, because it has {fresh} "
                      f"variables whereas the saved optimizer has {count} variables. ", stacklevel=5)
        return None
    again = img.reopen

    def reopen():   # the slots, read when training starts
        with _reading(where), again() as other:
            other.limit = img.limit
            arrays = other.vars("optimizer")
        return arrays.__getitem__
    # (load_weights reads the slots now, checked before anything changes; a model being loaded
    # reads them when it first trains)
    return _optimizer_plan(model, count, lambda i: img.array(f"optimizer/vars/{i}"), where,
                           reopen if not opt.built and optimizer != "built" else None)


def _h5_bytes(write):
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        write(f)
    return buf.getvalue()


def _read_bytes(filepath):
    with open(filepath, "rb") as fh:
        return fh.read()


def _atomic(filepath, data, overwrite, size=None):
    from .writer import _atomic_write
    _atomic_write(filepath, data, overwrite, size)


def _require_built(model):
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built yet, so it has no weights to save: "
                         f"build it (give it an input shape) or call it on data first")
    model._ensure_attached()
    int8 = [layer.name for _, layer in _walk(model) if getattr(layer, "_int8", None) is not None]
    if int8:   # (written as float, Keras would load another model than the one that runs here)
        raise NotImplementedError(f"fastmlp writes Keras files of float models; the Dense layers {int8} of model "
                                  f"{model.name!r} are int8 (quantize). Save it as fastmlp's own file "
                                  f"(model.save('model.fmlp') keeps them int8), or save the float model before "
                                  f"quantizing")


# ---------------------------------------------------------------------------- .keras
def _keras_members(model, include_optimizer):
    """The three members of ``model``'s ``.keras`` file: ``(metadata.json bytes, config.json
    bytes, weights)``, weights an ``_H5File``."""
    _require_built(model)
    entry = keras_config.model_to_keras_config(model)
    if model.compiled:
        entry["compile_config"] = keras_config.compile_config_to_keras(model)
    weights = _weights_h5(model, include_optimizer)
    meta = {"keras_version": _KERAS_VERSION, "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    return json.dumps(meta).encode(), json.dumps(entry).encode(), weights


def _write_keras(model, include_optimizer):
    """The ``.keras`` file of ``model``: ``(write, size)`` as ``_stored_zip`` gives them."""
    meta, config, weights = _keras_members(model, include_optimizer)
    return _stored_zip([("metadata.json", [meta]), ("config.json", [config]), ("model.weights.h5", weights.pieces)])


_ZIP32 = 0xFFFFFFFF      # the value a 32-bit field holds when its ZIP64 record has the real one
_ZIP64_FROM = _ZIP32     # sizes and offsets from here on go in ZIP64 records (tests lower it)


def _stored_zip(members):
    """A zip archive of stored (uncompressed) members, each ``(name, pieces)``: ``(write,
    size)``, ``write(out)`` writing it to ``out`` (``write``, ``tell`` and ``patch(offset,
    bytes)``, as ``writer._WriteBehind`` and ``_Bytes`` have).  Each member's CRC-32 is taken
    as its bytes are written, a piece at a time while the piece is in the cache, and written
    into the member's header once known; ZIP64 records go where a size or an offset needs
    them."""
    t = datetime.datetime.now()
    dos_time = t.hour << 11 | t.minute << 5 | t.second // 2
    dos_date = (max(t.year, 1980) - 1980) << 9 | t.month << 5 | t.day
    members = [(name.encode("utf8"), [memoryview(p).cast("B") for p in pieces]) for name, pieces in members]
    sizes = [sum(len(p) for p in pieces) for _, pieces in members]

    def local_header(raw, size, crc):
        big = size >= _ZIP64_FROM
        extra = struct.pack("<HHQQ", 1, 16, size, size) if big else b""
        field = _ZIP32 if big else size
        return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45 if big else 20, 0, 0, dos_time, dos_date, crc,
                           field, field, len(raw), len(extra)) + raw + extra

    def directory(central, start):
        out = []
        for raw, size, crc, offset in central:
            big_size, big_offset = size >= _ZIP64_FROM, offset >= _ZIP64_FROM
            vals = ([size, size] if big_size else []) + ([offset] if big_offset else [])   # the spec's order
            extra = struct.pack(f"<HH{len(vals)}Q", 1, 8 * len(vals), *vals) if vals else b""
            version = 45 if vals else 20
            field = _ZIP32 if big_size else size
            out.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 3 << 8 | version, version, 0, 0,
                                   dos_time, dos_date, crc, field, field, len(raw), len(extra), 0, 0, 0,
                                   0o644 << 16, _ZIP32 if big_offset else offset) + raw + extra)
        n, cd_size = len(central), sum(len(r) for r in out)
        end = start + cd_size
        big = start >= _ZIP64_FROM or cd_size >= _ZIP64_FROM
        if big:
            out.append(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, cd_size, start))
            out.append(struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1))
        out.append(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, _ZIP32 if big else cd_size,
                               _ZIP32 if big else start, 0))
        return b"".join(out)

    def write(out):
        central = []
        for (raw, pieces), size in zip(members, sizes):
            offset = out.tell()
            out.write(local_header(raw, size, 0))
            crc = 0
            for p in pieces:
                crc = out.write(p, crc)
            out.patch(offset + 14, struct.pack("<I", crc))
            central.append((raw, size, crc, offset))
        out.write(directory(central, out.tell()))

    pos, central = 0, []
    for (raw, _), size in zip(members, sizes):
        central.append((raw, size, 0, pos))
        pos += len(local_header(raw, size, 0)) + size
    return write, pos + len(directory(central, pos))


_CRC_PIECE = 256 << 10   # bytes of a member checksummed, then written, at a time


class _Bytes:
    """A file in memory for ``_stored_zip``: its bytes, grown by ``write`` (which continues a
    zip CRC-32 over them when given one, as ``writer._WriteBehind.write`` does)."""

    def __init__(self):
        self.buf = bytearray()

    def write(self, data, crc=None):
        for piece, crc in _pieces(memoryview(data).cast("B"), _CRC_PIECE, crc):
            self.buf += piece
        return crc

    def tell(self):
        return len(self.buf)

    def patch(self, offset, data):
        self.buf[offset:offset + len(data)] = data


def keras_bytes(model, include_optimizer=True):
    """The bytes of the ``.keras`` file of ``model``."""
    out = _Bytes()
    _write_keras(model, include_optimizer)[0](out)
    return bytes(out.buf)


def save_keras(model, filepath, overwrite=True, include_optimizer=True):
    write, size = _write_keras(model, include_optimizer)
    _atomic(filepath, write, overwrite, size)


def _unset_vector(n, dtype):
    """The loaded model's weight vector, its values unset: the loader writes every weight from
    the file (or the load fails), so no page of it is written twice (``_build`` zeroes the
    alignment padding between the weights)."""
    return np.empty(n, dtype=dtype)


def _build(kind, config, room=None):
    """A fastmlp model, laid out but not attached, from fastmlp's config; ``room``: the bytes of
    the file's weights and config, which must hold at least a byte per parameter (checked before
    the parameters are allocated: a small file may ask for a Dense(10**12))."""
    cls = registry.model_class(kind)
    with deferred_weights():
        model = cls.from_config(config)
    if not model.built:
        _fail("the model has no fixed input shape (a Keras model saved before it was built)")
    if room is not None and model._n_params > room:
        _fail(f"the config asks for {model._n_params} parameters, more than the file's {room} bytes of "
              f"weights and config could hold")
    params = _unset_vector(max(model._n_params, 1), model._dtype)
    end = 0
    for ref in sorted(model._plan.weights, key=lambda r: r.offset):   # the padding: zeros, as in any model
        params[end:ref.offset] = 0
        end = max(end, ref.offset + ref.size)
    params[end:] = 0
    model._attach(params)
    for ref in model._plan.weights:   # config values (Keras has no variables for them): from the config
        if ref.spec.constant:
            getattr(ref.layer, ref.spec.name)[...] = _initial_value(ref.spec, model._dtype)
    return model


def _refuse_tf2_differences(entry, where):
    """What tf.keras 2 computes otherwise than Keras 3, which fastmlp runs, is refused rather
    than predicting otherwise: its hard_sigmoid is ``clip(0.2 * x + 0.5, 0, 1)`` (Keras 3's
    ``clip(x / 6 + 0.5, 0, 1)``: up to 0.067 apart), and its UnitNormalization floors the squared
    norm at 1e-12 (Keras 3 the norm: rows of norm below 1e-6 differ)."""
    def walk(e):
        if isinstance(e, dict):
            config = e.get("config")
            if isinstance(config, dict) and config.get("activation") == "hard_sigmoid":
                raise keras_config.KerasConfigError(
                    f"{where}: layer {config.get('name')!r} ({e.get('class_name')}) uses tf.keras 2's hard_sigmoid, "
                    f"clip(0.2 * x + 0.5, 0, 1); fastmlp's (Keras 3's) is clip(x / 6 + 0.5, 0, 1)")
            if isinstance(config, dict) and e.get("class_name") == "UnitNormalization":
                raise keras_config.KerasConfigError(
                    f"{where}: layer {config.get('name')!r} (UnitNormalization) is tf.keras 2's, which floors the "
                    f"squared norm at 1e-12; fastmlp's (Keras 3's) floors the norm at 1e-12")
            for v in e.values():
                walk(v)
        elif isinstance(e, list):
            for v in e:
                walk(v)
    walk(entry.get("config"))


def _model_from_entry(entry, compile, where, tf2=False, room=None):
    """The model of a Keras file's config ``entry``, compiled by its compile config when
    ``compile``.  ``tf2``: a tf.keras 2.x file, whose per-output metrics carry their output's
    name already (``reg_mae``), which fastmlp adds itself as Keras 3 does."""
    if tf2:
        _refuse_tf2_differences(entry, where)
    try:
        model = keras_config.model_from_keras_config(entry, functools.partial(_build, room=room))
    except keras_config.KerasConfigError as e:
        raise keras_config.KerasConfigError(f"{where}: {e}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, NotImplementedError) as e:
        raise keras_config.KerasConfigError(f"{where}: cannot rebuild the model from its Keras config: {e}") \
            from None
    cc = entry.get("compile_config")
    if compile and cc:
        try:
            args = keras_config.compile_args_from_keras(cc)
            for key in ("metrics", "weighted_metrics"):   # tf.keras 2.x: one list per output
                value = args.get(key)
                if not (isinstance(value, list) and value and all(isinstance(v, list) for v in value)):
                    continue
                value = [[m for m in v if m is not None] for v in value]   # (None: an output without)
                if tf2 and len(value) == len(model.outputs) > 1:
                    for out, v in zip(model.output_names, value):
                        for m in v:
                            if not isinstance(m, str) and m.name.startswith(out + "_"):
                                m.name = m.name[len(out) + 1:]
                args[key] = value[0] if len(model.outputs) == 1 and len(value) == 1 else value
            model.compile(**args)
        except (TypeError, ValueError, KeyError) as e:
            raise keras_config.KerasConfigError(f"{where}: cannot compile the model as the file says ({e}); "
                                                f"load it with compile=False for inference") from None
    return model


def _stored_member(z, name):
    """(start, size) of a stored (uncompressed) zip member's bytes in the archive."""
    info = z.getinfo(name)
    fp = z.fp
    fp.seek(info.header_offset)
    header = fp.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        _fail(f"{z.filename}: the zip entry of {name} is damaged")
    start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + \
        int.from_bytes(header[28:30], "little")
    return start, info.file_size


class _ReadAhead:
    """The weights member of an open ``.keras`` archive, read and its CRC-32 taken on a thread
    of its own (C, without the interpreter: ``_engine.start_read``, on its own duplicate of the
    archive's descriptor) from the moment the archive is open.  Meanwhile this thread rebuilds
    the model from its config, then walks the weights file as its bytes arrive (``fetch``: the
    structure and the layers' weights come first in Keras's files), so the weights are copied
    while the optimizer's slots behind them are still being read; when it has to wait, it
    reads the pieces the job's thread has not taken yet itself.  The buffer comes from the C
    allocator (``_engine.memory``): in the huge pages numpy asks for, the loading thread waited
    0.15-0.5 ms a load for the job's first bytes in ``benchmarks/bench_keras_file.py`` (the
    kernel finding and clearing a huge page at each first touch).  Only a stored member of at
    most ``_READ_AHEAD_MAX`` bytes lying inside the file is read so (what is allocated is
    bounded by the file's size before the model's own limit is known); else ``job`` is None
    and the member is read as usual.  ``check`` when done with the bytes (the count read and
    the CRC), ``close`` in any case before the archive closes."""

    def __init__(self, z, name, where):
        self.job = None
        self.name, self.where, info = name, where, z.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > _READ_AHEAD_MAX or not hasattr(os, "pread"):
            return   # (no POSIX reads: _engine.start_read has none either)
        try:
            fd = z.fp.fileno()
            start, size = _stored_member(z, name)
            if start + size > os.fstat(fd).st_size:
                return   # truncated: the usual read says so
            self.data, self.crc = np.frombuffer(_engine.memory(size), np.uint8), info.CRC
            fd = os.dup(fd)   # the job's own: never another file's, whatever happens to the archive's
        except (AttributeError, OSError, io.UnsupportedOperation):
            return
        try:
            self.job = _engine.start_read(fd, self.data, start)
        except OSError:
            os.close(fd)   # (no thread to be had: the member is read as usual)

    def fetch(self, offset, n):
        """Wait until bytes ``offset:offset + n`` are read (``H5Index``'s fetch); the count read
        so far (from the start, in order)."""
        job = self.job
        have = job.have
        if offset + n > have:
            have = job.wait(offset + n)
            if have < offset + n:
                self.check()   # the read ended short: why
                _fail(f"{self.where}: {self.name} is truncated")
        return have

    def check(self):
        """Wait for the whole read; the bytes must be all there, with the zip directory's CRC-32."""
        got, crc = self.job.finish()   # (an OSError as any read error of the file)
        if got != len(self.data):
            _fail(f"{self.where}: {self.name} is truncated")
        if crc != self.crc:
            _fail(f"{self.where}: {self.name} is damaged (its CRC-32 does not match the zip directory's)")

    def close(self):
        """Stop and wait for the read if it is still going (never left reading a file about to
        be closed, nor into memory about to be freed)."""
        job, self.job = self.job, None
        if job is not None:
            try:
                job.finish(cancel=True)
            except OSError:
                pass   # (the load is failing already, or has checked the read)


def _keras_weights(z, where, verify, model, filepath, scratch=True, ahead=None):
    """The ``_H5Image`` of an open ``.keras`` archive's weights, read whole: a compressed member
    through zipfile (which checks its CRC-32); a stored one -- what Keras writes -- in 1 MiB
    pieces, the CRC-32 of each taken while it is in the cache (with ``verify``).  The member may
    not declare more than ``model``'s weights and optimizer slots could fill, in float64.

    With ``scratch`` (``load_model(verify=False)``; the caller holds ``_SCRATCH_LOCK`` and is
    done with the image before it lets go) a member of up to ``_SCRATCH_MAX`` bytes is read into
    a buffer kept for the next load, so a load does not pay the kernel for fresh pages; only
    what the load uses is read into it (``_Fetched``: the file's structure and the weights,
    not the optimizer's slots); and the slots are read when training starts (``reopen``), from
    the file, which must still be the one loaded: its member's CRC-32, checked then, must be
    the one the zip directory gave at load.  Otherwise the image owns its bytes and the slots
    come from them."""
    name = "model.weights.h5"
    info = _member(z, name, where, limit=_weights_limit(model))
    if info.compress_type != zipfile.ZIP_STORED:   # zipfile checks the CRC of what it inflates
        return _H5Image(z.read(name), where)
    if ahead is not None and ahead.job is not None:   # being read: the caller checks it when done
        return _H5Image(ahead.data, where, fetch=ahead.fetch)
    start, size = _stored_member(z, name)
    z.fp.seek(start)
    kept = scratch and size <= _SCRATCH_MAX
    data = _scratch(size) if kept else np.empty(size, np.uint8)
    fetch = None
    if kept and not verify and hasattr(os, "preadv"):   # only what the load uses is read: the structure, the weights
        try:
            fetch = _Fetched(z.fp.fileno(), start, data, f"{where}: {name}")
        except (AttributeError, OSError, io.UnsupportedOperation):
            pass
    view, crc, pos = memoryview(data), 0, 0
    check = verify or not scratch   # the second read (the slots, see reopen) always checks
    while pos < size and fetch is None:
        got = z.fp.readinto(view[pos:pos + _READ_PIECE])
        if not got:
            _fail(f"{where}: {name} is truncated")
        if check:
            crc = _zip_crc32(view[pos:pos + got], crc)
        pos += got
    if check and crc != info.CRC:
        _fail(f"{where}: {name} is damaged (its CRC-32 does not match the zip directory's)")
    if not kept:   # the image owns its bytes: the slots are read from them
        return _H5Image(data, where)
    loaded_crc = info.CRC

    def reopen():
        with _open_zip(filepath, where) as again:
            other = _keras_weights(again, where, True, model, filepath, scratch=False)
            if again.getinfo(name).CRC != loaded_crc:
                other.__exit__()
                _fail(f"{where} changed after it was loaded: the optimizer state it held then can no longer be "
                      f"read (load the model again)")
            return other
    return _H5Image(data, where, reopen=reopen, fetch=fetch)


class _Fetched:
    """A stored zip member read into ``buf`` (its size) as parts of it are first needed --
    ``fetch(offset, n)`` -- a block of ``_BLOCK`` bytes at a time, each block read once, so
    what is never asked for (the optimizer's slots, when a model is loaded for inference)
    is never read."""

    def __init__(self, fd, start, buf, what):
        self.fd, self.start, self.buf, self.what = fd, start, buf, what
        self.size = len(buf)
        self.have = bytearray((self.size + _BLOCK - 1) // _BLOCK)   # 1: the block is read

    def __call__(self, offset, n):
        if n <= 0 or n <= _BLOCK and self.have[offset // _BLOCK] and self.have[(offset + n - 1) // _BLOCK]:
            return   # (the index asks for a few bytes hundreds of times, almost always read already)
        first, end = offset // _BLOCK, (offset + n - 1) // _BLOCK + 1
        i = self.have.find(0, first, end)
        while i >= 0:
            j = self.have.find(1, i, end)
            j = end if j < 0 else j
            lo, hi = i * _BLOCK, min(j * _BLOCK, self.size)
            got = os.preadv(self.fd, [memoryview(self.buf)[lo:hi]], self.start + lo)
            if got != hi - lo:
                _fail(f"{self.what} is truncated")
            self.have[i:j] = b"\1" * (j - i)
            i = self.have.find(0, j, end)


    def read_into(self, offset, dest):
        """Read ``dest.nbytes`` bytes at ``offset`` straight into ``dest`` (a contiguous array)."""
        view = memoryview(dest.reshape(-1)).cast("B")
        if offset + len(view) > self.size or os.preadv(self.fd, [view], self.start + offset) != len(view):
            _fail(f"{self.what} is truncated")


_BLOCK = 4096


_READ_PIECE = 1 << 20
_READ_AHEAD_MAX = 64 << 20   # members up to this size are read ahead (before the model's own limit is known)
_SCRATCH_MAX = 256 << 20   # members up to this size are read into the kept buffer
_SCRATCH = [np.empty(0, np.uint8)]
_SCRATCH_LOCK = threading.Lock()


def _scratch(size):
    """The kept read buffer, at least ``size`` bytes (the caller holds ``_SCRATCH_LOCK``)."""
    if len(_SCRATCH[0]) < size:
        _SCRATCH[0] = np.empty(size + size // 4, np.uint8)
    return _SCRATCH[0][:size]


def _room(z, filepath):
    """The bytes a ``.keras`` file's weights and config can hold, for ``_build``: what its
    directory says, but no more than the archive's size allows (a stored member is at most the
    archive, a deflated one 1032 times it): the directory is the file's own claim."""
    size = os.path.getsize(filepath)
    room = 0
    for name in ("model.weights.h5", "config.json"):
        info = z.getinfo(name)
        room += min(info.file_size, size * (1 if info.compress_type == zipfile.ZIP_STORED else 1032))
    return room


def _written_by_tf2(read):
    """Whether a ``metadata.json`` (its bytes from ``read()``) says tf.keras 2.x wrote the model.
    Keras itself never reads it: a damaged or missing one only leaves the version unknown."""
    try:
        meta = json.loads(read())
    except (ValueError, UnicodeError, RecursionError, zipfile.BadZipFile, zlib.error, EOFError, OSError,
            keras_config.FormatError):
        return False
    return isinstance(meta, dict) and str(meta.get("keras_version", "")).startswith("2.")


def _keras_config(z, where):
    return _config_json(z.read(_member(z, "config.json", where, limit=_MAX_CONFIG)), where)


def _config_json(raw, where):
    """The model entry a ``config.json``'s bytes hold (a .keras file's or a model folder's)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeError, RecursionError) as e:
        _fail(f"{where}: config.json is not valid JSON ({type(e).__name__}: {e})")


def _weights_limit(model):
    """The most bytes a weights file of ``model`` may hold: its weights and optimizer slots in
    float64, and room for the file's structure."""
    return 32 * model._n_params + (4 << 20)


def load_keras(filepath, compile=True, verify=True):
    """A fastmlp model from a Keras 3 ``.keras`` file (``verify``: check the zip's CRC-32s)."""
    where = os.fsdecode(os.fspath(filepath))
    with _open_zip(filepath, where) as z, _reading(where):
        names = set(z.namelist())
        if "config.json" not in names or "model.weights.h5" not in names:
            _fail(f"{where}: a .keras file holds config.json and model.weights.h5; this one has {sorted(names)[:8]}")
        # the default load reads the weights member whole, on a thread of its own meanwhile
        ahead = _ReadAhead(z, "model.weights.h5", where) if verify else None
        try:
            entry = _keras_config(z, where)
            model = _model_from_entry(entry, compile, where, tf2=_written_by_tf2(lambda: z.read(_member(z, "metadata.json", where, limit=1 << 20))), room=_room(z, filepath))
            if verify:   # the bytes are read into memory and kept: the file may change from now on
                with _keras_weights(z, where, True, model, filepath, scratch=False, ahead=ahead) as img:
                    _read_weights(model, img, where)
                if ahead.job is not None:
                    ahead.check()   # the whole member, with its CRC-32, before the model is given
            else:   # as .fmlp's verify=False: the optimizer state is read when training starts
                with _SCRATCH_LOCK, _keras_weights(z, where, False, model, filepath) as img:
                    _read_weights(model, img, where)
        finally:
            if ahead is not None:
                ahead.close()
    return model


# ---------------------------------------------------------------------------- unzipped (a folder)
def is_keras_dir(filepath):
    """Whether ``filepath`` is a folder holding a Keras model's ``config.json``: what Keras 3's
    ``model.save(path, zipped=False)`` writes, and its ``load_model`` reads."""
    try:
        path = os.fsdecode(os.fspath(filepath))
        return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))
    except (TypeError, ValueError):
        return False


def save_keras_dir(model, dirpath, overwrite=True, include_optimizer=True):
    """Keras 3's unzipped model (``model.save(path, zipped=False)``): the folder ``dirpath``
    holding the ``.keras`` file's three members as files.  Each file is written atomically, the
    weights first; a reader that comes between two of them may find the new weights beside the
    old config.json (as with Keras)."""
    where = os.fsdecode(os.fspath(dirpath))
    if where.lower().endswith(".keras"):
        raise ValueError(f"When using `zipped=False`, the `filepath` argument should not end in `.keras`. "
                         f"Received: filepath={where}")
    if not overwrite and os.path.lexists(where):
        raise FileExistsError(f"{where} exists and overwrite=False")
    meta, config, weights = _keras_members(model, include_optimizer)
    os.makedirs(where, exist_ok=True)   # (a file there: FileExistsError)
    _atomic(os.path.join(where, "model.weights.h5"), weights.write_to, True, weights.nbytes)
    _atomic(os.path.join(where, "config.json"), config, True)
    _atomic(os.path.join(where, "metadata.json"), meta, True)


def _file_bytes(path, where, limit):
    """The bytes of the file ``path`` of a Keras folder, refused past ``limit`` bytes."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            _fail(f"{where}: {os.path.basename(path)} holds {size} bytes, more than a Keras model of this "
                  f"size can")
        data = fh.read(limit + 1)
    if len(data) > limit:
        _fail(f"{where}: {os.path.basename(path)} grew past {limit} bytes while being read")
    return data


def load_keras_dir(dirpath, compile=True):
    """A fastmlp model from Keras 3's unzipped model folder (``config.json``, ``model.weights.h5``;
    the files are read whole into memory: a folder has no checksums to verify).  A file that
    cannot be opened keeps its OSError; what its bytes hold is checked as in a ``.keras`` file."""
    where = os.fsdecode(os.fspath(dirpath))
    raw = _file_bytes(os.path.join(where, "config.json"), where, _MAX_CONFIG)
    weights = os.path.join(where, "model.weights.h5")
    with _reading(where):
        entry = _config_json(raw, where)
        if not os.path.isfile(weights):
            _fail(f"{where}: a Keras model folder holds config.json and model.weights.h5; this one has no "
                  f"model.weights.h5")
        tf2 = _written_by_tf2(lambda: _file_bytes(os.path.join(where, "metadata.json"), where, 1 << 20))
        model = _model_from_entry(entry, compile, where, tf2=tf2, room=len(raw) + os.path.getsize(weights))
    data = _file_bytes(weights, where, _weights_limit(model))
    with _reading(where), _H5Image(data, where) as img:
        _read_weights(model, img, where)
    return model


# ---------------------------------------------------------------------------- .weights.h5
def save_weights_h5(model, filepath, overwrite=True):
    """Keras 3's ``.weights.h5`` (the layers' variables, and the optimizer's when compiled)."""
    _require_built(model)
    weights = _weights_h5(model, True)
    _atomic(filepath, weights.write_to, overwrite, weights.nbytes)


def load_weights(model, filepath, skip_mismatch=False):
    """Set ``model``'s weights from a ``.keras``, ``.weights.h5`` or legacy ``.h5`` file
    (``skip_mismatch``: Keras 3's layouts only, see ``_read_weights``)."""
    where = os.fsdecode(os.fspath(filepath))
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built yet: build it before load_weights({where!r})")
    model._ensure_attached()
    if format_of(filepath) == "keras":
        with _open_zip(filepath, where) as z, _reading(where), \
                _keras_weights(z, where, True, model, filepath, scratch=False) as img:
            _read_weights(model, img, where, "built", skip_mismatch)
        return
    data = _read_bytes(filepath)
    with _reading(where), _H5Image(data, where) as img:
        if set(img.members("") or ()) in ({"layers", "vars"}, {"layers", "vars", "optimizer"}):
            _read_weights(model, img, where, "built", skip_mismatch)
            return
        f = img.root()
        if "layer_names" in f.attrs or "model_weights" in f:
            if skip_mismatch:
                raise NotImplementedError(f"load_weights(skip_mismatch=True) of a legacy Keras HDF5 file ({where}) is "
                                          f"not supported by fastmlp: Keras 3's .weights.h5 and .keras files are")
            _read_legacy_weights(model, f.get("model_weights", f), where)
        else:
            _read_weights(model, img, where, "built", skip_mismatch)


# ---------------------------------------------------------------------------- legacy HDF5 models
def _legacy_layer_entry(entry):
    """A fastmlp/Keras 3 layer entry in tf.keras 2.x's form (what both Keras 3 and tf.keras 2 read)."""
    class_name, config = entry["class_name"], dict(entry["config"])
    if class_name in ("Sequential", "Functional"):
        config = _legacy_model_config(class_name, config)
        if class_name == "Sequential" and "inbound_nodes" in entry:
            # a Sequential called in a functional model, without its InputLayer: built by that call.
            # tf.keras 2 numbers the calls of a nested model that has one from 1 (node 0 links its
            # own input to its output), Keras 3 from 0; without it, both read the calls from 0.
            config["layers"] = [e for e in config["layers"] if e["class_name"] != "InputLayer"]
    elif class_name == "InputLayer":
        config["batch_input_shape"] = config.pop("batch_shape")
    elif class_name == "LeakyReLU":   # tf.keras 2's name for the slope (Keras 3 reads it too)
        config["alpha"] = config.pop("negative_slope")
    elif class_name == "LayerNormalization" and not config.get("rms_scaling", False):
        config.pop("rms_scaling", None)   # (Keras 3's, off by default there; tf.keras 2 has no such argument)
    if "quantization_config" in config and config["quantization_config"] is None:
        del config["quantization_config"]   # (Keras 3's, None by default there; tf.keras 2 refuses the name)
    out = {"class_name": class_name, "config": config}
    if "inbound_nodes" in entry:
        out["name"] = entry["name"]
        nodes = []
        for node in entry["inbound_nodes"]:
            arg = node["args"][0]
            tensors = arg if isinstance(arg, list) else [arg]
            nodes.append([list(t["config"]["keras_history"]) + [{}] for t in tensors])
        out["inbound_nodes"] = nodes
    return out


def _legacy_model_config(class_name, config):
    config = dict(config)
    config["layers"] = [_legacy_layer_entry(e) for e in config["layers"]]
    return config   # (one input or output stays one reference, as Keras 3 writes it: a list of one would
    #                  make a nested model's output a list, which the layer after it cannot take)


def _model_weights(layer):
    if getattr(layer, "_is_model", False):
        return [(f"{ref.path}/{ref.spec.name}:0", getattr(ref.layer, ref.spec.name))
                for ref in layer._plan.weights if not ref.spec.constant]
    return [(f"{layer.name}/{s.name}:0", a) for s, a in zip(layer._wspecs, _layer_arrays(layer))]


def _write_legacy_weights(model, g):
    layers = list(model.layers)
    g.attrs["layer_names"] = np.array([layer.name.encode("utf8") for layer in layers])
    g.attrs["backend"] = "fastmlp"
    g.attrs["keras_version"] = _KERAS_VERSION
    for layer in layers:
        lg = g.create_group(layer.name)
        weights = _model_weights(layer)
        lg.attrs["weight_names"] = np.array([n.encode("utf8") for n, _ in weights]) if weights \
            else np.zeros((0,), "S1")
        for name, a in weights:
            lg.create_dataset(name, data=np.asarray(a))


def save_legacy_weights(model, filepath, overwrite=True):
    """A legacy Keras weights file (``layer_names``, ``weight_names``), as tf.keras 2.x wrote for ``.h5``."""
    _require_built(model)
    _atomic(filepath, _h5_bytes(lambda f: _write_legacy_weights(model, f)), overwrite)


def h5_bytes(model, include_optimizer=True):
    _require_built(model)
    class_name = "Sequential" if type(model).__name__ == "Sequential" else "Functional"
    config = _legacy_model_config(class_name, model.get_config())

    def write(f):
        f.attrs["backend"] = "fastmlp"
        f.attrs["keras_version"] = _KERAS_VERSION
        f.attrs["model_config"] = json.dumps({"class_name": class_name, "config": config})
        _write_legacy_weights(model, f.create_group("model_weights"))
        if model.compiled:
            cc = keras_config.compile_config_to_keras(model)
            opt = cc.pop("optimizer")
            # "Custom>Adam": how tf.keras 2.11+ names its optimizers here (a plain "Adam" makes it build
            # the legacy optimizer, which refuses Keras 3's config); Keras 3 and fastmlp read both
            cc["optimizer_config"] = {"class_name": "Custom>" + opt["class_name"], "config": opt["config"]}
            f.attrs["training_config"] = json.dumps(cc)
            if include_optimizer:
                g = f.create_group("optimizer_weights")
                prefix = model.optimizer.name
                values = _optimizer_values(model)
                names = [f"{prefix}/{n}" for n, _ in values]
                g.attrs["weight_names"] = np.array([n.encode("utf8") for n in names])
                for name, (_, a) in zip(names, values):
                    g.create_dataset(name, data=a)
    return _h5_bytes(write)


def save_h5(model, filepath, overwrite=True, include_optimizer=True):
    """A legacy Keras HDF5 model file."""
    _atomic(filepath, h5_bytes(model, include_optimizer), overwrite)


def _attr_json(f, key, where):
    raw = f.attrs.get(key)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf8")
    try:
        return json.loads(raw)
    except ValueError as e:
        _fail(f"{where}: the {key!r} attribute is not valid JSON ({e})")


def _names(attr):
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in np.asarray(attr).reshape(-1)]


def _read_legacy_weights(model, g, where):
    """Layers with weights matched in order, as Keras's legacy loader does."""
    names = _names(g.attrs.get("layer_names", []))
    stored = []
    for name in names:
        lg = g[name]
        wnames = _names(lg.attrs.get("weight_names", []))
        if wnames:
            stored.append((name, [_h5_array(lg[w], where, model._n_params) for w in wnames]))
    targets = [layer for layer in model.layers if layer.weights]
    if len(stored) != len(targets):
        _fail(f"{where}: the file holds weights for {len(stored)} layers ({[n for n, _ in stored][:8]}), the "
              f"model has {len(targets)} layers with weights ({[t.name for t in targets][:8]})")
    writes = []   # (layer, weight name, array): every layer checked before any is written
    for layer, (name, arrays) in zip(targets, stored):
        if getattr(layer, "_is_model", False):
            refs = [ref for ref in layer._plan.weights if not ref.spec.constant]
            if len(refs) != len(arrays):
                _fail(f"{where}: nested model {layer.name!r} has {len(refs)} weights, the file's {name!r} "
                      f"holds {len(arrays)}")
            for ref, a in zip(refs, arrays):
                if tuple(a.shape) != ref.shape:
                    _fail(f"{where}: weight {ref.name} has shape {tuple(a.shape)} in the file, the model "
                          f"expects {ref.shape}")
                writes.append((ref.layer, ref.spec.name, a))
        else:
            specs, arrays = _checked_layer(layer, arrays, where)
            writes += [(layer, spec.name, a) for spec, a in zip(specs, arrays)]
    for layer, name, a in writes:
        getattr(layer, name)[...] = a
    model._ensure_attached()   # (a nested model's weights went to its own vector: the model's gets them now)


# tf.keras 2.x optimizer slot names -> fastmlp's: the legacy optimizers' (before TF 2.11: "rms",
# "mg", "accum_grad", ...) and the new ones' (2.11 on: "velocity", "average_gradient", ...), with
# the per-class meanings of a shared name ("m" is SGD's momentum; legacy Adamax kept "u" as "v")
_TF2_SLOTS = {"m": "m", "v": "v", "vhat": "v_hat", "velocity_hat": "v_hat", "u": "u", "momentum": "momentum",
              "rms": "velocity", "velocity": "velocity", "mg": "average_gradient",
              "average_gradient": "average_gradient", "accumulator": "accumulator", "accum_grad": "accumulated_grad",
              "accumulated_grad": "accumulated_grad", "accum_var": "accumulated_delta_var",
              "accumulated_delta_var": "accumulated_delta_var"}
_TF2_CLASS_SLOTS = {"SGD": {"m": "momentum"}, "Adamax": {"v": "u"}}


def _restore_tf2_optimizer(model, g, where):
    """tf.keras 2.x optimizer weights (``Adam/iter:0``, ``Adam/dense/kernel/m:0``, ...) by name."""
    opt = model.optimizer
    names = _names(g.attrs.get("weight_names", []))
    trainable = _trainable_refs(model)
    refs = {ref.name: ref for ref in trainable}
    # tf.keras 2 names a nested model's variables without the model's name ("dense/kernel" for
    # "inner/dense/kernel"): those names too, where they name one weight
    short_names = {}
    for ref in trainable:
        short_names.setdefault(f"{ref.layer.name}/{ref.spec.name}", []).append(ref)
    for short, found in short_names.items():
        if len(found) == 1 and short not in refs:
            refs[short] = found[0]
    frozen = {n for ref in model._plan.weights if not ref.trainable
              for n in (ref.name, f"{ref.layer.name}/{ref.spec.name}")}   # (slots kept from before a freeze)
    segments = []
    for name in names:
        a = _h5_array(g[name], where, model._n_params)
        short = name.split("/", 1)[-1].rsplit(":", 1)[0]
        if short in ("iter", "iteration", "iterations"):
            opt.iterations = int(a)
            continue
        if short in ("u_product", "momentum_cache") and type(opt).__name__ == "Nadam" and a.size == 1:
            # the running product of the momentum schedule (legacy OptimizerV2 calls it momentum_cache)
            opt._u_product = float(a.reshape(()))
            continue
        head, _, slot = short.rpartition("/")
        first, _, rest = short.partition("/")
        if slot in _TF2_SLOTS and head in refs:
            var, slot = head, _TF2_SLOTS[slot]
        elif first in _TF2_SLOTS and rest in refs:
            var, slot = rest, _TF2_SLOTS[first]
        elif (slot in _TF2_SLOTS and head in frozen) or (first in _TF2_SLOTS and rest in frozen):
            continue   # a layer frozen after training: its slots are not used (tf.keras 2 keeps them)
        elif "/" in short:   # a slot of a weight this model does not have: its state cannot be restored
            _fail(f"{where}: the optimizer weight {name!r} names no weight of the model")
        else:
            continue   # learning_rate, decay, momentum_cache: hyperparameters the config already has
        slot = _TF2_CLASS_SLOTS.get(type(opt).__name__, {}).get(slot, slot)
        if slot == "momentum" and type(opt).__name__ == "SGD" and not opt.slot_names:
            continue   # tf.keras 2.11+ keeps an unused momentum for SGD(momentum=0)
        if slot not in opt.slot_names or tuple(a.shape) != refs[var].shape:
            _fail(f"{where}: the optimizer weight {name!r} does not fit the model's {type(opt).__name__}")
        segments.append((opt.slot_names.index(slot), refs[var].offset, np.asarray(a, dtype=model._dtype)))
    if segments:
        opt._defer_slots(model._n_params, model._dtype, segments)
        opt._owner = id(model)


def load_h5(filepath, compile=True):
    """A fastmlp model from a legacy HDF5 model file (Keras 3 or tf.keras 2.x)."""
    where = os.fsdecode(os.fspath(filepath))
    data = _read_bytes(filepath)
    with _reading(where), _H5Image(data, where) as img:
        f = img.root()
        config = _attr_json(f, "model_config", where)
        if config is None:
            _fail(f"{where}: no 'model_config' attribute: this HDF5 file holds weights only (use "
                  f"model.load_weights)")
        entry = dict(config)
        training = _attr_json(f, "training_config", where)
        if training:
            entry["compile_config"] = training
        version = f.attrs.get("keras_version", b"")
        version = version.decode() if isinstance(version, bytes) else str(version)
        model = _model_from_entry(entry, compile, where, tf2=version.startswith("2."), room=len(data))
        if model.compiled:
            model.optimizer._loaded = True
        _read_legacy_weights(model, f["model_weights"] if "model_weights" in f else f, where)
        if compile and model.compiled and "optimizer_weights" in f:
            g = f["optimizer_weights"]
            if version.startswith("2."):
                _restore_tf2_optimizer(model, g, where)
            else:
                arrays = [_h5_array(g[n], where, model._n_params) for n in _names(g.attrs.get("weight_names", []))]
                _restore_optimizer(model, len(arrays), arrays.__getitem__, where)
    return model
