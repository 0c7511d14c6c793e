"""Writing model files: the bytes of a model (on its plan) and atomic saves."""
import errno
import json
import math
import os
import stat
import struct
import sys
import tempfile
import zlib

import numpy as np

from .. import _engine
from .format import (ALIGN, BYTE_ORDER_MARK, DTYPES, FLAG_TRAINING, FORMAT_VERSION, HEADER_CAP, MAGIC, PREAMBLE,
                     PREAMBLE_SIZE, _LITTLE, _align, _quantize_int8, _to_bfloat16)

__all__ = ["model_to_bytes", "save_model", "save_weights"]


def _json_dumps(obj):
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (TypeError, ValueError) as e:
        raise ValueError(f"The model's configuration cannot be saved as JSON: {e}") from None


# ---------------------------------------------------------------------------- writer


def _table(entries, offsets):
    table = []
    for (name, dt, arr, extra), off in zip(entries, offsets):
        t = {"name": name, "dtype": dt, "shape": list(arr.shape), "offset": int(off),
             "length": int(arr.nbytes)}
        if extra:
            t.update(extra)
        table.append(t)
    length = _align(offsets[-1] + entries[-1][2].nbytes) if entries else 0
    return table, length


def _fill(out, base, entries, offsets):
    for (_, _, arr, _), off in zip(entries, offsets):
        a = np.ascontiguousarray(arr)
        if not _LITTLE and a.dtype.byteorder not in ("<", "|"):
            a = a.astype(a.dtype.newbyteorder("<"))
        out[base + off:base + off + a.nbytes] = a.reshape(-1).view(np.uint8)


def _umask():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _fsync_dir(directory):
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _zip_crc32(data, crc=0):
    """The zip CRC-32 of a buffer (continuing ``crc``): the engine's folding where it runs, else
    zlib's."""
    if _engine.crc32_impl() == "portable":
        return zlib.crc32(data, crc)
    return _engine.crc32(data, crc=crc)


def _pieces(view, size, crc):
    """``(piece, crc)`` for each ``size``-byte piece of ``view`` in turn, the zip CRC-32 (when
    ``crc`` is not None) continued over the pieces so far, taken while the piece is in the cache."""
    for start in range(0, len(view), size):
        piece = view[start:start + size]
        if crc is not None:
            crc = _zip_crc32(piece, crc)
        yield piece, crc


_WRITE_PIECE = 256 << 10   # bytes handed to the disk at a time while a save is written


class _WriteBehind:
    """The temporary file of a save, as the writers see it (``write``, ``tell``, ``patch``): every
    ``_WRITE_PIECE`` bytes written are sent on to the disk at once, without waiting, so the
    disk works while the rest is written and the final fsync waits for the last piece only.
    (Written whole and then fsynced, an 8 MB file took 7 ms here; this way, 4.)  Where POSIX
    writes exist, each ``write`` is one call into C without the GIL (``_engine.write_behind``),
    which also takes the zip CRC-32 of what it writes when asked (``write(data, crc)``)."""

    def __init__(self, f):
        self.f, self.fd, self.pos, self.sent = f, f.fileno(), 0, 0
        self.native = hasattr(os, "pwrite")

    def write(self, data, crc=None):
        """Write ``data``; with ``crc`` (an int), return the zip CRC-32 continued over it."""
        view = memoryview(data).cast("B")
        if self.native:
            self.sent, crc = _engine.write_behind(self.fd, view, self.pos, self.sent, _WRITE_PIECE, crc)
            self.pos += len(view)
            return crc
        for piece, crc in _pieces(view, _WRITE_PIECE, crc):
            self.f.write(piece)
            self.pos += len(piece)
            if self.pos - self.sent >= _WRITE_PIECE:
                self.f.flush()
                _engine.start_writeback(self.fd, self.sent, self.pos - self.sent)
                self.sent = self.pos
        return crc

    def tell(self):
        return self.pos

    def patch(self, offset, data):
        """Write ``data`` over what was written at ``offset`` (a header filled in afterwards)."""
        if self.native:
            _engine.write_behind(self.fd, memoryview(data).cast("B"), offset, self.sent, 0)
            return
        self.f.seek(offset)
        self.f.write(data)
        self.f.seek(0, os.SEEK_END)


def proceed_with_overwrite(filepath, overwrite):
    """Whether a save with ``overwrite`` may go on, as Keras 3 decides it: always with
    ``overwrite=True`` or where nothing is at ``filepath``; otherwise the user is asked on the
    console (``[y/n]``, asked again until one of the two), and "n" cancels the save."""
    try:
        exists = os.path.exists(filepath)
    except TypeError:
        exists = False
    if overwrite or not exists:
        return True
    answer = input(f"[WARNING] {os.fspath(filepath)} already exists - overwrite? [y/n]").strip().lower()
    while answer not in ("y", "n"):
        answer = input('Enter "y" (overwrite) or "n" (cancel).').strip().lower()
    if answer == "n":
        return False
    print("[TIP] Next time specify overwrite=True!")
    return True


def _atomic_write(filepath, buf, overwrite=True, size=None):
    """Write ``buf`` to ``filepath`` through a temporary file in the same folder
    (flush, fsync, os.replace, fsync the folder): readers, including arrays
    this process has memory-mapped from the old file, never see a partial file,
    and a failed save leaves the old file as it was.  ``buf`` is the bytes, or a
    function that writes them to the (binary) file object it is given, ``size``
    bytes when known: the disk blocks are then reserved before the first write
    (a full disk fails the save at once)."""
    given = os.fspath(filepath)
    path = os.path.realpath(given)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{given!s} exists and overwrite=False")
    directory = os.path.dirname(path)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    except OSError as e:
        raise _save_error(e, given) from None
    try:
        with open(fd, "wb", closefd=True) as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            if not callable(buf):
                buf = memoryview(buf)
                size = buf.nbytes
            if size and _engine.preallocate(f.fileno(), size) == errno.ENOSPC:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            out = _WriteBehind(f)
            if callable(buf):
                buf(out)
            else:
                out.write(buf)
            f.flush()
            os.fsync(f.fileno())
            local = sys.platform.startswith("linux") and not _engine.remote_fs(f.fileno())
        old = _hold(path) if local else None
        try:
            os.replace(tmp, path)
        except BaseException:
            _release(old)
            raise
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _save_error(e, given) from None
        raise
    try:
        _fsync_dir(directory)
    finally:
        _release(old)   # (after the folder's fsync: that commit does not wait for the old file's freeing)


def _hold(path):
    """A descriptor on the regular file at ``path`` that a save is about to replace (None when
    there is none, or it cannot be opened): held across the rename, the file's last link goes
    without the kernel freeing its pages and blocks inside the rename (4 ms for 8 MB here);
    ``_release`` has that done on another thread.  Only on Linux's local file systems, where it
    was measured (the caller checks): a network file system would keep the held file under a
    "silly rename" instead."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None   # (a FIFO or a device is never opened)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)   # (still: not swapped since the stat)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        return None
    return fd


def _release(fd):
    if fd is not None:
        _engine.close_later(fd)


def _save_error(e, given):
    """The OSError of a failed save (same class and errno) naming the file the caller asked for,
    not the temporary file the save goes through."""
    folder = os.path.dirname(os.path.abspath(given))
    if e.errno == errno.ENOENT and not os.path.isdir(folder):
        why = f"its folder {folder} does not exist"
    elif os.path.isdir(given):
        why = "it is a folder"
    else:
        why = e.strerror or str(e)
    try:
        if e.errno is None:
            return type(e)(f"Cannot save the model ({why}): {given!r}")
        return type(e)(e.errno, f"Cannot save the model ({why})", given)
    except TypeError:   # an OSError subclass with another signature
        return OSError(e.errno, f"Cannot save the model ({why})", given)


def save_model(model, filepath, overwrite=True, include_optimizer=True, dtype=None):
    """Save the whole model (architecture, weights, compile config and, with
    ``include_optimizer``, the optimizer/training state) atomically.  ``dtype``
    ('float16', 'bfloat16' or 'int8') stores compact weights for inference."""
    _atomic_write(filepath, _serialize(model, include_optimizer, dtype), overwrite)


def save_weights(model, filepath, overwrite=True):
    """Save the weights (with the architecture they belong to, for validation)."""
    _atomic_write(filepath, _serialize(model, include_optimizer=False), overwrite)


# ---------------------------------------------------------------------------- the model's bytes
def _model_entry(model):
    """The architecture as written: ``{"class_name": "Sequential"|"Functional", "config"}``;
    a Sequential's ``trainable`` only when false (format 1.1; readers of 1.0 files
    default it to true), so files of trainable models keep their 1.0 bytes."""
    cfg = model.get_config()
    sequential = type(model).__name__ == "Sequential"
    if sequential and cfg.get("trainable", True):
        cfg.pop("trainable", None)
    return {"class_name": "Sequential" if sequential else "Functional", "config": cfg}


def _minor_version(model):
    """The lowest minor version whose features the file uses: 1 for a frozen
    Sequential's "trainable" key, 3 for functional models, else the layer kinds'."""
    minor = 0 if model.trainable else 1
    if type(model).__name__ != "Sequential":
        minor = 3
    stack = [model]
    while stack:
        m = stack.pop()
        for layer in m.layers:
            if getattr(layer, "_is_model", False):
                minor = 3
                stack.append(layer)
            else:
                minor = max(minor, layer.format_minor)
    return minor


def _tensor_plan(model, dtype, keep_int8=False):
    """[(name, dtype name, stored array, extra table fields)] for the weights section, in
    order, and the byte offset of each (the model's own layout at full precision).
    ``keep_int8``: the kernels of int8 layers as int8, the rest in the model's dtype."""
    store = model._dtype if dtype is None else dtype
    entries = []
    weights = model._plan.weights
    for ref in weights:
        name, shape, off = ref.name, ref.shape, ref.offset
        w = model._params[off:off + math.prod(shape)].reshape(shape)
        int8 = getattr(ref.layer, "_int8", None) if ref.spec.name == "kernel" else None
        if int8 is not None and (keep_int8 or store == "int8"):   # the layer's own int8 kernel
            entries.append((name, "int8", int8[0], {"scale": f"{name}_scale"}))
            entries.append((f"{name}_scale", "float32", int8[1], None))
        elif store in ("float32", "float64"):
            entries.append((name, store, np.asarray(w, dtype=store), None))
        elif store == "float16":
            if np.any(np.abs(w[np.isfinite(w)]) > 65504.0):
                raise ValueError(f"{name} has values outside the float16 range (|x| > 65504); "
                                 f"save with dtype='bfloat16' instead")
            entries.append((name, "float16", np.asarray(w, dtype=np.float16), None))
        elif store == "bfloat16":
            entries.append((name, "bfloat16", _to_bfloat16(w), None))
        elif ref.spec.name == "kernel":  # int8: kernels quantized per output unit
            if not np.all(np.isfinite(w)):
                raise ValueError(f"{name} has non-finite values; it cannot be stored as int8")
            q, scale = _quantize_int8(w)
            entries.append((name, "int8", q, {"scale": f"{name}_scale"}))
            entries.append((f"{name}_scale", "float32", scale, None))
        else:   # int8 files keep other weights in float32
            entries.append((name, "float32", np.asarray(w, dtype=np.float32), None))
    if store == model._dtype and not keep_int8:
        item = np.dtype(model._dtype).itemsize
        offsets = [ref.offset * item for ref in weights]
    else:
        offsets, pos = [], 0
        for _, _, arr, _ in entries:
            offsets.append(pos)
            pos = _align(pos + arr.nbytes)
    return entries, offsets


def _training_plan(model):
    opt = model.optimizer
    if not opt.built:
        opt.build(model._n_params, model._dtype)
    n = model._n_params
    slotted = [ref for ref in model._plan.weights if ref.spec.trainable]
    entries, pos, offsets = [], 0, []
    for s, slot in enumerate(opt.slot_names):
        base = opt._slots[s * n:(s + 1) * n]
        for ref in slotted:
            arr = base[ref.offset:ref.offset + ref.size].reshape(ref.shape)
            entries.append((f"optimizer/{slot}/{ref.name}", model._dtype, arr, None))
            offsets.append(pos)
            pos = _align(pos + arr.nbytes)
    state = {"iterations": int(opt.iterations), "u_product": float(opt._u_product),
             "epoch": int(model._epoch), "seed": int(model._seed), "slots": list(opt.slot_names)}
    if model._epoch_step:   # an epoch interrupted part way: the batches of it already taken (format 1.3)
        state["epoch_step"] = int(model._epoch_step)
    return entries, offsets, state


def _check_metadata(metadata):
    """Metadata must be plain JSON: an object of strings, numbers, booleans, null, lists and objects."""
    def plain(v, depth=0):
        if depth > 16:
            return False
        if v is None or isinstance(v, (str, bool, int)):
            return True
        if isinstance(v, float):
            return v == v and abs(v) != float("inf")
        if isinstance(v, (list, tuple)):
            return all(plain(x, depth + 1) for x in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x, depth + 1) for k, x in v.items())
        return False
    if not isinstance(metadata, dict) or not plain(metadata):
        raise ValueError("model metadata must be a dict of plain JSON values (str, int, float, bool, None, "
                         "lists and dicts with str keys)")
    return metadata


def model_to_bytes(model, include_optimizer=True, dtype=None):
    """The bytes of the model file for ``model`` (what ``save_model`` writes)."""
    return bytes(_serialize(model, include_optimizer, dtype))


def _serialize(model, include_optimizer=True, dtype=None):
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built yet, so it has no weights to save: "
                         f"build it (give it an input shape) or call it on data first")
    # A model with int8 layers (Model.quantize) keeps them: its int8 kernels as they are, the
    # rest at full precision (dtype=None); a dtype given names the storage of every weight.
    import fastmlp.models.quantization as quantization
    keep_int8 = dtype is None and bool(quantization.int8_layers(model))
    if dtype is not None:
        dtype = str(dtype)
        if dtype not in DTYPES:
            raise ValueError(f"`dtype` must be None, 'float32', 'float64', 'float16', 'bfloat16' "
                             f"or 'int8'. Received: dtype={dtype!r}")
        if dtype == model._dtype:
            dtype = None
    model._ensure_attached()
    entries, offsets = _tensor_plan(model, dtype, keep_int8)
    w_table, w_len = _table(entries, offsets)
    header = {"format": "fastmlp-model", "model": _model_entry(model),
              "compile": model.get_compile_config(), "tensors": w_table, "training": None}
    metadata = getattr(model, "_metadata", None)
    if metadata:   # what a model trained from a table knows of it (the command line's feature names, ...)
        header["metadata"] = _check_metadata(metadata)
    t_entries, t_len, flags = [], 0, 0
    # Training state goes only with full-precision weights: compact files are for inference.
    if include_optimizer and model.compiled and dtype is None and not keep_int8:
        t_entries, t_offsets, state = _training_plan(model)
        t_table, t_len = _table(t_entries, t_offsets)
        state["tensors"] = t_table
        header["training"] = state
        flags = FLAG_TRAINING
    hbytes = _json_dumps(header)
    if len(hbytes) > HEADER_CAP:
        raise ValueError(f"The model's header would be {len(hbytes)} bytes, over the format's cap of "
                         f"{HEADER_CAP} bytes (1 MiB): too many layers, or very long names; nothing was written")
    data_off = _align(PREAMBLE_SIZE + len(hbytes))
    total = data_off + w_len + t_len
    out = np.zeros(total, dtype=np.uint8)
    out[PREAMBLE_SIZE:PREAMBLE_SIZE + len(hbytes)] = np.frombuffer(hbytes, np.uint8)
    _fill(out, data_off, entries, offsets)
    if t_entries:
        _fill(out, data_off + w_len, t_entries, t_offsets)
    crc = _engine.crc32c
    h_crc = crc(out, PREAMBLE_SIZE, data_off - PREAMBLE_SIZE)
    w_crc = crc(out, data_off, w_len)
    t_crc = crc(out, data_off + w_len, t_len) if t_len else 0
    minor = max(_minor_version(model), 3 if header["training"] and "epoch_step" in header["training"] else 0)
    pre = PREAMBLE.pack(MAGIC, FORMAT_VERSION[0], minor, BYTE_ORDER_MARK,
                        flags, len(hbytes), w_len, t_len, h_crc, w_crc, t_crc, 0)
    pre = pre[:60] + struct.pack("<I", crc(pre[:60]))
    out[:PREAMBLE_SIZE] = np.frombuffer(pre, np.uint8)
    return out
