"""Training: one train step (one batch) and one epoch, fastmlp against an idiomatic PyTorch
loop, Keras 3 on torch and scikit-learn's MLPClassifier.  Adam, lr 1e-3, same batch size.

Groups: ``train step <net>`` (one batch: ``train_on_batch`` / forward+backward+step) and
``epoch <net>`` (one shuffled epoch over ``N_EPOCH`` rows: ``fit(epochs=1, verbose=0)`` /
the loop / ``partial_fit``)."""
import numpy as np
import pytest

from _bench_util import fastmlp_model, keras_model, mlp_data, torch_epoch, torch_model

# Keras-on-torch and the legacy ONNX exporter warn on every call; keep the report readable
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

NETS = {  # name: (sizes, output activation, batch size)
    "8-10-5-1 b32": ([8, 10, 5, 1], "sigmoid", 32),
    "784-64-64-10 b32": ([784, 64, 64, 10], "softmax", 32),
    "784-512-512-10 b256": ([784, 512, 512, 10], "softmax", 256),
}
N_EPOCH = 4096


def step_params():
    return [pytest.param(k, id=k, marks=pytest.mark.benchmark(group=f"train step {k}")) for k in NETS]


def epoch_params():
    return [pytest.param(k, id=k, marks=pytest.mark.benchmark(group=f"epoch {k} ({N_EPOCH} rows)"))
            for k in NETS]


def _torch_setup(torch, sizes, out):
    model = torch_model(torch, sizes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss() if out == "sigmoid" else torch.nn.CrossEntropyLoss()
    return model, opt, loss_fn


def _torch_y(torch, y, out):
    return torch.from_numpy(y.reshape(-1, 1)) if out == "sigmoid" else torch.from_numpy(y)


# ------------------------------------------------------------------ one train step

@pytest.mark.parametrize("net", step_params())
def test_step_fastmlp(benchmark, net):
    sizes, out, bs = NETS[net]
    x, y = mlp_data(bs, sizes[0], sizes[-1])
    m = fastmlp_model(sizes, out)
    m.train_on_batch(x, y)
    benchmark(m.train_on_batch, x, y)


@pytest.mark.parametrize("net", step_params())
def test_step_torch(benchmark, net):
    torch = pytest.importorskip("torch")
    sizes, out, bs = NETS[net]
    x, y = mlp_data(bs, sizes[0], sizes[-1])
    X, Y = torch.from_numpy(x), _torch_y(torch, y, out)
    model, opt, loss_fn = _torch_setup(torch, sizes, out)

    def step():
        loss = loss_fn(model(X), Y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    step()
    benchmark(step)


@pytest.mark.parametrize("net", step_params())
def test_step_keras(benchmark, net):
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    sizes, out, bs = NETS[net]
    x, y = mlp_data(bs, sizes[0], sizes[-1])
    m = keras_model(keras, sizes, out)
    m.train_on_batch(x, y)
    benchmark(m.train_on_batch, x, y)


# ------------------------------------------------------------------ one epoch

@pytest.mark.parametrize("net", epoch_params())
def test_epoch_fastmlp(benchmark, net):
    sizes, out, bs = NETS[net]
    x, y = mlp_data(N_EPOCH, sizes[0], sizes[-1])
    m = fastmlp_model(sizes, out)
    m.fit(x, y, batch_size=bs, epochs=1, verbose=0)
    benchmark(m.fit, x, y, batch_size=bs, epochs=1, verbose=0)


@pytest.mark.parametrize("net", epoch_params())
def test_epoch_torch(benchmark, net):
    torch = pytest.importorskip("torch")
    sizes, out, bs = NETS[net]
    x, y = mlp_data(N_EPOCH, sizes[0], sizes[-1])
    X, Y = torch.from_numpy(x), _torch_y(torch, y, out)
    model, opt, loss_fn = _torch_setup(torch, sizes, out)
    torch_epoch(torch, model, opt, loss_fn, X, Y, bs)
    benchmark(torch_epoch, torch, model, opt, loss_fn, X, Y, bs)


@pytest.mark.parametrize("net", epoch_params())
def test_epoch_keras(benchmark, net):
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    sizes, out, bs = NETS[net]
    x, y = mlp_data(N_EPOCH, sizes[0], sizes[-1])
    m = keras_model(keras, sizes, out)
    m.fit(x, y, batch_size=bs, epochs=1, verbose=0)
    benchmark.pedantic(m.fit, args=(x, y), kwargs=dict(batch_size=bs, epochs=1, verbose=0),
                       rounds=3, iterations=1)


@pytest.mark.parametrize("net", epoch_params())
def test_epoch_sklearn(benchmark, net):
    nn = pytest.importorskip("sklearn.neural_network")
    sizes, out, bs = NETS[net]
    x, y = mlp_data(N_EPOCH, sizes[0], sizes[-1])
    y = y.astype(np.int64)
    m = nn.MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), solver="adam", batch_size=bs,
                         learning_rate_init=1e-3, alpha=0.0, random_state=0)
    m.partial_fit(x, y, classes=np.unique(y))
    benchmark.pedantic(m.partial_fit, args=(x, y), rounds=5, iterations=1)
