"""Learning-rate schedules: Keras 3 formulas, and per-step use inside the training loop."""
import math
import os

import numpy as np
import pytest

import fastmlp
from fastmlp.optimizers import schedules

STEPS = np.array([0, 1, 2, 3, 5, 7, 9, 10, 11, 19, 20, 21, 50, 99, 100, 101, 150, 199, 200, 201,
                  333, 999, 1000, 1001, 5000], dtype=np.int64)


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _keras_values(ks, steps):
    keras = _keras()
    return np.array([float(keras.ops.convert_to_numpy(ks(int(s)))) for s in steps])


def _ours(schedule, steps):
    return np.array([float(schedule(int(s))) for s in steps])


CASES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.9)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=True)),
    ("ExponentialDecay", dict(initial_learning_rate=2.0, decay_steps=100, decay_rate=1.2)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=3, decay_rate=2.0, staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[10, 100, 1000], values=[1.0, 0.5, 0.1, 0.01])),
    ("PiecewiseConstantDecay", dict(boundaries=[0, 5], values=[3.0, 2.0, 1.0])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=100)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=100, end_learning_rate=0.01,
                             power=2.0)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=100, end_learning_rate=0.01,
                             power=0.5, cycle=True)),
    ("PolynomialDecay", dict(initial_learning_rate=1.0, decay_steps=7, end_learning_rate=0.0,
                             cycle=True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=200)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=200, alpha=0.1)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=200, warmup_target=0.1,
                         warmup_steps=50)),
    ("CosineDecay", dict(initial_learning_rate=0.01, decay_steps=100, alpha=0.05, warmup_target=0.2,
                         warmup_steps=20)),
]


@pytest.mark.parametrize("name,config", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_schedule_matches_keras_own_schedule_class_at_many_steps(name, config):
    keras = _keras()
    ours = getattr(schedules, name)(**config)
    theirs = getattr(keras.optimizers.schedules, name)(**config)
    np.testing.assert_allclose(_ours(ours, STEPS), _keras_values(theirs, STEPS), rtol=2e-5, atol=1e-8)
    assert ours.get_config() == theirs.get_config()   # the default name included (Keras needs a string)


def test_cosine_decay_restarts_has_keras_default_name():
    keras = _keras()
    config = dict(initial_learning_rate=0.1, first_decay_steps=10)
    assert schedules.CosineDecayRestarts(**config).get_config() == \
        keras.optimizers.schedules.CosineDecayRestarts(**config).get_config()


@pytest.mark.parametrize("name,config", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_schedule_evaluated_on_an_array_of_steps_equals_stepwise_evaluation(name, config):
    s = getattr(schedules, name)(**config)
    vectorised = np.asarray(s(STEPS.astype(np.float64)), dtype=np.float64)
    np.testing.assert_allclose(vectorised, _ours(s, STEPS), rtol=1e-12)


# ---------------------------------------------------------------- hand formulas (no Keras needed)
def test_exponential_decay_follows_the_formula_continuous_and_staircase():
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    for t in STEPS:
        assert float(s(int(t))) == pytest.approx(0.1 * 0.9 ** (t / 10), rel=1e-12)
    st = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9, staircase=True)
    for t in STEPS:
        assert float(st(int(t))) == pytest.approx(0.1 * 0.9 ** (t // 10), rel=1e-12)


def test_inverse_time_decay_follows_the_formula_continuous_and_staircase():
    s = schedules.InverseTimeDecay(0.5, decay_steps=4, decay_rate=0.3)
    st = schedules.InverseTimeDecay(0.5, decay_steps=4, decay_rate=0.3, staircase=True)
    for t in STEPS:
        assert float(s(int(t))) == pytest.approx(0.5 / (1 + 0.3 * t / 4), rel=1e-12)
        assert float(st(int(t))) == pytest.approx(0.5 / (1 + 0.3 * (t // 4)), rel=1e-12)


def test_piecewise_constant_decay_uses_values_i_while_step_is_at_most_boundary_i():
    s = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    expected = {0: 1.0, 9: 1.0, 10: 1.0, 11: 0.5, 20: 0.5, 21: 0.1, 10_000: 0.1}
    for t, v in expected.items():
        assert float(s(t)) == v


def test_piecewise_constant_decay_rejects_values_of_the_wrong_length():
    with pytest.raises(ValueError):
        schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5])


def test_polynomial_decay_reaches_the_end_rate_and_stays_there_without_cycle():
    s = schedules.PolynomialDecay(0.1, decay_steps=100, end_learning_rate=0.01, power=2.0)
    for t in STEPS:
        tt = min(t, 100)
        assert float(s(int(t))) == pytest.approx((0.1 - 0.01) * (1 - tt / 100) ** 2 + 0.01, rel=1e-12)


def test_polynomial_decay_with_cycle_restarts_from_a_longer_horizon():
    s = schedules.PolynomialDecay(0.1, decay_steps=100, end_learning_rate=0.01, cycle=True)
    for t in STEPS:
        horizon = 100 * (1 if t == 0 else math.ceil(t / 100))
        assert float(s(int(t))) == pytest.approx((0.1 - 0.01) * (1 - t / horizon) + 0.01, rel=1e-12)
    assert float(s(101)) > float(s(100))      # a new cycle starts above the end rate


def test_cosine_decay_follows_the_half_cosine_to_alpha_times_the_initial_rate():
    s = schedules.CosineDecay(0.1, decay_steps=200, alpha=0.1)
    for t in STEPS:
        tt = min(t, 200)
        cos = 0.5 * (1 + math.cos(math.pi * tt / 200))
        assert float(s(int(t))) == pytest.approx(0.1 * ((1 - 0.1) * cos + 0.1), rel=1e-12)


def test_cosine_decay_warms_up_linearly_to_the_target_then_decays_from_it():
    s = schedules.CosineDecay(0.0, decay_steps=100, warmup_target=0.2, warmup_steps=50)
    for t in range(0, 50):
        assert float(s(t)) == pytest.approx(0.2 * t / 50, abs=1e-15)
    assert float(s(50)) == pytest.approx(0.2)
    for t in (60, 100, 150, 151, 400):
        tt = min(t - 50, 100)
        assert float(s(t)) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * tt / 100)), abs=1e-15)


@pytest.mark.parametrize("name,config", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_schedule_round_trips_through_get_config_and_serialize(name, config):
    s = getattr(schedules, name)(**config)
    again = type(s).from_config(s.get_config())
    np.testing.assert_array_equal(_ours(again, STEPS), _ours(s, STEPS))
    back = schedules.deserialize(schedules.serialize(s))
    assert type(back) is type(s)
    np.testing.assert_array_equal(_ours(back, STEPS), _ours(s, STEPS))


def _cosine_restarts_formula(t, initial, first, t_mul, m_mul, alpha):
    frac = t / first
    if t_mul == 1.0:
        i = math.floor(frac)
        frac -= i
    else:
        i = math.floor(math.log(1 - frac * (1 - t_mul)) / math.log(t_mul))
        done = (1 - t_mul ** i) / (1 - t_mul)
        frac = (frac - done) / t_mul ** i
    cos = 0.5 * m_mul ** i * (1 + math.cos(math.pi * frac))
    return initial * ((1 - alpha) * cos + alpha)


RESTARTS = [dict(initial_learning_rate=0.1, first_decay_steps=20),
            dict(initial_learning_rate=0.1, first_decay_steps=20, t_mul=1.0, m_mul=0.5, alpha=0.1),
            dict(initial_learning_rate=0.3, first_decay_steps=7, t_mul=3.0, m_mul=0.9, alpha=0.0)]


@pytest.mark.parametrize("config", RESTARTS, ids=["defaults", "t_mul-1", "t_mul-3"])
def test_cosine_decay_restarts_follows_keras_sgdr_formula(config):
    # Listed in the feature issue and shipped by Keras 3 (keras.optimizers.schedules.CosineDecayRestarts).
    assert hasattr(schedules, "CosineDecayRestarts"), "schedules.CosineDecayRestarts is missing"
    s = schedules.CosineDecayRestarts(**config)
    full = {"t_mul": 2.0, "m_mul": 1.0, "alpha": 0.0, **config}
    for t in STEPS:
        want = _cosine_restarts_formula(float(t), full["initial_learning_rate"], full["first_decay_steps"],
                                        full["t_mul"], full["m_mul"], full["alpha"])
        assert float(s(int(t))) == pytest.approx(want, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("config", RESTARTS, ids=["defaults", "t_mul-1", "t_mul-3"])
def test_cosine_decay_restarts_matches_keras(config):
    keras = _keras()
    assert hasattr(schedules, "CosineDecayRestarts"), "schedules.CosineDecayRestarts is missing"
    ours = schedules.CosineDecayRestarts(**config)
    theirs = keras.optimizers.schedules.CosineDecayRestarts(**config)
    np.testing.assert_allclose(_ours(ours, STEPS), _keras_values(theirs, STEPS), rtol=2e-5, atol=1e-7)


# ---------------------------------------------------------------- per-step use inside training
def _linear_problem(n=24, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ np.array([1.0, -2.0, 0.5])[:d, None] + 0.3 + 0.1 * rng.normal(size=(n, 1))
    return X, y


def _linear_model(d, lr, w0, b0):
    fastmlp.config.set_floatx("float64")
    model = fastmlp.Sequential([fastmlp.Input(shape=(d,)), fastmlp.layers.Dense(1)])
    model.compile(optimizer=fastmlp.optimizers.SGD(learning_rate=lr), loss="mse")
    model.set_weights([w0, b0])
    return model


def _manual_sgd_step(w, b, X, y, lr):
    r = X @ w + b - y
    gw = 2 * X.T @ r / len(X)
    gb = 2 * r.sum(0) / len(X)
    return w - lr * gw, b - lr * gb


def test_a_schedule_changes_the_rate_at_every_train_on_batch_step_like_manual_sgd():
    X, y = _linear_problem()
    sched = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    w, b = np.zeros((3, 1)), np.zeros(1)
    model = _linear_model(3, sched, w, b)
    for t in range(6):
        model.train_on_batch(X, y)
        w, b = _manual_sgd_step(w, b, X, y, 0.1 * 0.5 ** t)
        got_w, got_b = model.get_weights()
        np.testing.assert_allclose(got_w, w, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_b, b, rtol=1e-10, atol=1e-12)
    assert model.optimizer.iterations == 6
    assert model.optimizer.learning_rate == pytest.approx(0.1 * 0.5 ** 6)


def test_a_constant_rate_gives_a_different_result_so_the_schedule_check_has_teeth():
    X, y = _linear_problem()
    sched_model = _linear_model(3, schedules.ExponentialDecay(0.1, 1, 0.5), np.zeros((3, 1)), np.zeros(1))
    const_model = _linear_model(3, 0.1, np.zeros((3, 1)), np.zeros(1))
    for _ in range(3):
        sched_model.train_on_batch(X, y)
        const_model.train_on_batch(X, y)
    assert not np.allclose(sched_model.get_weights()[0], const_model.get_weights()[0])


@pytest.mark.parametrize("sched", [
    schedules.PiecewiseConstantDecay([2, 5], [0.1, 0.03, 0.01]),
    schedules.CosineDecay(0.0, decay_steps=6, warmup_target=0.1, warmup_steps=3),
    schedules.PolynomialDecay(0.1, decay_steps=4, end_learning_rate=0.01, cycle=True),
], ids=["piecewise", "cosine-warmup", "polynomial-cycle"])
def test_a_schedule_is_applied_per_batch_inside_fit_across_epochs(sched):
    X, y = _linear_problem(n=24)
    batch = 8
    w, b = np.zeros((3, 1)), np.zeros(1)
    model = _linear_model(3, sched, w, b)
    model.fit(X, y, batch_size=batch, epochs=3, shuffle=False, verbose=0)
    t = 0
    for _ in range(3):
        for s in range(0, 24, batch):
            w, b = _manual_sgd_step(w, b, X[s:s + batch], y[s:s + batch], float(sched(t)))
            t += 1
    got_w, got_b = model.get_weights()
    np.testing.assert_allclose(got_w, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got_b, b, rtol=1e-9, atol=1e-12)
    assert model.optimizer.iterations == 9


def test_a_schedule_continues_from_the_optimizer_iterations_across_fit_calls():
    X, y = _linear_problem(n=16)
    sched = schedules.InverseTimeDecay(0.1, decay_steps=1, decay_rate=1.0)
    w, b = np.zeros((3, 1)), np.zeros(1)
    model = _linear_model(3, sched, w, b)
    model.fit(X, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.fit(X, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for t in range(4):
        s = (t % 2) * 8
        w, b = _manual_sgd_step(w, b, X[s:s + 8], y[s:s + 8], 0.1 / (1 + t))
    np.testing.assert_allclose(model.get_weights()[0], w, rtol=1e-9, atol=1e-12)


def test_a_schedule_survives_save_and_load_with_the_step_count(tmp_path):
    X, y = _linear_problem(n=16)
    sched = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    model = _linear_model(3, sched, np.zeros((3, 1)), np.zeros(1))
    model.fit(X, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model.save(tmp_path / "m.fmlp")
    loaded = fastmlp.load_model(tmp_path / "m.fmlp")
    assert loaded.optimizer.iterations == 4
    assert loaded.optimizer.learning_rate == pytest.approx(model.optimizer.learning_rate)
    model.fit(X, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    loaded.fit(X, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], loaded.get_weights()[0])
