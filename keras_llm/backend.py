"""Imports keras and fails fast if its backend is not TensorFlow."""

import keras

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "keras_llm needs the TensorFlow backend of Keras. Received: "
        f"KERAS_BACKEND={keras.backend.backend()!r}. Set "
        "KERAS_BACKEND=tensorflow (or unset it) before importing keras."
    )
