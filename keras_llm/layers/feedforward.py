"""Position-wise feed-forward network, plain or gated (GEGLU, SwiGLU)."""

import keras

from keras_llm.layers.utils import ACTIVATIONS
from keras_llm.layers.utils import clone_initializer
from keras_llm.layers.utils import get_activation


@keras.saving.register_keras_serializable(package="keras_llm")
class FeedForward(keras.layers.Layer):
    """Feed-forward block: dense → activation → dropout → dense.

    With `use_gated_activation=True` the activated projection is multiplied
    by a second, linear one: `act(x W0) * (x W1)`, i.e. gated-gelu (GEGLU,
    T5 v1.1) with `activation="gelu_tanh"` or SwiGLU with `"silu"`.

    Args:
        intermediate_dim: int. Width `F` of the hidden projection.
        activation: str. One of `"relu"`, `"gelu"` (exact), `"gelu_tanh"`,
            `"silu"`. Defaults to `"relu"`.
        use_gated_activation: bool. Defaults to `False`.
        dropout: float. Dropout after the activation. Defaults to `0.0`.
        use_bias: bool. Biases in the projections. Defaults to `True`.
        kernel_initializer: initializer. Defaults to `"glorot_uniform"`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float tensor `(B, T, D)`.
        training: bool or `None`.

    Returns:
        Float tensor `(B, T, D)`.

    Example:
    ```python
    layer = keras_llm.layers.FeedForward(intermediate_dim=64)
    outputs = layer(np.zeros((2, 8, 16)))  # (2, 8, 16)
    ```

    Reference:
        - [Shazeer, 2020](https://arxiv.org/abs/2002.05202)
    """

    def __init__(
        self,
        intermediate_dim,
        activation="relu",
        use_gated_activation=False,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if intermediate_dim <= 0:
            raise ValueError(
                "`intermediate_dim` must be positive. Received: "
                f"intermediate_dim={intermediate_dim}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {ACTIVATIONS}. "
                f"Received: activation={activation!r}"
            )
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.use_gated_activation = use_gated_activation
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _dense(self, units, activation, name):
        return keras.layers.Dense(
            units,
            activation=activation,
            use_bias=self.use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        activation = get_activation(self.activation)
        self.inner_dense = self._dense(
            self.intermediate_dim, activation, "inner_dense"
        )
        self.inner_dense.build(inputs_shape)
        if self.use_gated_activation:
            self.linear_dense = self._dense(
                self.intermediate_dim, None, "linear_dense"
            )
            self.linear_dense.build(inputs_shape)
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="dropout"
        )
        self.output_dense = self._dense(hidden_dim, None, "output_dense")
        self.output_dense.build((*inputs_shape[:-1], self.intermediate_dim))
        self.built = True

    def call(self, inputs, training=None):
        x = self.inner_dense(inputs)  # (B, T, F)
        if self.use_gated_activation:
            x = x * self.linear_dense(inputs)  # (B, T, F)
        x = self.dropout_layer(x, training=training)
        return self.output_dense(x)  # (B, T, D)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": self.activation,
                "use_gated_activation": self.use_gated_activation,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
