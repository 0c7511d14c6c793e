"""The fastmlp model file: writer, validating reader and atomic saves.

The layout is specified in ``docs/FORMAT.md``; in short::

    preamble (64 bytes) | header (JSON, <= 1 MiB) | zero padding to 64 |
    weights section | training section (optional)

The header holds the architecture as declarative config (layer kinds, sizes,
activation names, initializer and regularizer configs: never code, module
paths or pickles), the compile config and a table of tensors.  Tensors are
little-endian, C order, 64-byte aligned with zero padding, so a memory-mapped
file gives aligned arrays without a copy: a full-precision model loads as a
copy-on-write view of the file.  CRC-32C checksums (C, ``csrc/checksum.c``)
cover the preamble, the header (always verified) and each data section
(verified unless ``verify=False``).  Every size, offset and shape is checked
before any array is created; a bad file raises :class:`FormatError`.
"""
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np

from . import _engine, layers as layers_module, losses, metrics as metrics_module, optimizers
from . import config as _config
from .models import Sequential, _check_flattened, _param_plan

__all__ = ["FormatError", "save_model", "load_model", "save_weights", "load_weights",
           "model_to_bytes", "model_from_bytes", "MAGIC", "FORMAT_VERSION"]

MAGIC = b"\x89FASTMLP\r\n\x1a\n"
FORMAT_VERSION = (1, 2)   # a file says the lowest minor version whose features it uses (docs/FORMAT.md)
PREAMBLE = struct.Struct("<12sHHIIQQQIIII")   # 64 bytes
PREAMBLE_SIZE = 64
BYTE_ORDER_MARK = 0x01020304
FLAG_TRAINING = 1
HEADER_CAP = 1 << 20
ALIGN = 64
MAX_NDIM = 8
MAX_ELEMENTS = 1 << 62
# What _engine.check_preamble checks the preamble against (docs/FORMAT.md).
_PREAMBLE_RULES = (PREAMBLE_SIZE, FORMAT_VERSION[0], BYTE_ORDER_MARK, FLAG_TRAINING, HEADER_CAP, ALIGN)

# storage dtype name -> (numpy dtype of the stored values, item size)
DTYPES = {
    "float32": (np.dtype("<f4"), 4),
    "float64": (np.dtype("<f8"), 8),
    "float16": (np.dtype("<f2"), 2),
    "bfloat16": (np.dtype("<u2"), 2),
    "int8": (np.dtype("i1"), 1),
}
_ITEMSIZES = {name: size for name, (_, size) in DTYPES.items()}
COMPACT = ("float16", "bfloat16", "int8")
_LAYER_KINDS = layers_module._CLASSES   # class name -> layer class: the kinds a file may name
_LITTLE = sys.byteorder == "little"
# Bytes read with pread, not through the mapping, on load: the preamble and the
# header of most models, and the paddings that lie within them.
_HEAD_READ = 4096


class FormatError(ValueError):
    """A file (or byte string) is not a valid fastmlp model file; the message names the problem."""


def _align(n):
    return -(-n // ALIGN) * ALIGN


# ---------------------------------------------------------------------------- dtype conversion
def _to_bfloat16(a):
    """float32/float64 -> bfloat16 bits (uint16), round to nearest even; NaN stays NaN."""
    f = np.ascontiguousarray(a, dtype=np.float32)
    u = f.view(np.uint32)
    rounded = ((u + (((u >> 16) & 1) + np.uint32(0x7FFF))) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded


def _from_bfloat16(bits, dtype):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(dtype, copy=False)


def _quantize_int8(kernel):
    """Symmetric per-output-unit int8: kernel (in, out) -> (q int8, scale float32 (out,))."""
    k = np.asarray(kernel, dtype=np.float64)
    amax = np.max(np.abs(k), axis=0) if k.shape[0] else np.zeros(k.shape[1])
    scale = (amax / 127.0).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1)).astype(np.float64)
    q = np.clip(np.rint(k / safe), -127, 127).astype(np.int8)
    return q, scale


# ---------------------------------------------------------------------------- architecture
def _plan(layers, n_in, trainable_only=False):
    """[(tensor name, shape, weight kind, element offset)] in file order, and the
    flat length: the model's own layout (``models._param_plan``)."""
    plan, length = _param_plan(layers, n_in)
    return [(f"{layer.name}/{wname}", shape, wname, off)
            for layer, wname, shape, off, trainable in plan
            if trainable or not trainable_only], length


def _variables(layers, n_in, trainable_only=False):
    """The weight tensors an architecture implies: [(name, shape, kind)] in file order."""
    return [(name, shape, kind) for name, shape, kind, _ in _plan(layers, n_in, trainable_only)[0]]


def _layout(layers, n_in, trainable_only=False):
    """Element offsets of each weight in the model's flat parameter vector, and its length."""
    plan, length = _plan(layers, n_in, trainable_only)
    return [off for _, _, _, off in plan], length


def _model_config(model):
    """The architecture as written: ``trainable`` only when false (format 1.1; readers
    of 1.0 files default it to true), so files of trainable models keep their 1.0 bytes."""
    cfg = model.get_config()
    if cfg.get("trainable", True):
        cfg.pop("trainable", None)
    return cfg


def _compile_config(model):
    if not model.compiled:
        return None
    metrics = []
    for m in model._metric_ids:
        if isinstance(m, str):
            metrics.append(m)
        elif isinstance(m, metrics_module.Metric):
            metrics.append({"class_name": type(m).__name__, "config": m.get_config()})
        else:
            raise ValueError(f"Cannot save metric {m!r}: only names and fastmlp.metrics.Metric objects")
    return {"optimizer": optimizers.serialize(model.optimizer), "loss": losses.serialize(model.loss),
            "metrics": metrics}


def _json_dumps(obj):
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (TypeError, ValueError) as e:
        raise ValueError(f"The model's configuration cannot be saved as JSON: {e}") from None


# ---------------------------------------------------------------------------- writer
def _tensor_plan(model, dtype):
    """[(name, stored array, extra table fields)] for the weights section, in order,
    and the byte offset of each (the model's own layout at full precision)."""
    model_dtype = np.dtype(model._dtype)
    store = model._dtype if dtype is None else dtype
    entries = []
    plan, _ = _plan(model.layers, model._n_features)
    for name, shape, kind, off in plan:
        w = model._params[off:off + math.prod(shape)].reshape(shape)
        if store in ("float32", "float64"):
            entries.append((name, store, np.asarray(w, dtype=store), None))
        elif store == "float16":
            if np.any(np.abs(w[np.isfinite(w)]) > 65504.0):
                raise ValueError(f"{name} has values outside the float16 range (|x| > 65504); "
                                 f"save with dtype='bfloat16' instead")
            entries.append((name, "float16", np.asarray(w, dtype=np.float16), None))
        elif store == "bfloat16":
            entries.append((name, "bfloat16", _to_bfloat16(w), None))
        elif kind == "kernel":  # int8: kernels quantized per output unit
            if not np.all(np.isfinite(w)):
                raise ValueError(f"{name} has non-finite values; it cannot be stored as int8")
            q, scale = _quantize_int8(w)
            entries.append((name, "int8", q, {"scale": f"{name}_scale"}))
            entries.append((f"{name}_scale", "float32", scale, None))
        else:   # int8 files keep biases and normalization statistics in float32
            entries.append((name, "float32", np.asarray(w, dtype=np.float32), None))
    offsets = []
    if store == model._dtype:
        item = model_dtype.itemsize
        layer_offsets, _ = _layout(model.layers, model._n_features)
        offsets = [o * item for o in layer_offsets]
    else:
        pos = 0
        for _, _, arr, _ in entries:
            offsets.append(pos)
            pos = _align(pos + arr.nbytes)
    return entries, offsets


def _training_plan(model):
    opt = model.optimizer
    if not opt.built:
        opt.build(model._n_params, model._dtype)
    n = model._n_params
    item_dtype = model._dtype
    layer_offsets, _ = _layout(model.layers, model._n_features, trainable_only=True)
    variables = _variables(model.layers, model._n_features, trainable_only=True)
    entries, pos, offsets = [], 0, []
    for s, slot in enumerate(opt.slot_names):
        base = opt._slots[s * n:(s + 1) * n]
        for (vname, shape, _), off in zip(variables, layer_offsets):
            size = math.prod(shape)
            arr = base[off:off + size].reshape(shape)
            entries.append((f"optimizer/{slot}/{vname}", item_dtype, arr, None))
            offsets.append(pos)
            pos = _align(pos + arr.nbytes)
    state = {"iterations": int(opt.iterations), "u_product": float(opt._u_product),
             "epoch": int(model._epoch), "seed": int(model._seed), "slots": list(opt.slot_names)}
    return entries, offsets, state


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


def model_to_bytes(model, include_optimizer=True, dtype=None):
    """The bytes of the model file for ``model`` (what ``save_model`` writes)."""
    return bytes(_serialize(model, include_optimizer, dtype))


def _serialize(model, include_optimizer=True, dtype=None):
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built yet, so it has no weights to save: "
                         f"build it (give it an input shape) or call it on data first")
    if dtype is not None:
        dtype = str(dtype)
        if dtype not in DTYPES:
            raise ValueError(f"`dtype` must be None, 'float32', 'float64', 'float16', 'bfloat16' "
                             f"or 'int8'. Received: dtype={dtype!r}")
        if dtype == model._dtype:
            dtype = None
    entries, offsets = _tensor_plan(model, dtype)
    w_table, w_len = _table(entries, offsets)
    header = {"format": "fastmlp-model",
              "model": {"class_name": "Sequential", "config": _model_config(model)},
              "compile": _compile_config(model), "tensors": w_table, "training": None}
    t_entries, t_len, flags = [], 0, 0
    # Training state goes only with full-precision weights: compact files are for inference.
    if include_optimizer and model.compiled and dtype is None:
        t_entries, t_offsets, state = _training_plan(model)
        t_table, t_len = _table(t_entries, t_offsets)
        state["tensors"] = t_table
        header["training"] = state
        flags = FLAG_TRAINING
    hbytes = _json_dumps(header)
    if len(hbytes) > HEADER_CAP:
        raise ValueError(f"The model's header would be {len(hbytes)} bytes, over the format's cap of "
                         f"{HEADER_CAP} bytes (too many layers?)")
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
    # the lowest minor version whose features the file uses: 1 for the model's
    # "trainable" key, a layer kind's own version for the kinds added later
    minor = max([0 if model.trainable else 1] + [layer._format_minor for layer in model.layers])
    pre = PREAMBLE.pack(MAGIC, FORMAT_VERSION[0], minor, BYTE_ORDER_MARK,
                        flags, len(hbytes), w_len, t_len, h_crc, w_crc, t_crc, 0)
    pre = pre[:60] + struct.pack("<I", crc(pre[:60]))
    out[:PREAMBLE_SIZE] = np.frombuffer(pre, np.uint8)
    return out


# ---------------------------------------------------------------------------- atomic write
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


def _atomic_write(filepath, buf, overwrite=True):
    """Write ``buf`` to ``filepath`` through a temporary file in the same folder
    (flush, fsync, os.replace, fsync the folder): readers, including arrays
    this process has memory-mapped from the old file, never see a partial file,
    and a failed save leaves the old file as it was."""
    path = os.path.realpath(os.fspath(filepath))
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{filepath!s} exists and overwrite=False")
    directory = os.path.dirname(path)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with open(fd, "wb", closefd=True) as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            f.write(memoryview(buf))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def save_model(model, filepath, overwrite=True, include_optimizer=True, dtype=None):
    """Save the whole model (architecture, weights, compile config and, with
    ``include_optimizer``, the optimizer/training state) atomically.  ``dtype``
    ('float16', 'bfloat16' or 'int8') stores compact weights for inference."""
    _atomic_write(filepath, _serialize(model, include_optimizer, dtype), overwrite)


def save_weights(model, filepath, overwrite=True):
    """Save the weights (with the architecture they belong to, for validation)."""
    _atomic_write(filepath, _serialize(model, include_optimizer=False), overwrite)


# ---------------------------------------------------------------------------- reader
_NOT_OURS = (
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"PK\x03\x04", "a zip archive (a Keras .keras file or an .npz?)"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras .h5 file?)"),
    (b"\x80", "a Python pickle (a torch.save file?)"),
)


def _identify(head):
    if head[:9].replace(b"\r\n", b"\n") == MAGIC[:9].replace(b"\r\n", b"\n") and \
            head[:12] != MAGIC and head.startswith(b"\x89FASTMLP"):
        return "the magic is damaged as by a text-mode transfer (line endings or 8-bit stripping)"
    if head[1:8] == b"FASTMLP" or head.startswith(b"\x09FASTMLP"):
        return "the magic is damaged as by a text-mode transfer (line endings or 8-bit stripping)"
    for magic, what in _NOT_OURS:
        if head.startswith(magic):
            return f"this is {what}, not a fastmlp model file"
    if len(head) >= 9 and head[8:9] == b"{":
        return "this looks like a safetensors file, not a fastmlp model file"
    return "not a fastmlp model file (bad magic number)"


def _fail(msg):
    raise FormatError(msg)


def _reject_constant(name):
    raise ValueError(f"the JSON constant {name} is not allowed")


_HEADER_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_table(table, section, section_len, what):
    """Validate a tensor table against its section: returns [(name, dtype, shape, offset, length, entry)]
    (compiled, as it runs on every load: ``_engine.check_tensor_table`` in ``_format.pxi``)."""
    return _engine.check_tensor_table(table, section, section_len, what, _ITEMSIZES, MAX_NDIM,
                                      MAX_ELEMENTS, ALIGN, FormatError)


def _zero(buf, head, start, n):
    """True when the n bytes at ``start`` are zero.  In a mapped file they are
    checked in ``head`` (the file's first bytes, already read) when they lie
    there, else short runs are read from the file: faulting in a page of a fresh
    mapping, and unmapping it, cost more than the read."""
    if head is not None and start + n <= len(head):
        return _engine.all_zero(head, start, n)
    if type(buf) is _engine.FileMap and n <= _HEAD_READ:
        return _engine.all_zero(buf.pread(n, start))
    return _engine.all_zero(buf, start, n)


def _check_padding(buf, base, entries, section_len, section, head=None):
    pos = 0
    for name, _, _, off, length, _ in entries:
        if off > pos and not _zero(buf, head, base + pos, off - pos):
            _fail(f"{section} section: non-zero padding before tensor {name!r}")
        pos = off + length
    if section_len > pos and not _zero(buf, head, base + pos, section_len - pos):
        _fail(f"{section} section: non-zero padding at its end")


class _Parsed:
    pass


def _parse(buf, size, verify, head=None):
    """Check the whole file in ``buf`` (any buffer of ``size`` bytes); returns what the loader needs.

    ``head``, when given, holds the file's first bytes, read apart from ``buf``:
    the preamble, the header and paddings within it are then checked from
    there, so a memory-mapped file's pages are touched only by the data checksums."""
    if size == 0:
        _fail("empty file: not a fastmlp model file")
    if head is None:
        head = b""
    if len(head) < min(size, PREAMBLE_SIZE):   # no head, or a short read
        head = bytes(memoryview(buf)[:min(size, PREAMBLE_SIZE)])
    if not head.startswith(MAGIC):
        _fail(_identify(head[:PREAMBLE_SIZE]))
    if size < PREAMBLE_SIZE:
        _fail(f"truncated file: {size} bytes, shorter than the {PREAMBLE_SIZE}-byte preamble")
    flags, h_len, w_len, t_len, w_crc, t_crc, data_off, hbuf = \
        _engine.check_preamble(head, buf, size, _PREAMBLE_RULES, FormatError)   # in _format.pxi
    try:   # strict JSON: NaN and Infinity refused; nesting deeper than Python's stack allows fails too
        header = _HEADER_DECODER.decode(bytes(memoryview(hbuf)[PREAMBLE_SIZE:PREAMBLE_SIZE + h_len]).decode("utf-8"))
    except (ValueError, RecursionError) as e:
        _fail(f"header: malformed JSON ({str(e)[:200]})")
    if not isinstance(header, dict):
        _fail("header: the JSON must be an object")
    if header.get("format") != "fastmlp-model":
        _fail(f"header: unknown format {header.get('format')!r}")
    p = _Parsed()
    p.buf, p.header, p.data_off, p.w_len, p.t_len = buf, header, data_off, w_len, t_len
    p.tensors = _check_table(header.get("tensors"), "weights", w_len, "tensor table")
    training = header.get("training")
    if (training is not None) != bool(flags & FLAG_TRAINING):
        _fail("header: the training state and the training flag disagree")
    p.training = training
    p.t_tensors = []
    if training is not None:
        if not isinstance(training, dict):
            _fail("header: 'training' must be an object or null")
        p.t_tensors = _check_table(training.get("tensors"), "training", t_len, "training table")
    if verify:
        if _engine.crc32c(buf, data_off, w_len) != w_crc:
            _fail("weights checksum mismatch: the weights section is damaged")
        if t_len and _engine.crc32c(buf, data_off + w_len, t_len) != t_crc:
            _fail("training checksum mismatch: the training section is damaged")
    _check_padding(buf, data_off, p.tensors, w_len, "weights", head)
    if t_len:
        _check_padding(buf, data_off + w_len, p.t_tensors, t_len, "training", head)
    return p


def _architecture(p):
    """Layers from the declarative config (whitelisted kinds only) and the checked
    correspondence between the tensor table and the architecture: ``plan`` has one
    ``(tensor name, shape, table entry, scale entry or None, element offset)`` per weight,
    in the model's order; ``own_layout`` says whether the weights section is laid out as
    the model's parameter vector (full precision, same offsets)."""
    model_cfg = p.header.get("model")
    if not isinstance(model_cfg, dict) or model_cfg.get("class_name") != "Sequential":
        _fail("header: 'model' must describe a Sequential model")
    cfg = model_cfg.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        _fail("header: the model config needs a 'layers' list")
    name = cfg.get("name", "sequential")
    if not isinstance(name, str):
        _fail("header: the model name must be a string")
    trainable = cfg.get("trainable", True)
    if not isinstance(trainable, bool):
        _fail("header: the model's 'trainable' must be true or false")
    built = []
    input_shape = None
    has_weights = False
    for i, entry in enumerate(cfg["layers"]):
        if type(entry) is not dict or type(entry.get("config")) is not dict:
            _fail(f"header: layer #{i} must be an object with a 'config' object")
        kind = entry.get("class_name")
        cls = _LAYER_KINDS.get(kind) if type(kind) is str else None
        if cls is None:
            _fail(f"header: unknown layer kind {kind!r} (layer #{i}); known kinds: {list(_LAYER_KINDS)}")
        try:
            layer = cls.from_config(entry["config"])
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError, IndexError) as e:
            _fail(f"header: invalid config for layer #{i} ({kind}): {e}")
        if cls is layers_module.InputLayer:
            if i != 0:
                _fail("header: an InputLayer may only come first")
            input_shape = layer.shape
        else:
            built.append(layer)
            has_weights = has_weights or cls is layers_module.Dense or cls is layers_module.BatchNormalization
    if input_shape is None and built and built[0]._input_shape_arg is not None:
        input_shape = built[0]._input_shape_arg
    if input_shape is None or not input_shape or None in input_shape:
        _fail(f"header: the model needs a fixed input shape; got {input_shape!r}")
    if not has_weights:
        _fail("header: the model has no Dense or BatchNormalization layer")
    try:
        _check_flattened(built, input_shape)
    except ValueError as e:
        _fail(f"header: {e}")
    n_in = math.prod(input_shape)
    layout = _param_plan(built, n_in)      # computed once: the loader and build share it
    dtypes = {l._dtype for l in built if l._dtype is not None}
    model_dtype = dtypes.pop() if len(dtypes) == 1 else _config.floatx()
    # Match the table to the architecture: full precision, or a compact encoding.
    by_name = {t[0]: t for t in p.tensors}
    used = set()
    plan = []
    item = DTYPES[model_dtype][1]
    own_layout = True   # every tensor stored at full precision where the model's vector has it
    for layer, kind, shape, element_offset, _ in layout[0]:
        vname = f"{layer.name}/{kind}"
        t = by_name.get(vname)
        if t is None:
            _fail(f"tensor table: the architecture needs tensor {vname!r} of shape {list(shape)}, "
                  f"which the file lacks")
        _, dt, tshape, _, _, entry = t
        if tshape != shape:
            _fail(f"tensor {vname!r} has shape {list(tshape)} but the architecture implies {list(shape)}")
        scale = None
        if dt == "int8":
            sname = entry.get("scale")
            st = by_name.get(sname) if isinstance(sname, str) else None
            if kind != "kernel" or st is None:
                _fail(f"tensor {vname!r}: an int8 kernel needs a float32 'scale' tensor")
            if st[1] != "float32" or st[2] != (shape[-1],):
                _fail(f"tensor {vname!r}: its scale {sname!r} must be float32 of shape [{shape[-1]}]")
            used.add(sname)
            scale = st
        elif "scale" in entry:
            _fail(f"tensor {vname!r}: only int8 tensors have a scale")
        used.add(vname)
        own_layout = own_layout and dt == model_dtype and t[3] == element_offset * item
        plan.append((vname, shape, t, scale, element_offset))
    if len(used) != len(by_name):   # used is a subset of by_name
        _fail(f"tensor table: tensors {sorted(set(by_name) - used)[:5]} are not part of the architecture")
    return name, input_shape, built, model_dtype, plan, layout, trainable, own_layout


def _array(p, base, t):
    """The stored values of table entry t as a (read-only view or native copy) array."""
    _, dt, shape, off, length, _ = t
    a = np.frombuffer(p.buf, dtype=DTYPES[dt][0], count=length // DTYPES[dt][1],
                      offset=base + off).reshape(shape)
    if not _LITTLE:
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def _decode(p, t, scale, dtype):
    dt = t[1]
    a = _array(p, p.data_off, t)
    if dt == "bfloat16":
        return _from_bfloat16(a, dtype)
    if dt == "int8":
        s = _array(p, p.data_off, scale)
        return (a.astype(np.float32) * s).astype(dtype, copy=False)
    return a


def _build_model(p, compile, writable):
    name, input_shape, layers, dtype, plan, layout, trainable, own_layout = _architecture(p)
    n_params = layout[1]
    if _LITTLE and writable and own_layout and p.w_len == n_params * DTYPES[dtype][1]:   # zero copy
        params = np.frombuffer(p.buf, dtype=dtype, count=n_params, offset=p.data_off)
    else:
        params = np.zeros(max(n_params, 1), dtype=dtype)
        for _, shape, t, scale, off in plan:
            size = math.prod(shape)
            params[off:off + size] = _decode(p, t, scale, dtype).reshape(-1)
    model = Sequential(name=name, trainable=trainable)
    try:
        for layer in layers:
            model.add(layer, rebuild=False)
    except (TypeError, ValueError) as e:
        _fail(f"header: {e}")
    model._input_shape = tuple(input_shape)
    model.build((None,) + tuple(input_shape), params=params, _layout=layout)

    training = p.training
    if training is not None:
        seed, epoch = training.get("seed"), training.get("epoch")
        if not (_is_int(seed) and 0 <= seed < 1 << 64 and _is_int(epoch) and epoch >= 0):
            _fail("training state: 'seed' and 'epoch' must be non-negative integers")
        model._seed, model._epoch = seed, epoch

    cc = p.header.get("compile")
    if compile and cc is not None:
        if not isinstance(cc, dict) or not isinstance(cc.get("optimizer"), dict) or \
                not isinstance(cc.get("loss"), dict) or not isinstance(cc.get("metrics", []), list):
            _fail("header: malformed compile config")
        try:
            opt = optimizers.deserialize(cc["optimizer"])
            loss = losses.deserialize(cc["loss"])
            metrics = []
            for m in cc.get("metrics", []):
                if isinstance(m, str):
                    metrics.append(m)
                elif isinstance(m, dict) and m.get("class_name") in metrics_module._CLASSES:
                    metrics.append(metrics_module._CLASSES[m["class_name"]].from_config(dict(m.get("config", {}))))
                else:
                    _fail(f"header: unknown metric {m!r}")
            model.compile(optimizer=opt, loss=loss, metrics=metrics)
        except FormatError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
            _fail(f"header: invalid compile config: {e}")
        if training is not None:
            _restore_training(p, model, training, layers, input_shape, n_params, dtype)
    return model


def _restore_training(p, model, training, layers, input_shape, n_params, dtype):
    opt = model.optimizer
    iterations, u_product, slots = training.get("iterations"), training.get("u_product"), training.get("slots")
    if not _is_int(iterations) or iterations < 0:
        _fail("training state: 'iterations' must be a non-negative integer")
    if not isinstance(u_product, (int, float)) or isinstance(u_product, bool):
        _fail("training state: 'u_product' must be a number")
    if slots != list(opt.slot_names):
        _fail(f"training state: slots {slots!r} do not match the optimizer's {list(opt.slot_names)}")
    variables = _variables(layers, math.prod(input_shape), trainable_only=True)
    offsets, _ = _layout(layers, math.prod(input_shape), trainable_only=True)
    expected = [(f"optimizer/{s}/{v}", shape) for s in slots for v, shape, _ in variables]
    if [(t[0], t[2]) for t in p.t_tensors] != expected:
        _fail("training table: the slot tensors do not match the architecture and optimizer")
    if any(t[1] != dtype for t in p.t_tensors):
        _fail(f"training table: slot tensors must be {dtype}")
    if not opt.built:
        opt.build(n_params, dtype)
    base = p.data_off + p.w_len
    k = 0
    for s in range(len(slots)):
        row = opt._slots[s * n_params:(s + 1) * n_params]
        for (_, shape, _), off in zip(variables, offsets):
            a = _array(p, base, p.t_tensors[k])
            row[off:off + a.size] = a.reshape(-1)
            k += 1
    opt.iterations = iterations
    opt._u_product = float(u_product)


def _read_file(path):
    """The whole file in a 64-byte-aligned, writable uint8 array."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        raw = np.empty(size + ALIGN, dtype=np.uint8)
        start = (-raw.ctypes.data) % ALIGN
        buf = raw[start:start + size]
        if f.readinto(memoryview(buf)) != size or f.read(1):
            _fail("the file changed size while being read")
    return buf


def load_model(filepath, compile=True, mmap=True, verify=True):
    """Load a model file.  ``mmap`` maps the file copy-on-write, so full-precision
    weights are used in place without a copy; ``verify=False`` skips the data
    checksums (the header checksum and every structural check still run)."""
    path = os.fspath(filepath)
    try:
        buf = None
        if mmap:   # open, read the head and map copy-on-write in one call (csrc/filemap.c)
            buf, head, size = _engine.map_file(os.fsencode(path), _HEAD_READ, PREAMBLE_SIZE)
        if buf is None:
            buf, head, size = _read_file(path), None, None
            size = len(buf)
            p = _parse(buf, size, verify, head)
        else:
            try:
                p = _parse(buf, size, verify, head)
            finally:
                buf.close_file()
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from None
    try:
        return _build_model(p, compile, writable=True)
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from None


def model_from_bytes(data, compile=True, verify=True):
    """A model from the bytes of a model file (``model_to_bytes``); weights are copied."""
    view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    p = _parse(view, len(view), verify)
    return _build_model(p, compile, writable=isinstance(data, bytearray))


def load_weights(model, filepath):
    """Set ``model``'s weights from a model or weights file: Dense layers are
    matched in order (names may differ), shapes must agree."""
    path = os.fspath(filepath)
    with open(path, "rb") as f:
        data = f.read()
    try:
        p = _parse(data, len(data), True)
        _, input_shape, layers, _, plan, _, _, _ = _architecture(p)
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from None
    if not model.built:
        model.build((None,) + tuple(input_shape))
    dtype = model._dtype
    weights = [_decode(p, t, scale, dtype) for _, _, t, scale, _ in plan]
    current = model.weights
    if len(weights) != len(current):
        raise ValueError(f"{path} holds {len(weights)} weight arrays but model {model.name!r} has "
                         f"{len(current)}")
    for i, (ref, w) in enumerate(zip(current, weights)):
        if ref.shape != w.shape:
            raise ValueError(f"{path}: weight {i} ({plan[i][0]}) has shape {w.shape}, the model expects "
                             f"{ref.shape}")
    for ref, w in zip(current, weights):
        ref[...] = w
