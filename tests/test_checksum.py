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
def test_reading_a_file_takes_its_zip_crc32_as_it_reads(tmp_path, impl, piece):
    """_engine.read_crc32 (the .keras loader's read-ahead): the bytes at an offset, piece by
    piece, with zlib's CRC-32 of them; short at the end of the file; a bad descriptor is an
    OSError."""
    import zlib
    data = _bytes((3 << 20) + 11, seed=piece)
    (tmp_path / "f").write_bytes(data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        for offset, n in ((0, len(data)), (5, 9000), (len(data) - 100, 100), (len(data) - 10, 64)):
            buf = np.zeros(n, np.uint8)
            got, crc = _engine.read_crc32(fd, buf, offset, piece)
            want = data[offset:offset + n]
            assert got == len(want) and bytes(buf[:got]) == want and crc == zlib.crc32(want)
        with pytest.raises(BufferError):
            _engine.read_crc32(fd, b"read-only", 0)
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        _engine.read_crc32(fd, np.zeros(10, np.uint8), 0)
