"""keras_llm: Keras 3 layers, models and tools for transformer language models.

Importing the package is cheap (no TensorFlow): `keras_llm.config` and the CLI's
`validate` stay fast. Heavy modules load on first attribute access.
"""

import importlib
import os

# keras_llm runs on TensorFlow only (tf.data, tf.distribute, SavedModel export).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_llm.version import __version__  # noqa: E402

_LAZY_MODULES = (
    "blocks",
    "config",
    "generation",
    "kinds",
    "layers",
    "loading",
    "models",
    "quantization",
    "rundir",
    "serving",
    "training",
)
# The one-call entry points: keras_llm.build / load / train / export.
_LAZY_FUNCTIONS = {
    "build": "keras_llm.models",
    "load": "keras_llm.loading",  # rundir.load, damaged files named
    "train": "keras_llm.training",
    "export": "keras_llm.serving",
}


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"keras_llm.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'keras_llm' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY_FUNCTIONS, *_LAZY_MODULES]
