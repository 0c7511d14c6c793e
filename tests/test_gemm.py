"""Tests of the GEMM kernels (csrc/gemm*.c) through fastmlp._engine.

Every test that computes runs once per GEMM target this CPU supports
("avx512", "avx2", "generic", ...), forced with set_gemm_target() and reset to
"auto" afterwards.  Results are compared with a float64 numpy reference under
a rigorous forward-error bound for a length-K dot product, so the tolerances
never flake yet catch any real indexing bug (which is off by O(1)).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_engine = pytest.importorskip("fastmlp._engine")

TARGETS = _engine.available_gemm_targets()
DTYPES = [np.float32, np.float64]

# Sizes around every vector width (4, 8, 16 lanes) and tile size (4..32).
EDGE_SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 23, 24, 25,
              31, 32, 33, 47, 48, 49, 63, 64, 65, 96, 97, 127, 128, 129, 130]
sizes = st.one_of(st.sampled_from(EDGE_SIZES), st.integers(0, 130))
sizes_nonzero = st.one_of(st.sampled_from([s for s in EDGE_SIZES if s]), st.integers(1, 130))


@pytest.fixture(params=TARGETS)
def target(request):
    _engine.set_gemm_target(request.param)
    assert _engine.gemm_target() == request.param
    yield request.param
    _engine.set_gemm_target("auto")


def _operands(rng, dtype, M, N, K, transa, transb):
    A = rng.standard_normal((K, M) if transa else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if transb else (K, N)).astype(dtype)
    C = rng.standard_normal((M, N)).astype(dtype)
    return A, B, C


def _check(A, B, C0, C, transa, transb, alpha, beta):
    """C must equal alpha*op(A)@op(B) + beta*C0 within the error bound of a
    K-term dot product in C's dtype (beta == 0: C0 is ignored)."""
    opA = (A.T if transa else A).astype(np.float64)
    opB = (B.T if transb else B).astype(np.float64)
    K = opA.shape[1]
    ref = alpha * (opA @ opB)
    mag = abs(alpha) * (np.abs(opA) @ np.abs(opB))
    if beta != 0:
        ref = ref + beta * C0.astype(np.float64)
        mag = mag + abs(beta) * np.abs(C0.astype(np.float64))
    eps = np.finfo(C.dtype).eps
    bound = (K + 3) * eps * mag + np.finfo(C.dtype).tiny
    assert C.dtype == C0.dtype and C.shape == ref.shape
    assert np.all(np.isfinite(C))
    err = np.abs(C.astype(np.float64) - ref)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), (
        f"max violation at {worst}: err={err[worst]:.3g} bound={bound[worst]:.3g}")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(M=sizes, N=sizes, K=sizes,
       dtype=st.sampled_from(DTYPES),
       transa=st.booleans(), transb=st.booleans(),
       alpha=st.sampled_from([1.0, -1.0, 0.5, 2.5, 0.0]),
       beta=st.sampled_from([0.0, 1.0, -0.5, 2.0]),
       seed=st.integers(0, 2**32 - 1))
def test_gemm_matches_numpy(target, M, N, K, dtype, transa, transb, alpha, beta, seed):
    rng = np.random.default_rng(seed)
    A, B, C0 = _operands(rng, dtype, M, N, K, transa, transb)
    C = C0.copy()
    if beta == 0:
        C[...] = np.nan  # beta == 0 must not read C
    out = _engine.gemm(transa, transb, alpha, A, B, beta, C)
    assert out is None or out is C
    _check(A, B, C0, C, transa, transb, alpha, beta)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transa,transb", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("M,N,K", [
    (1, 784, 64), (1, 64, 784), (7, 33, 300), (32, 10, 64), (130, 129, 257),
    (200, 3, 900), (3, 300, 700), (257, 300, 520), (9, 700, 800),
])
def test_gemm_blocked_shapes(target, dtype, transa, transb, M, N, K):
    """Shapes that cross the KC/MC blocking, the small/packed path choice and
    the thread split."""
    rng = np.random.default_rng(M * 1000003 + N * 1009 + K)
    A, B, C0 = _operands(rng, dtype, M, N, K, transa, transb)
    C = C0.copy()
    _engine.gemm(transa, transb, 0.75, A, B, -1.5, C)
    _check(A, B, C0, C, transa, transb, 0.75, -1.5)
    C = np.full((M, N), np.nan, dtype)
    _engine.gemm(transa, transb, 1.0, A, B, 0.0, C)
    _check(A, B, C0, C, transa, transb, 1.0, 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(0, 5, 3), (5, 0, 3), (0, 0, 0), (4, 6, 0), (1, 1, 0)])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_gemm_empty(target, dtype, M, N, K, beta):
    A = np.ones((M, K), dtype)
    B = np.ones((K, N), dtype)
    C0 = np.arange(M * N, dtype=dtype).reshape(M, N)
    C = C0.copy()
    if beta == 0:
        C[...] = np.nan
    _engine.gemm(False, False, 1.0, A, B, beta, C)
    np.testing.assert_array_equal(C, np.zeros_like(C0) if beta == 0 else beta * C0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_alpha_zero_ignores_operands(target, dtype):
    """alpha == 0: C = beta*C without touching A@B (BLAS semantics)."""
    A = np.full((5, 7), np.nan, dtype)
    B = np.full((7, 3), np.inf, dtype)
    C = np.ones((5, 3), dtype)
    _engine.gemm(False, False, 0.0, A, B, 3.0, C)
    np.testing.assert_array_equal(C, np.full((5, 3), 3.0, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transa,transb", [(0, 0), (1, 1), (0, 1)])
def test_gemm_bitwise_reproducible(target, dtype, transa, transb):
    """Repeated calls (multithreaded for this size) give identical bits, and so
    does any thread count: threads split only M/N on tile boundaries."""
    M, N, K = 300, 520, 700
    rng = np.random.default_rng(7)
    A, B, _ = _operands(rng, dtype, M, N, K, transa, transb)
    first = np.empty((M, N), dtype)
    _engine.gemm(transa, transb, 1.0, A, B, 0.0, first)
    for _ in range(3):
        again = np.empty((M, N), dtype)
        _engine.gemm(transa, transb, 1.0, A, B, 0.0, again)
        assert np.array_equal(first, again)
    if hasattr(_engine, "set_num_threads") and hasattr(_engine, "get_num_threads"):
        saved = _engine.get_num_threads()
        try:
            for nt in (1, 2, 3):
                _engine.set_num_threads(nt)
                other = np.empty((M, N), dtype)
                _engine.gemm(transa, transb, 1.0, A, B, 0.0, other)
                assert np.array_equal(first, other), f"differs with {nt} threads"
        finally:
            _engine.set_num_threads(saved)


def test_targets_and_dispatch():
    names = _engine.available_gemm_targets()
    assert "generic" in names
    assert _engine.gemm_target() in names
    assert set(names) <= {"avx512", "avx2", "neon", "generic"}
    with pytest.raises(ValueError):
        _engine.set_gemm_target("no-such-target")
    before = _engine.gemm_target()
    _engine.set_gemm_target("generic")
    assert _engine.gemm_target() == "generic"
    _engine.set_gemm_target("auto")
    assert _engine.gemm_target() == before == names[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", [(1, 784, 64), (32, 64, 10), (33, 17, 65), (128, 130, 3)])
def test_matmul(target, dtype, M, K, N):
    ops = pytest.importorskip("fastmlp.ops")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    got = ops.matmul(a, b)
    assert got.dtype == dtype and got.shape == (M, N)
    _check(a, b, np.zeros((M, N), dtype), got, False, False, 1.0, 0.0)
    out = np.full((M, N), np.nan, dtype)
    res = ops.matmul(a, b, out=out)
    assert res is out
    np.testing.assert_array_equal(out, got)
