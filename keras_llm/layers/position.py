"""Position encodings: sinusoidal, learned, T5 relative bias, rotary."""

import math

import keras
from keras import ops

from keras_llm.layers.utils import clone_initializer


@keras.saving.register_keras_serializable(package="keras_llm")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Fixed sinusoidal position encoding (Vaswani et al., 2017).

    `PE[p, 2i] = sin(p / w^(2i/D))`, `PE[p, 2i+1] = cos(p / w^(2i/D))`.

    Args:
        max_wavelength: int. The `w` above. Defaults to `10000`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: tensor `(B, T, D)`; only its shape is used.
        start_index: int or scalar tensor. Position of the first token
            (cache index while decoding). Defaults to `0`.

    Returns:
        Float tensor `(B, T, D)`, to be added to the embeddings.

    Example:
    ```python
    layer = keras_llm.layers.SinusoidalPositionEncoding()
    outputs = layer(np.zeros((2, 8, 16)))  # (2, 8, 16)
    ```

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, hidden_dim = shape[-2], shape[-1]
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        dims = ops.arange(hidden_dim)
        # Pairs (2i, 2i+1) share one frequency.
        exponent = ops.cast(2 * (dims // 2), "float32") / ops.cast(
            hidden_dim, "float32"
        )
        inverse_freq = 1.0 / ops.power(float(self.max_wavelength), exponent)
        angles = positions[:, None] * inverse_freq[None, :]  # (T, D)
        encoding = ops.where(dims % 2 == 0, ops.sin(angles), ops.cos(angles))
        encoding = ops.cast(encoding, self.compute_dtype)
        return ops.broadcast_to(encoding, shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config


@keras.saving.register_keras_serializable(package="keras_llm")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embedding (BERT, GPT-2).

    Args:
        sequence_length: int. Number of positions that get an embedding.
        initializer: initializer of the table. Defaults to
            `"glorot_uniform"`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: tensor `(B, T, D)`; only its shape is used.
        start_index: int or scalar tensor. Defaults to `0`.

    Returns:
        Float tensor `(B, T, D)`: rows `start_index .. start_index + T - 1`.

    Example:
    ```python
    layer = keras_llm.layers.PositionEmbedding(sequence_length=32)
    outputs = layer(np.zeros((2, 8, 16)))  # (2, 8, 16)
    ```
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if sequence_length <= 0:
            raise ValueError(
                "`sequence_length` must be positive. Received: "
                f"sequence_length={sequence_length}"
            )
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, inputs_shape[-1]),
            initializer=clone_initializer(self.initializer),
        )
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        table = ops.convert_to_tensor(self.position_embeddings)
        rows = ops.slice(table, (start_index, 0), (shape[-2], shape[-1]))
        return ops.broadcast_to(rows, shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config


def relative_position_bucket(
    relative_position, bidirectional=True, num_buckets=32, max_distance=128
):
    """T5's bucket of each relative position (`key - query`), as int32.

    Small distances get a bucket each, larger ones share logarithmically
    wider buckets up to `max_distance`. Bidirectional buckets split the range
    between the past and the future; causal ones keep only the past.
    """
    relative_position = ops.cast(relative_position, "int32")
    buckets = ops.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = (
            buckets + ops.cast(relative_position > 0, "int32") * num_buckets
        )
        distance = ops.abs(relative_position)
    else:
        distance = -ops.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # Clamp before the log so that distance 0 never reaches it.
    log_ratio = ops.log(
        ops.cast(ops.maximum(distance, 1), "float32") / max_exact
    ) / math.log(max_distance / max_exact)
    if_large = max_exact + ops.cast(
        log_ratio * (num_buckets - max_exact), "int32"
    )
    if_large = ops.minimum(if_large, num_buckets - 1)
    return buckets + ops.where(is_small, distance, if_large)


@keras.saving.register_keras_serializable(package="keras_llm")
class RelativePositionBias(keras.layers.Layer):
    """T5 relative position bias: a learned scalar per head and bucket.

    Args:
        num_heads: int. Number of attention heads `H`.
        num_buckets: int. Number of relative-position buckets. Defaults to
            `32`.
        max_distance: int. Distances beyond this share the last bucket.
            Defaults to `128`.
        bidirectional: bool. `True` for encoders, `False` (causal) for
            decoders. Defaults to `True`.
        initializer: initializer of the `(num_buckets, H)` table.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        query: tensor `(B, T, ...)`; only its length `T` is used.
        key: tensor `(B, S, ...)` or `None` (then `S = T`).
        start_index: int or scalar tensor. Absolute position of the first
            query (the cache index while decoding). Defaults to `0`.

    Returns:
        Float tensor `(1, H, T, S)`, added to the attention scores.

    Reference:
        - [Raffel et al., 2020](https://arxiv.org/abs/1910.10683)
    """

    def __init__(
        self,
        num_heads,
        num_buckets=32,
        max_distance=128,
        bidirectional=True,
        initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.initializer = keras.initializers.get(initializer)

    def build(self, query_shape, key_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_buckets, self.num_heads),
            initializer=clone_initializer(self.initializer),
        )
        self.built = True

    def call(self, query, key=None, start_index=0):
        query_length = ops.shape(query)[1]
        key_length = query_length if key is None else ops.shape(key)[1]
        query_positions = ops.arange(query_length) + start_index  # (T,)
        key_positions = ops.arange(key_length)  # (S,)
        relative = key_positions[None, :] - query_positions[:, None]  # (T, S)
        buckets = relative_position_bucket(
            relative, self.bidirectional, self.num_buckets, self.max_distance
        )
        values = ops.take(self.embeddings, buckets, axis=0)  # (T, S, H)
        return ops.expand_dims(ops.transpose(values, (2, 0, 1)), 0)  # (1,H,T,S)

    def compute_output_shape(self, query_shape, key_shape=None):
        key_length = query_shape[1] if key_shape is None else key_shape[1]
        return (1, self.num_heads, query_shape[1], key_length)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "num_buckets": self.num_buckets,
                "max_distance": self.max_distance,
                "bidirectional": self.bidirectional,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_llm")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (RoPE), applied to queries or keys.

    Rotates pairs `(x[i], x[i + K/2])` by the angle `p / w^(2i/K)` (the
    "rotate half" layout of GPT-NeoX, LLaMA and keras-hub).

    Args:
        max_wavelength: int. The `w` above. Defaults to `10000`.
        scaling_factor: float. Positions are divided by it (linear position
            interpolation). Defaults to `1.0`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float tensor `(B, T, H, K)`, `K` even.
        start_index: int or scalar tensor. Defaults to `0`.

    Returns:
        Float tensor `(B, T, H, K)`.

    Reference:
        - [Su et al., 2021](https://arxiv.org/abs/2104.09864)
    """

    def __init__(self, max_wavelength=10000, scaling_factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.scaling_factor = scaling_factor
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, head_dim = shape[1], inputs.shape[-1]
        if head_dim % 2:
            raise ValueError(
                "RotaryEmbedding needs an even head size. Received: "
                f"inputs.shape={inputs.shape}"
            )
        half = head_dim // 2
        inverse_freq = 1.0 / ops.power(
            float(self.max_wavelength),
            ops.arange(0, head_dim, 2, dtype="float32") / head_dim,
        )  # (K/2,)
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        angles = (positions / self.scaling_factor)[:, None] * inverse_freq
        angles = ops.concatenate([angles, angles], axis=-1)  # (T, K)
        cos = ops.cast(ops.cos(angles), inputs.dtype)[None, :, None, :]
        sin = ops.cast(ops.sin(angles), inputs.dtype)[None, :, None, :]
        rotated = ops.concatenate(
            [-inputs[..., half:], inputs[..., :half]], axis=-1
        )
        return inputs * cos + rotated * sin

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_wavelength": self.max_wavelength,
                "scaling_factor": self.scaling_factor,
            }
        )
        return config
