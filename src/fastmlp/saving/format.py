"""The fastmlp model file: its constants, the checks every file passes before
anything is built from it, and the storage dtypes.  ``docs/FORMAT.md`` is the
specification; ``writer`` writes files and ``reader`` builds models from them,
both on the model's plan (``fastmlp.models.plan``).
"""
import errno
import json
import os
import stat
import struct
import sys

import numpy as np

from .. import _engine

MAGIC = b"\x89FASTMLP\r\n\x1a\n"
FORMAT_VERSION = (1, 3)   # a file says the lowest minor version whose features it uses (docs/FORMAT.md)
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


def _parse(buf, size, verify, head=None, tail=None):
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
        if t_len and tail is None and _engine.crc32c(buf, data_off + w_len, t_len) != t_crc:
            _fail("training checksum mismatch: the training section is damaged")
    _check_padding(buf, data_off, p.tensors, w_len, "weights", head)
    p.tail, p.t_crc = tail, t_crc
    if t_len and tail is None:
        _check_padding(buf, data_off + w_len, p.t_tensors, t_len, "training", head)
    elif t_len:   # the section itself is read later: its paddings are read from the file now
        pos = 0
        for name, _, _, off, length, _ in p.t_tensors:
            if off > pos and any(tail.pread(off - pos, pos)):
                _fail(f"training section: non-zero padding before tensor {name!r}")
            pos = off + length
        if t_len > pos and any(tail.pread(t_len - pos, pos)):
            _fail("training section: non-zero padding at its end")
    return p


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


_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _check_regular(path, mode):
    """Refuse what is not a regular file: a folder as ``open`` does (IsADirectoryError), anything
    else (a FIFO, which would block until a writer comes, a device, a socket) with a FormatError."""
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(mode):
        kind = next((what for test, what in _FILE_KINDS if test(mode)), "not a regular file")
        _fail(f"this is {kind}, not a model file: fastmlp reads model files from regular files only")


# Opening a FIFO without O_NONBLOCK waits for a writer: the open never blocks, the fstat tells the kind.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


class _Tail:
    """The training section of a file read without it (``_read_file(lazy_tail=True)``): the
    open file (a replaced file stays readable through it) and where the section lies."""

    def __init__(self, fd, path, offset, length):
        self.fd, self.path, self.offset, self.length = fd, path, offset, length

    def read_into(self, view):
        """Read the section into ``view``; FormatError when the file is shorter now."""
        if self.fd is None:
            _fail(f"{self.path}: the training section was read already")
        try:
            got = os.preadv(self.fd, [view], self.offset) if hasattr(os, "preadv") else \
                _pread_into(self.fd, view, self.offset)
        finally:
            self.close()
        if got != self.length:
            _fail(f"{self.path}: the file was truncated after it was loaded; its training state is gone")

    def pread(self, n, start):
        """n bytes at ``start`` within the section (bytes; shorter if the file is)."""
        return os.pread(self.fd, n, self.offset + start)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self):
        self.close()


def _pread_into(fd, view, offset):
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


def _read_file(path, lazy_tail=False):
    """The whole file in a 64-byte-aligned, writable uint8 array (a regular file only).

    With ``lazy_tail`` the training section (the optimizer state) is not read: the
    array holds everything before it, and a ``_Tail`` (returned second) reads it when
    first needed.  Returns ``(buf, tail or None)``."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except PermissionError:
        if os.path.isdir(path):   # Windows opens no folder: say what it is, as open() does elsewhere
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path) from None
        raise
    try:
        st = os.fstat(fd)
        _check_regular(path, st.st_mode)   # before open(fd), which refuses a folder naming the fd
        if _OPEN_FLAGS & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)   # a regular file ignores the flag, a network or FUSE one might not
    except BaseException:
        os.close(fd)
        raise
    tail = None
    with open(fd, "rb", closefd=True) as f:
        size = st.st_size
        raw = np.empty(size + ALIGN, dtype=np.uint8)
        start = (-raw.ctypes.data) % ALIGN
        buf = raw[start:start + size]
        t_len = done = 0
        if lazy_tail and size >= PREAMBLE_SIZE:
            if f.readinto(memoryview(buf)[:PREAMBLE_SIZE]) != PREAMBLE_SIZE:
                _fail("the file changed size while being read")
            done = PREAMBLE_SIZE
            t_len = struct.unpack_from("<Q", buf, 40)[0] if bytes(buf[:12]) == MAGIC else 0
            if not 0 < t_len <= size - PREAMBLE_SIZE:
                t_len = 0   # nothing to leave out, or a damaged length the checks will report
        if f.readinto(memoryview(buf)[done:size - t_len]) != size - t_len - done or (not t_len and f.read(1)):
            _fail("the file changed size while being read")
        if t_len:
            tail = _Tail(os.dup(f.fileno()), path, size - t_len, t_len)
    return (buf, tail) if lazy_tail else buf
