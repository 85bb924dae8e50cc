"""RMS normalization (T5's "LayerNorm": no mean subtraction, no bias)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_llm")
class RMSNormalization(keras.layers.Layer):
    """Root-mean-square normalization over the last axis.

    `y = x / sqrt(mean(x^2) + epsilon) * scale`, computed in float32 whatever
    the layer's compute dtype (bf16 squares lose too much).

    Args:
        epsilon: float. Added to the mean square. Defaults to `1e-6`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float tensor `(..., D)`.

    Example:
    ```python
    layer = keras_llm.layers.RMSNormalization()
    outputs = layer(np.ones((2, 8, 16)))  # (2, 8, 16)
    ```

    Reference:
        - [Zhang and Sennrich, 2019](https://arxiv.org/abs/1910.07467)
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, inputs_shape):
        self.scale = self.add_weight(
            name="scale", shape=(inputs_shape[-1],), initializer="ones"
        )
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        mean_square = ops.mean(ops.square(x), axis=-1, keepdims=True)
        x = x * ops.rsqrt(mean_square + self.epsilon)
        return ops.cast(x, self.compute_dtype) * ops.cast(
            self.scale, self.compute_dtype
        )

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config
