"""Inference of 784-64-64-10 (softmax) with the same weights everywhere: one sample
(``predict-1``) and a batch of 1024 (``predict-1024``), numpy in and numpy out, for
``fastmlp.predict``, torch (``inference_mode``, ``eval``), onnxruntime (the torch model exported
to ONNX) and Keras 3 ``predict``."""
import contextlib
import io

import numpy as np
import pytest

from _bench_util import fastmlp_model, keras_model, mlp_data, torch_model

# Keras-on-torch and the legacy ONNX exporter warn on every call; keep the report readable
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

SIZES = [784, 64, 64, 10]
BATCHES = [pytest.param(n, id=f"batch{n}", marks=pytest.mark.benchmark(group=f"predict-{n}"))
           for n in (1, 1024)]


@pytest.fixture(scope="module")
def net():
    m = fastmlp_model(SIZES)
    x, _ = mlp_data(1024, 784, 10)
    return m, m.get_weights(), x


@pytest.fixture(scope="module")
def torch_net(net):
    torch = pytest.importorskip("torch")
    m = torch_model(torch, SIZES, weights=net[1], softmax=True).eval()
    return torch, m


def _run(benchmark, fn, net, n):
    m, _, x = net
    xs = np.ascontiguousarray(x[:n])
    out = fn(xs)
    np.testing.assert_allclose(out, m.predict(xs, verbose=0), rtol=1e-4, atol=1e-5)
    benchmark(fn, xs)


@pytest.mark.parametrize("n", BATCHES)
def test_predict_fastmlp(benchmark, net, n):
    m = net[0]
    _run(benchmark, lambda a: m.predict(a, verbose=0), net, n)


@pytest.mark.parametrize("n", BATCHES)
def test_predict_torch(benchmark, net, torch_net, n):
    torch, m = torch_net

    def fn(a):
        with torch.inference_mode():
            return m(torch.from_numpy(a)).numpy()
    _run(benchmark, fn, net, n)


@pytest.fixture(scope="module")
def ort_session(torch_net, tmp_path_factory):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch, m = torch_net
    path = str(tmp_path_factory.mktemp("onnx") / "mlp.onnx")
    x1 = torch.zeros((1, 784))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            torch.onnx.export(m, (x1,), path, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
        except TypeError:
            torch.onnx.export(m, (x1,), path, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("n", BATCHES)
def test_predict_onnxruntime(benchmark, net, ort_session, n):
    _run(benchmark, lambda a: ort_session.run(None, {"x": a})[0], net, n)


@pytest.mark.parametrize("n", BATCHES)
def test_predict_keras(benchmark, net, n):
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    km = keras_model(keras, SIZES, weights=net[1])
    _run(benchmark, lambda a: np.asarray(km.predict(a, verbose=0)), net, n)
