"""The snippets that stopped real Keras programs on fastmlp (the 'Real Keras programs run unchanged'
issue's list) run as written, with only the import changed."""
import os

import numpy as np
import pytest

import fastmlp as keras
from fastmlp import layers

RNG = np.random.default_rng(0)


def test_to_categorical_import_and_softmax_wrapper_and_normalization_adapt():
    from fastmlp.utils import to_categorical
    y = to_categorical(np.array([0, 2, 1]), num_classes=3)
    assert y.shape == (3, 3)
    train_features = RNG.normal(size=(100, 9)) * 10 + 3
    normalizer = layers.Normalization(axis=-1)
    normalizer.adapt(np.array(train_features))
    model = keras.Sequential([normalizer, layers.Dense(64, activation="relu"), layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(train_features, RNG.integers(0, 10, 100), epochs=1, verbose=0)
    probability_model = keras.Sequential([model, layers.Softmax()])
    p = probability_model.predict(train_features[:5], verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_the_imbalanced_data_tutorials_metric_list():
    METRICS = [
        keras.metrics.BinaryCrossentropy(name="cross entropy"),
        keras.metrics.MeanSquaredError(name="Brier score"),
        keras.metrics.TruePositives(name="tp"),
        keras.metrics.FalsePositives(name="fp"),
        keras.metrics.TrueNegatives(name="tn"),
        keras.metrics.FalseNegatives(name="fn"),
        keras.metrics.BinaryAccuracy(name="accuracy"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        keras.metrics.AUC(name="auc"),
        keras.metrics.AUC(name="prc", curve="PR"),
    ]
    x = RNG.normal(size=(200, 5)).astype("float32")
    y = (x[:, 0] > 1).astype("float32")
    model = keras.Sequential([keras.Input((5,)), layers.Dense(16, activation="relu"),
                              layers.Dense(1, activation="sigmoid",
                                           bias_initializer=keras.initializers.Constant(np.log([0.2])))])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=METRICS)
    h = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert {"cross entropy", "tp", "fp", "tn", "fn", "prc", "auc"} <= set(h.history)
    assert h.history["tp"][-1] + h.history["fn"][-1] == y.sum()


def test_user_callbacks_get_dicts_and_checkpoints_create_their_folder(tmp_path):
    pytest.importorskip("h5py")
    seen = []

    class Keys(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(list(logs.keys()))

        def on_epoch_begin(self, epoch, logs=None):
            seen.append(list(logs.keys()))

        def on_train_batch_begin(self, batch, logs=None):
            seen.append(list(logs.keys()))

    x, y = RNG.normal(size=(64, 4)), RNG.integers(0, 3, 64)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    path = os.path.join(str(tmp_path), "training_1", "cp.weights.h5")
    cp = keras.callbacks.ModelCheckpoint(filepath=path, save_weights_only=True, verbose=0)
    model.fit(x, y, epochs=1, callbacks=[Keys(), cp], verbose=0)
    assert seen and os.path.exists(path)
    model.load_weights(path)


def test_ops_outputs_and_weights_as_variables():
    from fastmlp import ops
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    x = ops.ones((4, 3))
    out = model(x)
    assert isinstance(out.numpy(), np.ndarray) and ops.convert_to_numpy(out).shape == (4, 2)
    layer = model.layers[-1]
    layer.bias.assign(np.array([1.0, -1.0], dtype="float32"))
    np.testing.assert_allclose(model.predict(np.zeros((1, 3), "float32"), verbose=0), [[1.0, -1.0]])
    init = keras.initializers.Constant(np.log([0.25]))
    assert np.allclose(init((2,)), np.log(0.25))


def test_model_utilities_and_serialization_and_class_relationships(tmp_path):
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, kernel_regularizer="l2")])
    assert len(model.losses) == 1
    again = keras.models.model_from_json(model.to_json())
    assert [type(l) for l in again.layers] == [type(l) for l in model.layers]
    clone = keras.models.clone_model(model)
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    cfg = keras.saving.serialize_keras_object(keras.losses.Huber(delta=2.0))
    assert keras.saving.deserialize_keras_object(cfg).get_config()["delta"] == 2.0
    assert not isinstance(keras.losses.CategoricalCrossentropy(), keras.losses.BinaryCrossentropy)
    assert not isinstance(keras.optimizers.Nadam(), keras.optimizers.Adamax)
    assert keras.callbacks.TensorBoard and keras.callbacks.BackupAndRestore
