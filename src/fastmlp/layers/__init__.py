"""Layers, one module per kind (as ``keras.layers``).  ``registry`` lists the
classes a config or a model file may name."""
from .activation import ELU, Activation, LeakyReLU, ReLU, Softmax
from .base import KerasTensor, Layer
from .batch_normalization import BatchNormalization
from .concatenate import Concatenate, concatenate
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .gaussian_noise import GaussianNoise
from .input_layer import Input, InputLayer, InputSpec
from .merge import (Add, Average, Maximum, Minimum, Multiply, Subtract, add, average, maximum, minimum, multiply,
                    subtract)
from .prelu import PReLU
from .normalization import Normalization
from .rescaling import Rescaling
from .layer_normalization import LayerNormalization, UnitNormalization
from .reshape import Identity, Reshape
from .activity_regularization import ActivityRegularization
from .embedding import Embedding
from .noise_dropout import AlphaDropout, GaussianDropout

__all__ = ["Layer", "KerasTensor", "Input", "InputLayer", "InputSpec", "Dense", "Dropout", "GaussianNoise",
           "BatchNormalization", "Flatten", "Activation", "ReLU", "Softmax", "LeakyReLU", "ELU", "PReLU",
           "Concatenate", "concatenate", "Add", "add", "Subtract", "subtract", "Multiply", "multiply",
           "Average", "average", "Maximum", "maximum", "Minimum", "minimum",
           "Normalization", "Rescaling", "LayerNormalization", "UnitNormalization", "Identity", "Reshape",
           "ActivityRegularization",
           "Embedding", "GaussianDropout", "AlphaDropout"]
