"""Bad inputs are refused with a ValueError or TypeError whose message names the problem."""
import numpy as np
import pytest

import fastmlp as keras
from fastmlp import layers, optimizers

X = np.random.default_rng(0).random((10, 4))
Y = np.arange(10) % 3


def classifier(loss="sparse_categorical_crossentropy", units=3, activation="softmax"):
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(5, activation="relu"),
                              layers.Dense(units, activation=activation)])
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model


def regressor():
    return classifier(loss="mse", units=2, activation="linear")


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("call", ["fit", "evaluate", "predict", "train_on_batch"])
def test_a_wrong_feature_count_is_refused_naming_the_expected_and_received_shapes(call):
    model = classifier()
    x = np.ones((10, 5))
    with pytest.raises(ValueError, match=r"expected axis -1 of input shape to have value 4.*\(10, 5\)"):
        if call == "predict":
            model.predict(x, verbose=0)
        elif call == "train_on_batch":
            model.train_on_batch(x, Y)
        else:
            getattr(model, call)(x, Y, verbose=0)


def test_a_wrong_feature_count_in_validation_data_is_refused():
    with pytest.raises(ValueError, match=r"value 4.*\(3, 5\)"):
        classifier().fit(X, Y, validation_data=(np.ones((3, 5)), Y[:3]), verbose=0)


@pytest.mark.parametrize("call", ["fit", "evaluate", "train_on_batch"])
def test_x_and_y_with_different_row_counts_are_refused(call):
    model = classifier()
    with pytest.raises(ValueError, match=r"same number of samples.*10.*9"):
        if call == "train_on_batch":
            model.train_on_batch(X, Y[:9])
        else:
            getattr(model, call)(X, Y[:9], verbose=0)


@pytest.mark.parametrize("call", ["fit", "predict"])
def test_three_dimensional_input_is_refused_with_a_hint_to_flatten(call):
    model = classifier()
    x = np.ones((10, 2, 2))
    with pytest.raises(ValueError, match=r"2-D.*\(10, 2, 2\).*[Ff]latten"):
        model.fit(x, Y, verbose=0) if call == "fit" else model.predict(x, verbose=0)


def test_a_one_dimensional_input_for_a_multi_feature_model_is_refused_with_a_reshape_hint():
    with pytest.raises(ValueError, match=r"2-D.*1-D.*reshape"):
        classifier().predict(np.ones(4), verbose=0)


def test_a_three_dimensional_input_shape_without_flatten_is_refused_at_build():
    with pytest.raises(ValueError, match=r"flat feature vectors.*\(4, 4\).*Flatten\(\)"):
        keras.Sequential([keras.Input(shape=(4, 4)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"'bn'.*flat feature vectors.*\(4, 4\)"):
        keras.Sequential([keras.Input(shape=(4, 4)), layers.Dropout(0.1), layers.BatchNormalization(name="bn"),
                          layers.Flatten(), layers.Dense(2)])


def test_images_of_the_wrong_shape_for_a_flatten_model_are_refused_naming_both_shapes():
    model = keras.Sequential([keras.Input(shape=(4, 4)), layers.Flatten(), layers.Dense(2)])
    for bad in (np.ones((3, 16)), np.ones((3, 4, 5)), np.ones((3, 4, 4, 1))):
        with pytest.raises(ValueError, match=r"expected input of shape \(None, 4, 4\).*" + str(bad.shape)[1:-1]):
            model.predict(bad, verbose=0)
    with pytest.raises(ValueError, match="data_format"):
        layers.Flatten(data_format="channels_first")


def test_one_hot_targets_with_the_sparse_loss_are_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"integer labels.*\(10, 3\).*categorical_crossentropy"):
        classifier().fit(X, np.eye(3)[Y], verbose=0)


def test_integer_labels_with_categorical_crossentropy_are_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"\(10, 1\).*3 units.*sparse_categorical_crossentropy"):
        classifier(loss="categorical_crossentropy").fit(X, Y, verbose=0)


def test_targets_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match=r"Targets have shape \(10, 3\).*2 units"):
        regressor().fit(X, np.ones((10, 3)), verbose=0)


# --------------------------------------------------------------------------- label values
@pytest.mark.parametrize("labels,pattern", [
    (Y + 1, r"labels must lie in \[0, 3\).*\[1, 3\]"),
    (Y - 1, r"labels must lie in \[0, 3\).*\[-1, 1\]"),
    (np.r_[2 ** 40, Y[1:]], r"labels must lie in \[0, 3\)"),
])
@pytest.mark.parametrize("call", ["fit", "evaluate", "train_on_batch"])
def test_sparse_labels_outside_the_class_range_are_refused(labels, pattern, call):
    model = classifier()
    with pytest.raises(ValueError, match=pattern):
        if call == "train_on_batch":
            model.train_on_batch(X, labels)
        else:
            getattr(model, call)(X, labels, verbose=0)


def test_non_integral_float_sparse_labels_are_refused():
    with pytest.raises(ValueError, match="integral"):
        classifier().fit(X, Y + 0.5, verbose=0)


# --------------------------------------------------------------------------- non-finite data
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_x_is_refused_by_fit_and_evaluate(bad):
    x = X.copy()
    x[3, 2] = bad
    with pytest.raises(ValueError, match=r"`x` contains NaN or infinity"):
        classifier().fit(x, Y, verbose=0)
    with pytest.raises(ValueError, match=r"NaN or infinity"):
        classifier().evaluate(x, Y, verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_regression_targets_is_refused(bad):
    y = np.ones((10, 2))
    y[4, 1] = bad
    with pytest.raises(ValueError, match=r"Targets contain NaN or infinity"):
        regressor().fit(X, y, verbose=0)


def test_nan_in_float_sparse_labels_is_refused():
    with pytest.raises(ValueError, match=r"Labels contain NaN or infinity"):
        classifier().fit(X, np.r_[np.nan, Y[1:]], verbose=0)


def test_nan_in_validation_data_is_refused():
    with pytest.raises(ValueError, match=r"validation x.*NaN or infinity"):
        classifier().fit(X, Y, validation_data=(np.full((3, 4), np.nan), Y[:3]), verbose=0)


def test_predict_on_nan_input_does_not_return_confident_finite_numbers():
    """A NaN feature must not silently become a plausible prediction: Keras, NumPy
    and torch all propagate NaN through relu (max(NaN, 0) is NaN)."""
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(5, activation="relu"),
                              layers.Dense(3, activation="softmax")])
    x = np.ones((2, 4))
    x[0, 1] = np.nan
    try:
        out = model.predict(x, verbose=0)
    except ValueError as e:   # refusing NaN is fine too
        assert "NaN" in str(e)
        return
    assert np.isnan(out[0]).all(), f"NaN input gave finite output {out[0]}"
    assert np.isfinite(out[1]).all()


def test_the_relu_activation_propagates_nan_like_keras():
    layer = layers.Dense(2, activation="relu", kernel_initializer="ones")
    out = layer(np.array([[np.nan, 1.0]]))
    assert np.isnan(out).all(), f"relu(NaN) gave {out}"


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("x", [np.array([["a"] * 4] * 10), np.array([[object()] * 4] * 10, dtype=object),
                               np.ones((10, 4), dtype=complex)])
def test_non_numeric_input_is_refused_naming_the_dtype(x):
    with pytest.raises(TypeError, match=r"numeric input.*dtype"):
        classifier().fit(x, Y, verbose=0)
    with pytest.raises(TypeError, match=r"numeric input.*dtype"):
        classifier().predict(x, verbose=0)


def test_string_input_given_as_nested_lists_is_refused():
    with pytest.raises(TypeError, match=r"numeric input.*<U"):
        classifier().predict([["1", "2", "3", "4"]], verbose=0)


@pytest.mark.parametrize("model", [classifier, regressor])
def test_string_targets_are_refused_naming_the_dtype(model):
    with pytest.raises(TypeError, match=r"numeric targets.*dtype"):
        model().fit(X, np.array(["a"] * 10), verbose=0)


def test_a_dict_input_is_refused():
    with pytest.raises(TypeError, match="single input array, not a dict"):
        classifier().fit({"a": X}, Y, verbose=0)


def test_missing_x_or_y_is_refused():
    with pytest.raises(ValueError, match="`x` must be provided"):
        classifier().fit(None, Y, verbose=0)
    with pytest.raises(ValueError, match="`y` must be provided"):
        classifier().fit(X, None, verbose=0)


# --------------------------------------------------------------------------- fit arguments
@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "8", True])
def test_a_non_positive_or_non_integer_batch_size_is_refused(batch_size):
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer"):
        classifier().fit(X, Y, batch_size=batch_size, verbose=0)
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer"):
        classifier().evaluate(X, Y, batch_size=batch_size, verbose=0)
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer"):
        classifier().predict(X, batch_size=batch_size, verbose=0)


@pytest.mark.parametrize("epochs", [-1, 1.5, "3", None])
def test_negative_or_non_integer_epochs_are_refused(epochs):
    with pytest.raises(ValueError, match=r"`epochs` must be a non-negative integer"):
        classifier().fit(X, Y, epochs=epochs, verbose=0)


def test_a_negative_initial_epoch_is_refused():
    with pytest.raises(ValueError, match="initial_epoch"):
        classifier().fit(X, Y, initial_epoch=-1, verbose=0)


@pytest.mark.parametrize("split", [1.0, -0.1, 1.5])
def test_a_validation_split_outside_zero_one_is_refused(split):
    with pytest.raises(ValueError, match=r"`validation_split` must be in \[0, 1\)"):
        classifier().fit(X, Y, validation_split=split, verbose=0)


def test_a_validation_split_that_leaves_no_validation_rows_is_refused():
    with pytest.raises(ValueError, match="validation_split.*no training or no validation"):
        classifier().fit(X[:1], Y[:1], validation_split=0.5, verbose=0)


def test_malformed_or_empty_validation_data_is_refused():
    with pytest.raises(ValueError, match="validation_data"):
        classifier().fit(X, Y, validation_data=(X,), verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        classifier().fit(X, Y, validation_data=(X[:0], Y[:0]), verbose=0)


def test_verbose_outside_the_keras_values_is_refused():
    with pytest.raises(ValueError, match=r"`verbose` must be 0, 1, 2 or 'auto'"):
        classifier().fit(X, Y, verbose=3)


def test_non_callback_objects_in_callbacks_are_refused():
    with pytest.raises(TypeError, match="Callback"):
        classifier().fit(X, Y, callbacks=[object()], verbose=0)


@pytest.mark.parametrize("call", ["fit", "evaluate", "train_on_batch"])
def test_empty_training_data_is_refused(call):
    model = classifier()
    x, y = np.zeros((0, 4)), np.zeros(0, dtype=int)
    with pytest.raises(ValueError, match="non-empty"):
        if call == "train_on_batch":
            model.train_on_batch(x, y)
        else:
            getattr(model, call)(x, y, verbose=0)


# --------------------------------------------------------------------------- weights arguments
@pytest.mark.parametrize("weights,pattern", [
    (np.ones(9), r"`sample_weight` must have shape \(10,\); got \(9,\)"),
    (-np.ones(10), r"`sample_weight` must be finite and non-negative"),
    (np.r_[np.nan, np.ones(9)], r"`sample_weight` must be finite and non-negative"),
])
def test_bad_sample_weights_are_refused(weights, pattern):
    with pytest.raises(ValueError, match=pattern):
        classifier().fit(X, Y, sample_weight=weights, verbose=0)


def test_class_weight_must_be_a_dict():
    with pytest.raises(TypeError, match="`class_weight` must be a dict"):
        classifier().fit(X, Y, class_weight=[1, 2, 3], verbose=0)


def test_class_weight_with_non_integer_keys_is_refused_naming_class_weight():
    with pytest.raises((ValueError, TypeError), match="class_weight"):
        classifier().fit(X, Y, class_weight={"cat": 1.0, 1: 2.0}, verbose=0)


def test_class_weight_with_negative_keys_is_refused():
    with pytest.raises(ValueError, match="class_weight"):
        classifier().fit(X, Y, class_weight={-1: 1.0}, verbose=0)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_negative_or_non_finite_class_weights_are_refused_like_bad_sample_weights(bad):
    with pytest.raises(ValueError, match="class_weight"):
        classifier().fit(X, Y, class_weight={0: bad, 1: 1.0, 2: 1.0}, verbose=0)


# --------------------------------------------------------------------------- compile
def test_fit_evaluate_and_train_on_batch_before_compile_are_refused():
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3, activation="softmax")])
    for call in (lambda: model.fit(X, Y, verbose=0), lambda: model.evaluate(X, Y, verbose=0),
                 lambda: model.train_on_batch(X, Y)):
        with pytest.raises(ValueError, match=r"compile\(\)"):
            call()


def test_predict_before_compile_is_allowed():
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3)])
    assert model.predict(X, verbose=0).shape == (10, 3)


def test_compile_without_a_loss_is_refused():
    with pytest.raises(ValueError, match="loss"):
        keras.Sequential([keras.Input(shape=(4,)), layers.Dense(2)]).compile(optimizer="adam")


def test_an_unknown_activation_name_is_refused_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown activation: 'relux'.*'relu'.*'softmax'"):
        layers.Dense(3, activation="relux")


def test_a_python_function_as_activation_is_refused_listing_the_valid_ones():
    with pytest.raises(NotImplementedError, match=r"activation.*'relu'"):
        layers.Dense(3, activation=lambda z: z)


def test_an_unknown_loss_name_is_refused_listing_the_valid_ones():
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"Unknown loss: 'mse2'.*'binary_crossentropy'.*'mse'"):
        model.compile(optimizer="adam", loss="mse2")


def test_an_unknown_optimizer_name_is_refused_listing_the_valid_ones():
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"Unknown optimizer: 'adamz'.*'adam'.*'sgd'"):
        model.compile(optimizer="adamz", loss="mse")


def test_an_unknown_metric_name_is_refused_listing_the_valid_ones():
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"Unknown metric: 'acuracy'.*'accuracy'.*'mae'"):
        model.compile(optimizer="adam", loss="mse", metrics=["acuracy"])


def test_metrics_given_as_a_non_list_are_refused():
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(2)])
    with pytest.raises(TypeError, match="`metrics` must be a list"):
        model.compile(optimizer="adam", loss="mse", metrics=42)


# --------------------------------------------------------------------------- layers
@pytest.mark.parametrize("units", [0, -3, 2.5, "8", True, None])
def test_dense_units_must_be_a_positive_integer(units):
    with pytest.raises(ValueError, match=rf"expected a positive integer. Received: units={units!r}"):
        layers.Dense(units)


def test_dense_accepts_numpy_integer_units():
    assert layers.Dense(np.int64(3)).units == 3


@pytest.mark.parametrize("rate", [1.5, -0.1, "0.5", None])
def test_dropout_rate_must_lie_between_zero_and_one(rate):
    with pytest.raises(ValueError, match=r"`rate`.*between 0 and 1"):
        layers.Dropout(rate=rate)


def test_an_input_shape_with_zero_or_negative_sizes_is_refused():
    with pytest.raises(ValueError, match="positive integers"):
        keras.Input(shape=(0,))
    with pytest.raises(ValueError, match="positive integers"):
        layers.Dense(2, input_shape=(-4,))


def test_unknown_layer_keyword_arguments_are_refused():
    with pytest.raises(TypeError, match="Unrecognized keyword argument.*activaton"):
        layers.Dense(3, activaton="relu")


def test_adding_a_non_layer_is_refused():
    with pytest.raises(TypeError, match="instance of class Layer"):
        keras.Sequential([np.ones(3)])


def test_an_input_after_other_layers_is_refused():
    model = keras.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="Input.*first"):
        model.add(keras.Input(shape=(3,)))


def test_duplicate_layer_names_are_refused():
    with pytest.raises(ValueError, match="unique names.*'twin'"):
        keras.Sequential([layers.Dense(2, name="twin"), layers.Dense(2, name="twin")])


def test_a_negative_regularization_factor_is_refused():
    with pytest.raises(ValueError, match="l2"):
        keras.regularizers.l2(-0.1)


# --------------------------------------------------------------------------- set_weights
def test_set_weights_with_the_wrong_number_of_arrays_is_refused():
    model = classifier()
    with pytest.raises(ValueError, match=r"weight list of length 3.*expecting 4 weights"):
        model.set_weights(model.get_weights()[:-1])


def test_set_weights_with_wrong_shapes_is_refused_naming_both_shapes():
    model = classifier()
    weights = model.get_weights()
    weights[0] = weights[0].T
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(4, 5\)"):
        model.set_weights(weights)


def test_a_failed_set_weights_leaves_the_model_unchanged():
    model = classifier()
    before = model.get_weights()
    bad = [np.zeros_like(w) for w in before]
    bad[-1] = np.zeros(7)
    with pytest.raises(ValueError):
        model.set_weights(bad)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_layer_set_weights_with_wrong_shapes_is_refused():
    layer = classifier().layers[0]
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(3, 5\)"):
        layer.set_weights([np.ones((3, 5)), np.ones(5)])


def test_set_weights_with_non_numeric_arrays_is_refused():
    model = classifier()
    weights = model.get_weights()
    weights[1] = np.array(["x"] * 5)
    with pytest.raises(TypeError, match="numeric"):
        model.set_weights(weights)


def test_set_weights_on_an_unbuilt_model_is_refused():
    with pytest.raises(ValueError, match="not been built"):
        keras.Sequential([layers.Dense(2)]).set_weights([np.ones((3, 2)), np.ones(2)])


# --------------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("clips", [dict(clipnorm=1.0, clipvalue=0.5), dict(clipnorm=1.0, global_clipnorm=1.0),
                                   dict(clipvalue=1.0, global_clipnorm=2.0)])
def test_more_than_one_gradient_clipping_option_is_refused(clips):
    with pytest.raises(ValueError, match=r"Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.Adam(**clips)


@pytest.mark.parametrize("arg", ["clipnorm", "clipvalue", "global_clipnorm"])
def test_negative_clipping_limits_are_refused(arg):
    with pytest.raises(ValueError, match=arg):
        optimizers.SGD(**{arg: -1.0})


@pytest.mark.parametrize("lr", [-0.1, float("nan"), float("inf")])
def test_a_negative_or_non_finite_learning_rate_is_refused(lr):
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.Adam(learning_rate=lr)


def test_sgd_momentum_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)


def test_adamw_without_weight_decay_is_refused():
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)


def test_unknown_optimizer_keyword_arguments_are_refused():
    with pytest.raises(TypeError, match="lr"):
        optimizers.Adam(lr=0.1)


# --------------------------------------------------------------------------- global settings
def test_global_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="float16"):
        keras.config.set_floatx("float16")
    with pytest.raises(ValueError, match="seed"):
        keras.utils.set_random_seed(-1)
    with pytest.raises(ValueError, match="non-negative integer"):
        keras.set_num_threads(-1)


@pytest.mark.parametrize("cls, arg", [(layers.Dropout, 0.5), (layers.GaussianNoise, 0.1)])
@pytest.mark.parametrize("seed", [-1, 1.5, "1", True])
def test_random_layers_refuse_a_seed_that_is_not_a_non_negative_integer(cls, arg, seed):
    with pytest.raises(ValueError, match=f"{cls.__name__} seed must be a non-negative integer"):
        cls(arg, seed=seed)
    assert cls(arg, seed=np.int64(3)).seed == 3
