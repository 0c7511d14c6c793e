"""One SGD step on a tiny 2-2-1 network, worked out by hand.

    x = [1, 2], y = 1
    hidden: sigmoid(x @ W1 + b1),  W1 = [[0.1, 0.2], [0.3, 0.4]],  b1 = [0, 0.1]
    output: linear(h @ W2 + b2),   W2 = [[0.5], [-0.6]],           b2 = [0.05]
    loss:   mean squared error;    optimizer: SGD(learning_rate=0.1)

Forward:
    z1  = [1*0.1 + 2*0.3 + 0,  1*0.2 + 2*0.4 + 0.1] = [0.7, 1.1]
    h   = sigmoid(z1)                    = [0.6681877722, 0.7502601056]
    out = 0.5*h0 - 0.6*h1 + 0.05         = -0.0660621773
    L   = (out - 1)^2                    = 1.1364885658
Backward:
    dL/dout = 2 (out - 1)                = -2.1321243545
    dW2     = h * dL/dout                = [-1.4246594224, -1.5996478434]
    db2     = dL/dout
    dh      = W2 * dL/dout               = [-1.0660621773, 1.2792746127]
    dz1     = dh * h (1 - h)             = [-0.2363597084, 0.2396975301]
    dW1     = outer(x, dz1),  db1 = dz1
Step (w -= 0.1 * dw):
    W1 = [[0.1236359708, 0.1760302470], [0.3472719417, 0.3520604940]]
    b1 = [0.0236359708, 0.0760302470]
    W2 = [[0.6424659422], [-0.4400352157]]
    b2 = [0.2632124355]
"""
import numpy as np
import pytest

import fastmlp
from fastmlp.layers import Dense

W1 = np.array([[0.1, 0.2], [0.3, 0.4]])
B1 = np.array([0.0, 0.1])
W2 = np.array([[0.5], [-0.6]])
B2 = np.array([0.05])
X = np.array([[1.0, 2.0]])
Y = np.array([[1.0]])
LR = 0.1

LOSS_BEFORE = 1.1364885658
W1_AFTER = np.array([[0.1236359708, 0.1760302470], [0.3472719417, 0.3520604940]])
B1_AFTER = np.array([0.0236359708, 0.0760302470])
W2_AFTER = np.array([[0.6424659422], [-0.4400352157]])
B2_AFTER = np.array([0.2632124355])

TOL = {"float64": dict(rtol=0, atol=1e-9), "float32": dict(rtol=0, atol=2e-6)}


def _model(floatx, optimizer=None):
    fastmlp.config.set_floatx(floatx)
    model = fastmlp.Sequential([fastmlp.Input(shape=(2,)), Dense(2, activation="sigmoid"),
                                Dense(1, activation="linear")])
    model.compile(optimizer=optimizer or fastmlp.optimizers.SGD(learning_rate=LR), loss="mse")
    model.set_weights([W1, B1, W2, B2])
    return model


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _by_hand(X, Y, lr):
    """The same step written out with NumPy (batch mean of the squared error)."""
    n = len(X)
    z1 = X @ W1 + B1
    h = _sigmoid(z1)
    out = h @ W2 + B2
    loss = np.mean((out - Y) ** 2)
    d_out = 2 * (out - Y) / n               # d(batch mean)/d(out)
    dW2, db2 = h.T @ d_out, d_out.sum(0)
    dz1 = (d_out @ W2.T) * h * (1 - h)
    dW1, db1 = X.T @ dz1, dz1.sum(0)
    return loss, [W1 - lr * dW1, B1 - lr * db1, W2 - lr * dW2, B2 - lr * db2]


def test_hand_worked_numbers_agree_with_the_numpy_chain_rule():
    loss, weights = _by_hand(X, Y, LR)
    assert loss == pytest.approx(LOSS_BEFORE, abs=1e-9)
    for got, expected in zip(weights, [W1_AFTER, B1_AFTER, W2_AFTER, B2_AFTER]):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("floatx", ["float64", "float32"])
def test_one_sgd_step_on_a_2_2_1_network_matches_the_hand_computation(floatx):
    model = _model(floatx)
    loss = model.train_on_batch(X, Y)
    # the loss reported is the one before the step
    assert loss == pytest.approx(LOSS_BEFORE, abs=TOL[floatx]["atol"])
    W1n, b1n, W2n, b2n = model.get_weights()
    assert W1n.dtype == np.dtype(floatx)
    for name, got, expected in (("W1", W1n, W1_AFTER), ("b1", b1n, B1_AFTER), ("W2", W2n, W2_AFTER),
                                ("b2", b2n, B2_AFTER)):
        np.testing.assert_allclose(got, expected, err_msg=name, **TOL[floatx])
    assert model.optimizer.iterations == 1


@pytest.mark.parametrize("floatx", ["float64", "float32"])
def test_the_loss_reported_by_a_second_step_is_the_loss_after_the_first(floatx):
    model = _model(floatx)
    model.train_on_batch(X, Y)
    second = model.train_on_batch(X, Y)
    h = _sigmoid(X @ W1_AFTER + B1_AFTER)
    expected = float(np.mean((h @ W2_AFTER + B2_AFTER - Y) ** 2))
    assert second == pytest.approx(expected, abs=TOL[floatx]["atol"])
    assert second < LOSS_BEFORE


@pytest.mark.parametrize("floatx", ["float64", "float32"])
def test_one_sgd_step_on_a_batch_of_two_uses_the_mean_gradient(floatx):
    Xb = np.array([[1.0, 2.0], [-0.5, 0.25]])
    Yb = np.array([[1.0], [-2.0]])
    loss, expected = _by_hand(Xb, Yb, LR)
    model = _model(floatx)
    assert model.train_on_batch(Xb, Yb) == pytest.approx(loss, abs=TOL[floatx]["atol"])
    for got, exp in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, exp, **TOL[floatx])


def test_one_sgd_step_with_sample_weights_weights_each_row_gradient():
    Xb = np.array([[1.0, 2.0], [-0.5, 0.25]])
    Yb = np.array([[1.0], [-2.0]])
    w = np.array([0.25, 1.5])
    # weighted: sum_i w_i (out_i - y_i)^2 / n, so each row's d_out is scaled by w_i
    z1 = Xb @ W1 + B1
    h = _sigmoid(z1)
    out = h @ W2 + B2
    loss = np.sum(w[:, None] * (out - Yb) ** 2) / 2
    d_out = 2 * w[:, None] * (out - Yb) / 2
    dz1 = (d_out @ W2.T) * h * (1 - h)
    expected = [W1 - LR * Xb.T @ dz1, B1 - LR * dz1.sum(0), W2 - LR * h.T @ d_out, B2 - LR * d_out.sum(0)]
    model = _model("float64")
    assert model.train_on_batch(Xb, Yb, sample_weight=w) == pytest.approx(loss, abs=1e-12)
    for got, exp in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, exp, rtol=0, atol=1e-12)


def test_one_sgd_momentum_step_from_rest_equals_a_plain_step_and_the_second_adds_velocity():
    model = _model("float64", fastmlp.optimizers.SGD(learning_rate=LR, momentum=0.9))
    model.train_on_batch(X, Y)
    after_one = model.get_weights()
    for got, expected in zip(after_one, [W1_AFTER, B1_AFTER, W2_AFTER, B2_AFTER]):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # second step: velocity = 0.9 * (-lr g1) - lr g2, w += velocity
    model.train_on_batch(X, Y)
    plain = _model("float64")
    plain.train_on_batch(X, Y)
    plain.train_on_batch(X, Y)                       # w2 = w1 - lr g2
    g1_step = [a - b for a, b in zip(after_one, [W1, B1, W2, B2])]          # -lr g1
    expected = [p + 0.9 * s for p, s in zip(plain.get_weights(), g1_step)]
    for got, exp in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, exp, rtol=0, atol=1e-12)
