"""Tests of the CRC-32C implementations (csrc/checksum.c) through fastmlp._engine.

Every implementation this CPU runs ("avx512", "sse4.2", "portable") is forced
with set_crc32c_impl() and compared with a bit-at-a-time Python reference (short
buffers) and with the portable table implementation (long ones), over lengths
around every block size of the folding and 3-way paths and misaligned starts.
"""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

_engine = pytest.importorskip("fastmlp._engine")

IMPLS = _engine.available_crc32c_impls()
# Block sizes of the paths: 8-byte words, 16-byte folds, 64-byte zmm folds, the
# 256-byte round of four zmm accumulators (also the folding threshold), and the
# 3-way blocks of 256 and 8192 bytes.
EDGES = sorted({n + d for n in (0, 8, 16, 64, 256, 512, 768, 1024, 3 * 256, 3 * 8192, 4096)
                for d in (-1, 0, 1) if n + d >= 0})


def _crc32c_bitwise(data, crc=0):
    """The definition: reflected polynomial 0x82F63B78, inverted in and out."""
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@pytest.fixture(params=IMPLS)
def impl(request):
    _engine.set_crc32c_impl(request.param)
    assert _engine.crc32c_impl() == request.param
    yield request.param
    _engine.set_crc32c_impl("auto")


def _bytes(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_the_detected_implementation_is_the_fastest_available_and_can_be_restored():
    assert IMPLS[-1] == "portable"
    assert _engine.crc32c_impl() == IMPLS[0]
    with pytest.raises(ValueError, match="available"):
        _engine.set_crc32c_impl("no-such-impl")
    _engine.set_crc32c_impl("portable")
    assert _engine.crc32c_impl() == "portable"
    _engine.set_crc32c_impl("auto")
    assert _engine.crc32c_impl() == IMPLS[0]


def test_known_value_and_empty_buffer(impl):
    assert _engine.crc32c(b"123456789") == 0xE3069283
    assert _engine.crc32c(b"") == 0
    assert _engine.crc32c(b"", crc=0x12345678) == 0x12345678


@pytest.mark.parametrize("n", EDGES)
def test_every_block_edge_matches_the_definition(impl, n):
    data = _bytes(n + 7, seed=n)
    for start in (0, 1, 7):
        assert _engine.crc32c(data, start, n) == _crc32c_bitwise(data[start:start + n])


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 6000), start=st.integers(0, 63), seed=st.integers(0, 2**32 - 1),
       crc=st.integers(0, 2**32 - 1))
def test_every_implementation_agrees_with_the_portable_one(n, start, seed, crc):
    data = _bytes(n + start, seed)
    expected = _engine.crc32c(data, start, n, crc=crc, portable=True)
    for name in IMPLS:
        _engine.set_crc32c_impl(name)
        try:
            assert _engine.crc32c(data, start, n, crc=crc) == expected, name
        finally:
            _engine.set_crc32c_impl("auto")


@pytest.mark.parametrize("n", [1 << 20, 2_678_824 + 3, (5 << 20) + 17])
def test_megabyte_buffers_and_chaining(impl, n):
    """Large buffers (the last one is split across threads by the portable tables when OpenMP is on), at
    an odd start, and CRCs continued across a cut anywhere."""
    data = _bytes(n + 3, seed=n)
    whole = _engine.crc32c(data, 3, n, portable=True)
    assert _engine.crc32c(data, 3, n) == whole
    cut = n // 3 + 5
    assert _engine.crc32c(data, 3 + cut, n - cut, crc=_engine.crc32c(data, 3, cut)) == whole
    assert _engine.crc32c_combine(_engine.crc32c(data, 3, cut), _engine.crc32c(data, 3 + cut, n - cut),
                                  n - cut) == whole


# ---------------------------------------------------------------- CRC-32 (zip): zlib is the reference
def test_zip_crc32_known_value_and_implementation():
    import zlib
    assert _engine.crc32(b"123456789") == 0xCBF43926 == zlib.crc32(b"123456789")
    assert _engine.crc32(b"") == 0
    assert _engine.crc32(b"", crc=0x12345678) == 0x12345678
    assert _engine.crc32_impl() == ("avx512" if "avx512" in IMPLS else "portable")


@pytest.mark.parametrize("n", EDGES + [(4 << 20) + 5, (9 << 20) + 3])
def test_zip_crc32_matches_zlib_at_every_block_edge(impl, n):
    """On every implementation (the zip CRC's tables when "portable" is forced, split across
    threads from 4 MiB)."""
    import zlib
    assert _engine.crc32_impl() == ("portable" if impl == "portable" or "avx512" not in IMPLS else "avx512")
    data = _bytes(n + 7, seed=n)
    for start in (0, 1, 7):
        for crc in (0, 0xDEADBEEF):
            expected = zlib.crc32(memoryview(data)[start:start + n], crc)
            assert _engine.crc32(data, start, n, crc=crc) == expected
            assert _engine.crc32(data, start, n, crc=crc, portable=True) == expected


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 6000), start=st.integers(0, 63), seed=st.integers(0, 2**32 - 1),
       crc=st.integers(0, 2**32 - 1))
def test_zip_crc32_agrees_with_zlib(n, start, seed, crc):
    import zlib
    data = _bytes(n + start, seed)
    assert _engine.crc32(data, start, n, crc=crc) == zlib.crc32(data[start:], crc)


@pytest.mark.skipif(not hasattr(os, "pread"), reason="POSIX reads (the .keras loader reads members whole without)")
@pytest.mark.parametrize("piece", [0, 1, 4095, 1 << 20])
def test_a_read_job_reads_a_file_on_its_own_thread_taking_its_zip_crc32(tmp_path, impl, piece):
    """_engine.start_read (the .keras loader's read-ahead): the bytes at an offset, piece by
    piece, on a thread of its own, with zlib's CRC-32 of them; ``wait`` gives the count read
    once it reaches what is asked (every byte below it in place) or the read ended; short at
    the end of the file; the job closes its descriptor; a failed read is an OSError from
    ``finish``, the same at every call."""
    import zlib
    data = _bytes((3 << 20) + 11, seed=piece)
    (tmp_path / "f").write_bytes(data)
    for offset, n in ((0, len(data)), (5, 9000), (len(data) - 100, 100), (len(data) - 10, 64)):
        fd = os.open(tmp_path / "f", os.O_RDONLY)
        buf = np.zeros(n, np.uint8)
        job = _engine.start_read(fd, buf, offset, piece)
        want = data[offset:offset + n]
        for upto in (1, n // 3, n // 2, n):
            have = job.wait(upto)
            assert have >= min(upto, len(want)) and bytes(buf[:min(upto, have)]) == want[:min(upto, have)]
        assert job.wait(n + 1) == len(want)   # (more than the buffer: the count once the read ended)
        assert job.finish() == job.finish() == (len(want), zlib.crc32(want))
        assert bytes(buf[:len(want)]) == want
        with pytest.raises(OSError):
            os.fstat(fd)   # the job closed it
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        with pytest.raises(BufferError):
            _engine.start_read(fd, b"read-only", 0)
        os.fstat(fd)   # (still the caller's)
    finally:
        os.close(fd)
    job = _engine.start_read(os.open(tmp_path, os.O_RDONLY), np.zeros(10, np.uint8), 0)   # a folder: the read
    assert job.wait(10) == 0                                                             # fails on its thread
    for _ in range(2):
        with pytest.raises(OSError):
            job.finish()


@pytest.mark.skipif(not hasattr(os, "pread"), reason="POSIX reads")
@pytest.mark.parametrize("piece", [1, 512, 4096])   # (small: the waiting thread gets pieces to read)
def test_a_waiting_thread_reads_what_it_waits_for_beside_the_job(tmp_path, piece):
    """``wait`` reads the pieces it waits for itself when the job's thread has not taken them
    yet, so two threads read at once and finish out of order: every wait still sees every
    byte below its count in place, and the CRC-32 chains the pieces in the file's order
    (a piece of 1 byte is raised to n / 65536 + 1)."""
    import zlib
    data = _bytes((2 << 20) + 5, seed=piece)
    (tmp_path / "f").write_bytes(data)
    rng = np.random.default_rng(piece)
    for trial in range(20):
        n = int(rng.integers(1, len(data) + 100))   # (past the end: short)
        want = data[:n]
        buf = np.zeros(n, np.uint8)
        job = _engine.start_read(os.open(tmp_path / "f", os.O_RDONLY), buf, 0, piece)
        for upto in sorted(rng.integers(0, n + 1, size=int(rng.integers(1, 30)))):
            have = job.wait(int(upto))
            assert min(int(upto), len(want)) <= have <= len(want)
            assert bytes(buf[:have]) == want[:have]
        assert job.finish() == (len(want), zlib.crc32(want)), trial
        assert bytes(buf[:len(want)]) == want


@pytest.mark.skipif(not hasattr(os, "pread"), reason="POSIX reads")
def test_a_read_job_dropped_or_cancelled_unfinished_stops_and_is_waited_for(tmp_path):
    """A job cancelled (``finish(cancel=True)``) stops after its piece; one dropped
    unfinished is cancelled and joined when collected: its buffer is never written after."""
    import gc
    data = _bytes(64 << 20, seed=3)
    (tmp_path / "f").write_bytes(data)
    buf = np.zeros(len(data), np.uint8)
    job = _engine.start_read(os.open(tmp_path / "f", os.O_RDONLY), buf, 0, 4096)
    got, _ = job.finish(cancel=True)
    assert 0 <= got <= len(data) and bytes(buf[:got]) == data[:got]
    tail = buf[got:].copy()
    import time
    for _ in range(5):
        buf2 = np.zeros(len(data), np.uint8)
        _engine.start_read(os.open(tmp_path / "f", os.O_RDONLY), buf2, 0, 4096)   # dropped at once
        gc.collect()
        snapshot = buf2.copy()
        time.sleep(0.01)
        assert np.array_equal(buf2, snapshot)   # nothing writes it any more
        assert not buf2[-4096:].any()   # (and it stopped short of the end)
    np.testing.assert_array_equal(buf[got:], tail)


def test_memory_from_the_allocator_is_a_writable_buffer_its_arrays_keep_alive():
    """_engine.memory(n) (the read-ahead's buffer, in the allocator's small pages rather than the
    huge pages numpy asks for): n writable bytes, held by any array viewing them."""
    import gc
    for n in (0, 1, 4096, (8 << 20) + 3):
        a = np.frombuffer(_engine.memory(n), np.uint8)
        assert a.shape == (n,) and a.flags.writeable
        a[:] = 7
        gc.collect()
        assert (a == 7).all() and len(a.base) == n
    with pytest.raises(ValueError):
        _engine.memory(-1)
    import copy
    import pickle
    for copier in (copy.copy, copy.deepcopy, pickle.dumps):   # (its bytes are the arrays' to copy)
        with pytest.raises(TypeError):
            copier(_engine.memory(8))
    a = np.frombuffer(_engine.memory(8), np.uint8)
    a[:] = 3
    assert (pickle.loads(pickle.dumps(a)) == 3).all() and (copy.deepcopy(a) == 3).all()
    if not os.environ.get("FASTMLP_SANITIZED"):   # (AddressSanitizer stops the process instead)
        with pytest.raises(MemoryError):
            _engine.memory(2 ** 62)
