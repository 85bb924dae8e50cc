"""Small helpers shared by the layers."""

import keras


def clone_initializer(initializer):
    """A fresh copy, so sublayers never share one initializer instance."""
    initializer = keras.initializers.get(initializer)
    return initializer.__class__.from_config(initializer.get_config())


ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")


def get_activation(name):
    """Activation function by name: `relu`, `gelu` (exact), `gelu_tanh`, `silu`.

    `gelu_tanh` is the tanh approximation (GPT-2's and T5 v1.1's "gelu_new").
    """
    if name == "gelu":
        return lambda x: keras.activations.gelu(x, approximate=False)
    if name == "gelu_tanh":
        return lambda x: keras.activations.gelu(x, approximate=True)
    if name in ("relu", "silu"):
        return keras.activations.get(name)
    raise ValueError(
        f"`activation` must be one of {ACTIVATIONS}. "
        f"Received: activation={name!r}"
    )
