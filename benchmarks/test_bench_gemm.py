"""GEMM: ``fastmlp.ops.matmul`` against numpy ``@`` (OpenBLAS) and ``torch.mm``, float32,
C-contiguous, output preallocated for all.  One pytest-benchmark group per M×K×N shape.

For a fair numpy baseline unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the command."""
import numpy as np
import pytest

import fastmlp

SHAPES = [(1024, 1024, 1024), (256, 784, 512), (128, 784, 64), (32, 784, 64), (32, 64, 10),
          (1, 784, 64)]
PARAMS = [pytest.param(s, id="x".join(map(str, s)),
                       marks=pytest.mark.benchmark(group="gemm %dx%dx%d" % s)) for s in SHAPES]


def _operands(shape):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    return a, b, np.empty((m, n), np.float32)


def _check(c, a, b):
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-3,
                               atol=1e-3 * np.sqrt(a.shape[1]))


@pytest.mark.parametrize("shape", PARAMS)
def test_gemm_fastmlp(benchmark, shape):
    a, b, c = _operands(shape)
    benchmark(fastmlp.ops.matmul, a, b, out=c)
    _check(c, a, b)


@pytest.mark.parametrize("shape", PARAMS)
def test_gemm_numpy(benchmark, shape):
    a, b, c = _operands(shape)
    benchmark(np.matmul, a, b, out=c)
    _check(c, a, b)


@pytest.mark.parametrize("shape", PARAMS)
def test_gemm_torch(benchmark, shape):
    torch = pytest.importorskip("torch")
    a, b, c = _operands(shape)
    ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
    benchmark(torch.mm, ta, tb, out=tc)
    _check(c, a, b)
