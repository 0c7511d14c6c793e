# CRC-32C for the model file format, CRC-32 for zip members (included by _engine.pyx; C in csrc/checksum.c).
from libc.stdint cimport uint32_t
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE

cdef extern from "checksum.h" nogil:
    void fm_crc32c_init()
    uint32_t fm_crc32c(uint32_t crc, const void *buf, size_t len)
    uint32_t fm_crc32c_portable(uint32_t crc, const void *buf, size_t len)
    uint32_t fm_crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b)
    const char *fm_crc32c_impl()
    int fm_crc32c_set_impl(const char *name)
    int fm_all_zero(const void *buf, size_t len)
    uint32_t fm_crc32_zip(uint32_t crc, const void *buf, size_t len)
    uint32_t fm_crc32_zip_portable(uint32_t crc, const void *buf, size_t len)
    const char *fm_crc32_zip_impl()


fm_crc32c_init()


cdef int _span(object data, Py_buffer *view, Py_ssize_t start, Py_ssize_t length,
               const unsigned char **ptr) except -1:
    """Borrow a contiguous byte buffer and check that [start, start + length) lies in it."""
    PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    if start < 0 or length < -1 or start > view.len or (length >= 0 and length > view.len - start):
        PyBuffer_Release(view)
        raise ValueError("internal: byte range outside the buffer")
    ptr[0] = <const unsigned char *>view.buf + start
    return <int>(0)


def crc32c(data, Py_ssize_t start=0, Py_ssize_t length=-1, uint32_t crc=0, bint portable=False):
    """CRC-32C of ``data[start:start + length]`` (the rest of the buffer when
    ``length`` is -1), continuing from ``crc``.  ``data`` is any object with the
    buffer protocol (bytes, bytearray, mmap, a contiguous array); nothing is copied."""
    cdef Py_buffer view
    cdef const unsigned char *p
    cdef uint32_t out
    _span(data, &view, start, length, &p)
    cdef size_t n = <size_t>(view.len - start if length < 0 else length)
    try:
        with nogil:
            out = fm_crc32c_portable(crc, p, n) if portable else fm_crc32c(crc, p, n)
    finally:
        PyBuffer_Release(&view)
    return out


def crc32(data, Py_ssize_t start=0, Py_ssize_t length=-1, uint32_t crc=0, bint portable=False):
    """CRC-32 of ``data[start:start + length]`` as zip and ``zlib.crc32`` compute it, continuing
    from ``crc``; any buffer (bytes, mmap, array), nothing copied, the GIL released."""
    cdef Py_buffer view
    cdef const unsigned char *p
    cdef uint32_t out
    _span(data, &view, start, length, &p)
    cdef size_t n = <size_t>(view.len - start if length < 0 else length)
    try:
        with nogil:
            out = fm_crc32_zip_portable(crc, p, n) if portable else fm_crc32_zip(crc, p, n)
    finally:
        PyBuffer_Release(&view)
    return out


def crc32_impl():
    """Which CRC-32 (zip) implementation runs here: 'avx512' (folding) or 'portable' (tables)."""
    return fm_crc32_zip_impl().decode()


def crc32c_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b):
    """The CRC-32C of a || b from the CRCs of a and b and the length of b."""
    return fm_crc32c_combine(crc_a, crc_b, len_b)


def crc32c_impl():
    """Which CRC-32C implementation runs here: 'avx512', 'sse4.2' or 'portable'."""
    return fm_crc32c_impl().decode()


def set_crc32c_impl(str name):
    """Force a CRC-32C implementation (for tests and benchmarks); 'auto' restores detection.
    'portable' puts the zip CRC-32 on its tables too; any other name gives it its fastest."""
    if fm_crc32c_set_impl(name.encode()) != 0:
        raise ValueError(f"unknown or unsupported CRC-32C implementation {name!r}; "
                         f"available: {available_crc32c_impls()}")


def available_crc32c_impls():
    """The CRC-32C implementations this CPU can run, fastest first."""
    current = crc32c_impl()
    names = [n for n in ("avx512", "sse4.2", "portable")
             if fm_crc32c_set_impl(n.encode()) == 0]
    fm_crc32c_set_impl(current.encode())
    return names


def all_zero(data, Py_ssize_t start=0, Py_ssize_t length=-1):
    """True when every byte of ``data[start:start + length]`` is zero."""
    cdef Py_buffer view
    cdef const unsigned char *p
    cdef int out
    _span(data, &view, start, length, &p)
    cdef size_t n = <size_t>(view.len - start if length < 0 else length)
    with nogil:
        out = fm_all_zero(p, n)
    PyBuffer_Release(&view)
    return out != 0
