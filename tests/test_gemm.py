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
@pytest.mark.parametrize("transa,transb", [(0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("M,N,K", [
    (13, 17, 1), (11, 33, 15), (25, 31, 17), (37, 50, 9), (5, 47, 257), (49, 7, 385),
    (27, 65, 777), (12, 32, 16), (130, 97, 383),
])
def test_transposed_operands_give_the_bits_of_their_copies(target, dtype, transa, transb, M, N, K):
    """Packing a transposed A or B (in-register VL x VL transposes on the SIMD
    targets) only moves data: the result equals, bit for bit, the GEMM of
    contiguous copies of op(A) and op(B).  Sizes leave partial MR / NR panels,
    VL-blocks cut short in both directions and K blocks with a tail."""
    rng = np.random.default_rng(M * 7919 + N * 104729 + K)
    A, B, C0 = _operands(rng, dtype, M, N, K, transa, transb)
    opA = np.ascontiguousarray(A.T if transa else A)
    opB = np.ascontiguousarray(B.T if transb else B)
    want = C0.copy()
    _engine.gemm(False, False, 1.25, opA, opB, 0.5, want)
    got = C0.copy()
    _engine.gemm(transa, transb, 1.25, A, B, 0.5, got)
    np.testing.assert_array_equal(got, want)
    _check(A, B, C0, got, transa, transb, 1.25, 0.5)


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


# --------------------------------------------------------------------------- epilogues
# A dense layer's forward (bias + activation) and the activation derivative of
# its backward run on each finished tile of C.  The fused result must equal, bit
# for bit, the GEMM followed by the whole-matrix kernel (same order of
# operations), and must match the float64 NumPy reference (tests/reference.py).
import reference as ref  # noqa: E402

ACT_NAMES = list(ref.ACTIVATION_CODES)
ACT_TOL = {np.float32: (2e-5, 2e-6), np.float64: (1e-12, 1e-13)}


def _act_operands(rng, dtype, M, N, K, transa, transb, name):
    A, B, C0 = _operands(rng, dtype, M, N, K, transa, transb)
    # keep pre-activations of order one to a few, where every activation is smooth
    A *= dtype(1.5 / np.sqrt(max(K, 1)))
    if name == "exponential":
        A *= dtype(0.5)
    return A, B, C0


def _close_ref(actual, expected, dtype, what):
    rtol, atol = ACT_TOL[dtype]
    err = np.abs(actual.astype(np.float64) - expected)
    bad = err > atol + rtol * np.abs(expected)
    assert not bad.any(), f"{what}: {bad.sum()} of {bad.size} differ, worst {err.max():.3g}"


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(M=sizes_nonzero, N=sizes_nonzero, K=sizes,
       dtype=st.sampled_from(DTYPES), name=st.sampled_from(ACT_NAMES),
       transa=st.booleans(), transb=st.booleans(), with_bias=st.booleans(),
       with_z=st.booleans(), beta=st.sampled_from([0.0, 1.0]),
       seed=st.integers(0, 2**32 - 1))
def test_gemm_bias_activation_epilogue_equals_gemm_then_activation(
        target, M, N, K, dtype, name, transa, transb, with_bias, with_z, beta, seed):
    rng = np.random.default_rng(seed)
    code, alpha = ref.ACTIVATION_CODES[name], ref.DEFAULT_ALPHA.get(name, 0.0)
    A, B, C0 = _act_operands(rng, dtype, M, N, K, transa, transb, name)
    b = (rng.standard_normal(N) * 0.5).astype(dtype) if with_bias else None
    # unfused: the plain GEMM, then bias + activation over the whole matrix
    plain = C0.copy()
    _engine.gemm(transa, transb, 1.0, A, B, beta, plain)
    _check(A, B, C0, plain, transa, transb, 1.0, beta)
    Zu = np.zeros_like(plain)
    unfused = _engine.activation_forward(code, alpha, plain.copy(), b, Zu)
    # fused
    C = C0.copy()
    if beta == 0:
        C[...] = np.nan
    Z = np.full_like(C, np.nan) if with_z else None
    _engine.gemm(transa, transb, 1.0, A, B, beta, C, act=code, act_alpha=alpha, bias=b, Z=Z)
    np.testing.assert_array_equal(C, unfused)
    if with_z:
        np.testing.assert_array_equal(Z, Zu)
    # and the reference, from the pre-activation the GEMM produced
    _close_ref(C, ref.activation(name, Zu, alpha or None), dtype, name)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(M=sizes_nonzero, N=sizes_nonzero, K=sizes,
       dtype=st.sampled_from(DTYPES), name=st.sampled_from(ACT_NAMES),
       transa=st.booleans(), transb=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_gemm_derivative_epilogue_equals_gemm_then_activation_backward(
        target, M, N, K, dtype, name, transa, transb, seed):
    rng = np.random.default_rng(seed)
    code, alpha = ref.ACTIVATION_CODES[name], ref.DEFAULT_ALPHA.get(name, 0.0)
    A, B, _ = _operands(rng, dtype, M, N, K, transa, transb)
    # the layer whose derivative is applied: output Aout = act(Z)
    Z = (rng.standard_normal((M, N)) * (0.5 if name == "exponential" else 1.5)).astype(dtype)
    Aout = _engine.activation_forward(code, alpha, Z.copy())
    plain = np.empty((M, N), dtype)
    _engine.gemm(transa, transb, 1.0, A, B, 0.0, plain)
    unfused = _engine.activation_backward(code, alpha, Aout, Z, plain.copy())
    C = np.full((M, N), np.nan, dtype)
    _engine.gemm(transa, transb, 1.0, A, B, 0.0, C, act=code, act_alpha=alpha, Z=Z, Aout=Aout,
                 grad=True)
    np.testing.assert_array_equal(C, unfused)
    expected = ref.activation_backward(name, Z, plain, alpha or None)
    rtol, atol = ACT_TOL[dtype]
    scale = np.abs(plain).astype(np.float64) * (np.exp(Z.astype(np.float64)) if name == "exponential" else 1)
    err = np.abs(C.astype(np.float64) - expected)
    assert np.all(err <= 10 * (atol + rtol) * np.maximum(1, scale) + rtol * np.abs(expected)), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "gelu", "softmax", "log_softmax", "tanh"])
@pytest.mark.parametrize("transb", [False, True])
def test_epilogues_are_bitwise_reproducible_and_independent_of_threads(target, dtype, name, transb):
    """Large enough to split over threads and, on the packed path (op(B) = B^T),
    to span several K blocks: the epilogue must run after the last one only."""
    M, N, K = 300, 200, 700
    rng = np.random.default_rng(5)
    code, alpha = ref.ACTIVATION_CODES[name], 0.0
    A, B, _ = _act_operands(rng, dtype, M, N, K, False, transb, name)
    b = rng.standard_normal(N).astype(dtype)

    def run():
        C, Z = np.empty((M, N), dtype), np.empty((M, N), dtype)
        _engine.gemm(False, transb, 1.0, A, B, 0.0, C, act=code, bias=b, Z=Z)
        G = np.empty((M, N), dtype)
        _engine.gemm(False, transb, 1.0, A, B, 0.0, G, act=code, Z=Z, Aout=C, grad=True)
        return C, Z, G

    first = run()
    plain = np.empty((M, N), dtype)
    _engine.gemm(False, transb, 1.0, A, B, 0.0, plain)
    np.testing.assert_array_equal(first[1], plain + b)
    saved = _engine.get_num_threads()
    try:
        for nt in (1, 2, 3):
            _engine.set_num_threads(nt)
            for got, want in zip(run(), first):
                np.testing.assert_array_equal(got, want)
    finally:
        _engine.set_num_threads(saved)


def test_epilogue_runs_when_k_is_zero_and_checks_its_arguments():
    A, B = np.zeros((3, 0)), np.zeros((0, 4))
    C, Z = np.full((3, 4), np.nan), np.empty((3, 4))
    b = np.array([1.0, -2.0, 3.0, -4.0])
    _engine.gemm(False, False, 1.0, A, B, 0.0, C, act=ref.ACTIVATION_CODES["relu"], bias=b, Z=Z)
    np.testing.assert_array_equal(C, np.tile([1.0, 0.0, 3.0, 0.0], (3, 1)))
    np.testing.assert_array_equal(Z, np.tile(b, (3, 1)))
    with pytest.raises(ValueError, match="bias"):
        _engine.gemm(False, False, 1.0, A, B, 0.0, C, act=1, bias=b[:3])
    with pytest.raises(ValueError, match="Aout"):
        _engine.gemm(False, False, 1.0, A, B, 0.0, C, act=1, grad=True)
