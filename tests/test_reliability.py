"""Constructors refuse arguments that can only give NaN, infinity, overflow or a silently wrong
result, with an error that names the argument and its bound ("Reliability" issue)."""
import math

import numpy as np
import pytest

import fastmlp
from fastmlp import _engine, losses, optimizers
from fastmlp import metrics as M
from fastmlp.optimizers import schedules

NAN, INF = float("nan"), float("inf")


# --------------------------------------------------------------------------- metrics
def test_auc_refuses_more_thresholds_than_one_million_naming_the_argument_and_the_bound():
    with pytest.raises(ValueError, match=r"num_thresholds.*1000000"):
        M.AUC(num_thresholds=10 ** 9)
    with pytest.raises(ValueError, match="num_thresholds"):
        M.AUC(num_thresholds=10 ** 6 + 1)
    assert M.AUC(num_thresholds=10 ** 6).num_thresholds == 10 ** 6


@pytest.mark.parametrize("bad", [2.5, "200", None, True])
def test_auc_refuses_a_number_of_thresholds_that_is_not_an_integer(bad):
    with pytest.raises(TypeError, match="num_thresholds"):
        M.AUC(num_thresholds=bad)


@pytest.mark.parametrize("cls", [M.TopKCategoricalAccuracy, M.SparseTopKCategoricalAccuracy])
@pytest.mark.parametrize("k", [2 ** 63, 2 ** 31, 0, -1])
def test_top_k_accuracy_refuses_k_outside_one_to_two_to_the_31_minus_one(cls, k):
    with pytest.raises(ValueError, match=r"`k`.*2147483647"):
        cls(k=k)


@pytest.mark.parametrize("cls", [M.TopKCategoricalAccuracy, M.SparseTopKCategoricalAccuracy])
@pytest.mark.parametrize("k", [2.5, "3", None])
def test_top_k_accuracy_refuses_a_k_that_is_not_an_integer(cls, k):
    with pytest.raises(TypeError, match="`k`"):
        cls(k=k)


def test_top_k_accuracy_accepts_the_largest_k_and_then_counts_every_target():
    Y = np.eye(4)[[0, 1, 2, 3, 1]]
    P = np.random.default_rng(0).random((5, 4))
    m = M.TopKCategoricalAccuracy(k=2 ** 31 - 1)
    m.update_state(Y, P)
    assert m.result() == 1.0


@pytest.mark.parametrize("k", [1e30, float(2 ** 63), 2.0 ** 70])
def test_the_engine_clamps_a_huge_top_k_instead_of_overflowing_the_integer_conversion(k):
    """A k beyond int64 counts every target as among the top k (converting it to int64
    unclamped is undefined behaviour, and gave INT64_MIN, so no target, on x86)."""
    rng = np.random.default_rng(1)
    P = rng.random((6, 4))
    y = np.array([0, 1, 2, 3, 1, 0], dtype=np.int64)
    Y = np.eye(4)[y]
    assert _engine.metrics_update([(3, k)], P, Y, None, None) == [6.0]
    assert _engine.metrics_update([(4, k)], P, None, y, None) == [6.0]
    assert _engine.metrics_update([(4, NAN)], P, None, y, None) == [0.0]   # NaN counts as k = 0


@pytest.mark.parametrize("cls", [M.Precision, M.Recall])
def test_precision_and_recall_refuse_a_negative_class_id(cls):
    with pytest.raises(ValueError, match="class_id"):
        cls(class_id=-5)
    with pytest.raises(TypeError, match="class_id"):
        cls(class_id=1.5)
    assert cls(class_id=None).class_id is None and cls(class_id=np.int64(2)).class_id == 2


@pytest.mark.parametrize("cls", [M.Precision, M.Recall])
@pytest.mark.parametrize("bad", [1.5, -0.1, NAN, INF])
def test_precision_and_recall_refuse_thresholds_outside_zero_one(cls, bad):
    with pytest.raises(ValueError, match=r"thresholds.*\[0, 1\]"):
        cls(thresholds=bad)


def test_precision_and_recall_accept_thresholds_zero_and_one_as_keras_does():
    assert M.Precision(thresholds=0.0).thresholds == 0.0 and M.Recall(thresholds=1).thresholds == 1.0


def test_f1_score_per_class_before_any_update_is_an_empty_vector_and_averaged_ones_are_zero():
    empty = M.F1Score(average=None).result()
    assert isinstance(empty, np.ndarray) and empty.shape == (0,)
    for average in ("micro", "macro", "weighted"):
        assert M.F1Score(average=average).result() == 0.0


def test_f1_score_keeps_its_number_of_classes_across_reset_state_as_keras_does():
    m = M.F1Score(average=None)
    m.update_state(np.eye(3)[[0, 1, 2]], np.eye(3)[[0, 1, 1]])
    assert m.result().shape == (3,)
    m.reset_state()
    assert np.array_equal(m.result(), np.zeros(3))


def test_f1_score_refuses_a_threshold_that_is_not_a_number_by_name():
    with pytest.raises(TypeError, match="threshold"):
        M.F1Score(threshold="0.5")


# --------------------------------------------------------------------------- schedules
def _schedule(cls, steps):
    if cls is schedules.CosineDecayRestarts:
        return cls(0.1, first_decay_steps=steps)
    if cls in (schedules.ExponentialDecay, schedules.InverseTimeDecay):
        return cls(0.1, decay_steps=steps, decay_rate=0.5)
    return cls(0.1, decay_steps=steps)


SCHEDULES = [schedules.PolynomialDecay, schedules.CosineDecay, schedules.CosineDecayRestarts,
             schedules.ExponentialDecay, schedules.InverseTimeDecay]


@pytest.mark.parametrize("cls", SCHEDULES)
@pytest.mark.parametrize("steps", [0, -1, NAN, INF])
def test_schedules_refuse_decay_steps_that_are_not_finite_and_positive(cls, steps):
    with pytest.raises(ValueError, match="decay_steps"):
        _schedule(cls, steps)


@pytest.mark.parametrize("cls", SCHEDULES)
@pytest.mark.parametrize("steps", ["x", None, True])
def test_schedules_refuse_decay_steps_that_are_not_numbers_by_name(cls, steps):
    with pytest.raises(TypeError, match="decay_steps"):
        _schedule(cls, steps)


@pytest.mark.parametrize("cls", SCHEDULES)
def test_schedules_keep_integer_decay_steps_and_still_compute(cls):
    s = _schedule(cls, 10)
    assert s.get_config()[("first_" if cls is schedules.CosineDecayRestarts else "") + "decay_steps"] == 10
    assert np.all(np.isfinite(s(np.arange(50))))


def test_schedules_refuse_non_finite_rates_and_a_non_positive_t_mul():
    with pytest.raises(ValueError, match="initial_learning_rate"):
        schedules.CosineDecay(NAN, 10)
    with pytest.raises(TypeError, match="decay_rate"):
        schedules.ExponentialDecay(0.1, 10, "0.5")
    with pytest.raises(ValueError, match="t_mul"):
        schedules.CosineDecayRestarts(0.1, 10, t_mul=0.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        schedules.CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=-5)


@pytest.mark.parametrize("boundaries, values, error, match", [
    (["a"], [1.0, 0.5], TypeError, r"boundaries\[0\]"),
    ([10], [1.0, "b"], TypeError, r"values\[1\]"),
    ([10], [1.0, NAN], ValueError, r"values\[1\]"),
    ("10", [1.0, 0.5], TypeError, "boundaries"),
    ([20, 10], [1.0, 0.5, 0.1], ValueError, "strictly increasing"),
    ([10, 10], [1.0, 0.5, 0.1], ValueError, "strictly increasing"),
    ([10, 20], [1.0, 0.5], ValueError, "values"),
])
def test_piecewise_constant_decay_refuses_non_numeric_unsorted_or_mismatched_lists(boundaries, values,
                                                                                    error, match):
    with pytest.raises(error, match=match):
        schedules.PiecewiseConstantDecay(boundaries, values)


# --------------------------------------------------------------------------- optimizers
ADAM_FAMILY = [optimizers.Adam, optimizers.AdamW, optimizers.Adamax, optimizers.Nadam]
ALL_OPTIMIZERS = [optimizers.SGD, optimizers.RMSprop, optimizers.Adagrad, optimizers.Adadelta, *ADAM_FAMILY]
WITH_EPSILON = [c for c in ALL_OPTIMIZERS if c is not optimizers.SGD]


@pytest.mark.parametrize("cls", ADAM_FAMILY)
@pytest.mark.parametrize("arg", ["beta_1", "beta_2"])
@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, NAN])
def test_the_adam_family_refuses_decay_rates_outside_zero_one(cls, arg, bad):
    with pytest.raises(ValueError, match=rf"{arg}.*\[0, 1\)"):
        cls(**{arg: bad})


@pytest.mark.parametrize("cls", ADAM_FAMILY)
def test_the_adam_family_accepts_decay_rates_of_zero(cls):
    opt = cls(beta_1=0.0, beta_2=0.0)
    assert (opt.beta_1, opt.beta_2) == (0.0, 0.0)


@pytest.mark.parametrize("cls", WITH_EPSILON)
@pytest.mark.parametrize("bad", [-1e-7, INF, NAN])
def test_optimizers_refuse_a_negative_or_non_finite_epsilon(cls, bad):
    with pytest.raises(ValueError, match="epsilon"):
        cls(epsilon=bad)


@pytest.mark.parametrize("cls, arg", [(optimizers.RMSprop, "rho"), (optimizers.RMSprop, "momentum"),
                                      (optimizers.Adadelta, "rho"), (optimizers.SGD, "momentum")])
@pytest.mark.parametrize("bad", [1.5, -0.1, NAN])
def test_rho_and_momentum_outside_zero_one_are_refused(cls, arg, bad):
    with pytest.raises(ValueError, match=rf"{arg}.*\[0, 1\]"):
        cls(**{arg: bad})


def test_adagrad_refuses_a_negative_initial_accumulator_value():
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        optimizers.Adagrad(initial_accumulator_value=-0.1)


@pytest.mark.parametrize("cls", ALL_OPTIMIZERS)
@pytest.mark.parametrize("arg", ["learning_rate", "clipnorm", "clipvalue", "global_clipnorm", "weight_decay"])
def test_optimizer_arguments_that_are_not_numbers_are_refused_by_name(cls, arg):
    with pytest.raises(TypeError, match=arg):
        cls(**{arg: "x"})


@pytest.mark.parametrize("cls, arg", [(optimizers.Adam, "beta_1"), (optimizers.Nadam, "beta_2"),
                                      (optimizers.RMSprop, "rho"), (optimizers.SGD, "momentum"),
                                      (optimizers.Adagrad, "epsilon"), (optimizers.Adamax, "epsilon")])
@pytest.mark.parametrize("bad", ["0.9", None, [0.9]])
def test_optimizer_hyperparameters_that_are_not_numbers_are_refused_by_name(cls, arg, bad):
    with pytest.raises(TypeError, match=arg):
        cls(**{arg: bad})


@pytest.mark.parametrize("arg", ["weight_decay", "clipnorm"])
@pytest.mark.parametrize("bad", [-1.0, INF, NAN])
def test_negative_or_non_finite_weight_decay_and_clipping_are_refused(arg, bad):
    with pytest.raises(ValueError, match=arg):
        optimizers.AdamW(**{arg: bad})


def test_numpy_scalars_are_accepted_as_hyperparameters():
    opt = optimizers.Adam(learning_rate=np.float32(0.01), beta_1=np.float64(0.8), epsilon=np.float32(1e-6))
    assert opt.learning_rate == pytest.approx(0.01) and opt.beta_1 == 0.8


@pytest.mark.parametrize("config", [
    {"class_name": "Adam", "config": {"beta_1": 1.5}},
    {"class_name": "RMSprop", "config": {"rho": -1.0}},
    {"class_name": "SGD", "config": {"learning_rate": {"class_name": "PolynomialDecay",
                                                       "config": {"initial_learning_rate": 0.1,
                                                                  "decay_steps": 0}}}},
    {"class_name": "SGD", "config": {"learning_rate": {"class_name": "PiecewiseConstantDecay",
                                                       "config": {"boundaries": [5, 1],
                                                                  "values": [0.1, 0.2, 0.3]}}}},
])
def test_deserialize_validates_as_the_constructors_do(config):
    with pytest.raises(ValueError):
        optimizers.deserialize(config)


def test_deserialize_refuses_configs_that_are_not_dicts_with_a_type_error():
    with pytest.raises(TypeError):
        optimizers.deserialize({"class_name": "Adam", "config": [0.1]})
    with pytest.raises(TypeError):
        schedules.deserialize({"class_name": "CosineDecay"})


def test_a_model_file_whose_compile_config_has_an_invalid_optimizer_raises_format_error(tmp_path):
    from test_saving import seal, split

    m = fastmlp.Sequential([fastmlp.Input(shape=(3,)), fastmlp.layers.Dense(2, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.save(tmp_path / "m.fmlp", include_optimizer=False)
    pre, header, body = split((tmp_path / "m.fmlp").read_bytes())
    header["compile"]["optimizer"]["config"]["beta_1"] = 1.5
    with pytest.raises(fastmlp.FormatError, match="beta_1"):
        fastmlp.models.from_bytes(seal(pre, header, body))


@pytest.mark.parametrize("bad, error", [(2 ** 63, ValueError), (2 ** 70, ValueError), (-1, ValueError),
                                        (1.5, TypeError), ("3", TypeError)])
def test_optimizer_iterations_outside_int64_are_refused_where_they_are_set(bad, error):
    opt = optimizers.Adam()
    with pytest.raises(error, match="iterations"):
        opt.iterations = bad
    opt.iterations = np.int64(2 ** 63 - 1)
    assert opt.iterations == 2 ** 63 - 1 and type(opt.iterations) is int


# --------------------------------------------------------------------------- threads
@pytest.mark.parametrize("n", [2 ** 40, 2 ** 31, 1025])
def test_set_num_threads_refuses_more_than_1024_threads_naming_the_bound(n):
    before = fastmlp.get_num_threads()
    with pytest.raises(ValueError, match="1024"):
        fastmlp.set_num_threads(n)
    assert fastmlp.get_num_threads() == before


# --------------------------------------------------------------------------- losses
@pytest.mark.parametrize("bad", [0.0, -1.0, NAN, INF])
def test_huber_refuses_a_delta_that_is_not_finite_and_positive(bad):
    with pytest.raises(ValueError, match="delta"):
        losses.Huber(delta=bad)
    with pytest.raises(ValueError, match="delta"):
        losses.deserialize({"class_name": "Huber", "config": {"delta": bad}})


@pytest.mark.parametrize("cls", [losses.BinaryCrossentropy, losses.CategoricalCrossentropy])
def test_label_smoothing_that_is_not_a_number_is_refused_by_name(cls):
    with pytest.raises(TypeError, match="label_smoothing"):
        cls(label_smoothing="x")
    with pytest.raises(ValueError, match=r"label_smoothing.*\[0, 1\]"):
        cls(label_smoothing=1.5)


@pytest.mark.parametrize("cls", [losses.MeanSquaredError, losses.Huber, losses.SparseCategoricalCrossentropy])
@pytest.mark.parametrize("bad", ["bogus", "SUM", ["sum"], 0])
def test_bad_reduction_strings_are_refused_listing_the_accepted_ones(cls, bad):
    with pytest.raises(ValueError, match=r"`reduction`.*Expected one of"):
        cls(reduction=bad)


def test_valid_losses_still_compute_finite_values():
    y, p = np.array([[0.0, 1.0]]), np.array([[0.3, 0.7]])
    for loss in (losses.Huber(delta=0.5), losses.CategoricalCrossentropy(label_smoothing=1.0)):
        assert math.isfinite(loss(y, p))


# ---------------------------------------------------------------------------- inputs that used to crash or overflow
def _small_classifier():
    model = fastmlp.Sequential([fastmlp.Input(shape=(3,)), fastmlp.layers.Dense(4, activation="relu"),
                                fastmlp.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_sample_weights_that_overflow_float32_are_refused_instead_of_training_to_inf():
    model = _small_classifier()
    x, y = np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="sample_weight.*overflows float32"):
        model.fit(x, y, sample_weight=np.full(4, 1e39), verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_test_on_batch_and_train_on_batch_on_zero_rows_raise_a_clear_value_error():
    model = _small_classifier()
    for call in (model.test_on_batch, model.train_on_batch):
        with pytest.raises(ValueError, match="non-empty"):
            call(np.zeros((0, 3), np.float32), np.zeros(0, np.int64))


def test_a_validation_split_given_as_a_string_is_refused_by_name():
    with pytest.raises(ValueError, match="validation_split"):
        _small_classifier().fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), validation_split="0.5", verbose=0)


def test_a_class_weight_key_far_beyond_the_classes_is_refused_without_allocating_a_table():
    with pytest.raises(ValueError, match="class_weight"):
        _small_classifier().fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), class_weight={10 ** 9: 1.0}, verbose=0)


def test_fit_refuses_steps_that_would_overflow_the_optimizers_counter():
    model = _small_classifier()
    model.optimizer.iterations = (1 << 63) - 3
    with pytest.raises(ValueError, match="64-bit step counter"):
        model.fit(np.ones((64, 3), np.float32), np.arange(64) % 2, batch_size=8, verbose=0)
    assert model.optimizer.iterations == (1 << 63) - 3
