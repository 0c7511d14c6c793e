"""The layer classes a model config and a model file may name: one line per
kind.  A class's ``engine_kind`` names its engine node kind (codes from
``_engine.KINDS``, read from csrc/fastmlp.h) and ``format_minor`` the file-format
minor version that introduced it (docs/FORMAT.md)."""
from .activation import ELU, Activation, LeakyReLU, ReLU, Softmax
from .batch_normalization import BatchNormalization
from .concatenate import Concatenate
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .gaussian_noise import GaussianNoise
from .input_layer import InputLayer
from .merge import Add, Average, Maximum, Minimum, Multiply, Subtract
from .prelu import PReLU
from .normalization import Normalization
from .rescaling import Rescaling
from .layer_normalization import LayerNormalization, UnitNormalization
from .reshape import Identity, Reshape
from .activity_regularization import ActivityRegularization
from .embedding import Embedding
from .noise_dropout import AlphaDropout, GaussianDropout

CLASSES = {cls.__name__: cls for cls in (
    InputLayer,
    Dense,
    Dropout,
    GaussianNoise,
    BatchNormalization,
    Flatten,
    Activation, ReLU, Softmax, LeakyReLU, ELU,
    Concatenate,
    Add, Subtract, Multiply, Average, Maximum, Minimum,
    PReLU,
    Normalization, Rescaling, LayerNormalization, UnitNormalization, Identity, Reshape,
    ActivityRegularization,
    Embedding, GaussianDropout, AlphaDropout,
)}


def get(class_name):
    """The layer class of that config/file name, or None."""
    return CLASSES.get(class_name) if isinstance(class_name, str) else None


# The model classes by config/file name ("Functional", "Sequential"): fastmlp.models registers them,
# so that the file reader finds them without importing the models package.
MODELS = {}


def register_model(class_name, cls):
    MODELS[class_name] = cls


def model_class(class_name):
    """The model class of that config/file name, or None."""
    return MODELS.get(class_name) if isinstance(class_name, str) else None
