"""Class relationships as in Keras 3: for every pair of public classes that fastmlp and
Keras both have, ``issubclass`` gives the same answer (so ``isinstance`` checks written
for Keras, e.g. ``isinstance(loss, keras.losses.BinaryCrossentropy)``, behave the same)."""
import inspect
import os

import pytest

import fastmlp

MODULES = ["losses", "optimizers", "layers", "initializers", "regularizers", "callbacks", "models"]


def test_crossentropies_and_adam_variants_are_unrelated_as_in_keras():
    assert not isinstance(fastmlp.losses.CategoricalCrossentropy(), fastmlp.losses.BinaryCrossentropy)
    assert not isinstance(fastmlp.optimizers.Nadam(), fastmlp.optimizers.Adamax)
    assert not isinstance(fastmlp.initializers.TruncatedNormal(), fastmlp.initializers.RandomNormal)
    assert isinstance(fastmlp.optimizers.AdamW(), fastmlp.optimizers.Adam)          # as in Keras
    assert isinstance(fastmlp.initializers.GlorotUniform(), fastmlp.initializers.VarianceScaling)
    assert isinstance(fastmlp.callbacks.CallbackList(), fastmlp.callbacks.Callback)


def test_the_split_classes_keep_their_arguments_and_configs():
    cce = fastmlp.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    assert cce.get_config() == {"name": "categorical_crossentropy", "reduction": "sum_over_batch_size",
                                "from_logits": True, "label_smoothing": 0.1, "axis": -1}
    nadam = fastmlp.optimizers.Nadam(beta_1=0.8, epsilon=1e-6)
    assert (nadam.beta_1, nadam.beta_2, nadam.epsilon) == (0.8, 0.999, 1e-6)
    assert nadam.slot_names == ("m", "v") and fastmlp.optimizers.Adamax().slot_names == ("m", "u")


def test_callback_list_dispatches_every_hook_to_each_callback():
    seen = []

    class Rec(fastmlp.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(("end", epoch))

        def on_train_batch_begin(self, batch, logs=None):
            seen.append(("batch", batch))

    cbs = fastmlp.callbacks.CallbackList([Rec(), Rec()])
    cbs.on_epoch_end(3)
    cbs.on_train_batch_begin(1)
    cbs.on_predict_end()
    assert seen == [("end", 3), ("end", 3), ("batch", 1), ("batch", 1)]
    model = object()
    cbs.set_model(model)
    assert all(cb.model is model for cb in cbs.callbacks)


def test_issubclass_over_all_shared_public_classes_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    differences, pairs = [], 0
    for mod in MODULES:
        km, fm = getattr(keras, mod), getattr(fastmlp, mod)
        names = [n for n in dir(fm) if not n.startswith("_") and inspect.isclass(getattr(fm, n))
                 and inspect.isclass(getattr(km, n, None))]
        assert len(names) >= 2, mod
        for a in names:
            for b in names:
                pairs += 1
                k = issubclass(getattr(km, a), getattr(km, b))
                f = issubclass(getattr(fm, a), getattr(fm, b))
                if k != f:
                    differences.append(f"{mod}.{a} subclass of {mod}.{b}: keras {k}, fastmlp {f}")
    assert pairs > 500
    assert differences == []
