"""Multi-head attention with masks, additive position bias and a KV cache."""

import math

import keras
from keras import ops

from keras_llm.layers.masks import merge_masks
from keras_llm.layers.utils import clone_initializer

# Added to masked scores before the softmax (in float32): exp() underflows to
# exactly zero, and a fully masked row stays finite (uniform) instead of NaN.
_MASK_VALUE = -1e9


def _write_cache(cache, new, index):
    """Writes `new` `(B, T, H, K)` into `cache` `(B, L, H, K)` at `index`.

    A scatter, not `ops.slice_update`: on TensorFlow that lowers to
    `XlaDynamicUpdateSlice`, an XLA-only op that TF Serving's graph
    executor cannot be relied on to run (docs/architecture.md, "Known
    traps": "Keras ops"). Scatter is a core op and compiles with XLA too.
    """
    shape = ops.shape(new)
    rows = ops.repeat(ops.arange(shape[0])[:, None], shape[1], axis=1)
    positions = ops.repeat(
        (ops.arange(shape[1]) + index)[None], shape[0], axis=0
    )
    indices = ops.stack([rows, positions], axis=-1)  # (B, T, 2)
    return ops.scatter_update(cache, indices, new)


def split_heads(x, num_heads, head_dim):
    """`(B, T, H*K)` → `(B, T, H, K)`."""
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0], shape[1], num_heads, head_dim))


def merge_heads(x):
    """`(B, T, H, K)` → `(B, T, H*K)`."""
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0], shape[1], x.shape[2] * x.shape[3]))


def scaled_dot_product_attention(
    query,
    key,
    value,
    attention_mask=None,
    position_bias=None,
    scale="default",
    dropout_layer=None,
    training=None,
):
    """Attention over heads: `softmax(scale * Q K^T + bias, masked) V`.

    Args:
        query: float tensor `(B, T, H, K)`.
        key: float tensor `(B, S, H, K)`.
        value: float tensor `(B, S, H, K)`.
        attention_mask: optional bool tensor broadcastable to `(B, T, S)`;
            `True` may attend.
        position_bias: optional float tensor broadcastable to `(B, H, T, S)`,
            added to the scores (T5 relative position bias).
        scale: float, `None` (no scaling, as in T5) or `"default"`
            (`1 / sqrt(K)`).
        dropout_layer: optional `keras.layers.Dropout` for the probabilities.
        training: bool or `None`.

    Returns:
        Float tensor `(B, T, H, K)` in the dtype of `value`.
    """
    if scale == "default":
        scale = 1.0 / math.sqrt(query.shape[-1])
    scores = ops.einsum("bthk,bshk->bhts", query, key)  # (B, H, T, S)
    # Softmax in float32: bf16/fp16 scores lose the small probabilities.
    scores = ops.cast(scores, "float32")
    if scale is not None:
        scores = scores * scale
    if position_bias is not None:
        scores = scores + ops.cast(position_bias, "float32")
    if attention_mask is not None:
        mask = ops.expand_dims(ops.cast(attention_mask, "bool"), 1)  # (B,1,T,S)
        scores = ops.where(mask, scores, _MASK_VALUE)
    probs = ops.softmax(scores, axis=-1)
    probs = ops.cast(probs, value.dtype)
    if dropout_layer is not None:
        probs = dropout_layer(probs, training=training)
    return ops.einsum("bhts,bshk->bthk", probs, value)  # (B, T, H, K)


@keras.saving.register_keras_serializable(package="keras_llm")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention with a fixed-size key/value cache.

    Self-attention when `value` is omitted, cross-attention otherwise. The
    key/value head size is independent of the hidden size (T5-small: 8 heads
    of 64 with hidden 512), and the `1/sqrt(K)` scaling can be turned off (T5
    folds it into the initialization).

    Weights: `Dense` projections `query`, `key` and `value` with kernels
    `(D, H*K)` (head `h` is columns `h*K` to `h*K + K - 1`) and biases
    `(H*K,)`, and `attention_output` with kernel `(H*K, D)` and bias `(D,)`.

    Cache layout for one layer: `(B, 2, L, H, K)`: keys then values, `L` the
    fixed maximum length, so a decode loop compiles once.

    Args:
        num_heads: int. Number of heads `H`.
        key_value_dim: int. Head size `K`. Defaults to `hidden_dim //
            num_heads`, with `hidden_dim` the last axis of `query`.
        use_bias: bool. Biases in the projections. Defaults to `True`.
        use_attention_scale: bool. Scale scores by `1/sqrt(K)`. Defaults to
            `True`.
        dropout: float. Dropout on the attention probabilities. Defaults to
            `0.0`.
        kernel_initializer: initializer for the projections. Defaults to
            `"glorot_uniform"`.
        **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).

    Call arguments:
        query: float tensor `(B, T, D)`.
        value: float tensor `(B, S, D)` for cross-attention, or `None`.
        attention_mask: bool tensor broadcastable to `(B, T, S)`, or `None`.
            With a self-attention cache, `S` is the cache length `L`.
        position_bias: float tensor broadcastable to `(B, H, T, S)`, or
            `None`.
        cache: float tensor `(B, 2, L, H, K)`, or `None`. With `cache_index`
            the new keys/values are written at `cache_index` and attention
            runs over the whole cache; without it the cache is used as it is
            (precomputed cross-attention keys/values).
        cache_index: int scalar tensor, or `None`.
        training: bool or `None`.

    Returns:
        `(B, T, D)`, or `((B, T, D), cache)` when `cache` is given.

    Example:
    ```python
    layer = keras_llm.layers.MultiHeadAttention(num_heads=2)
    outputs = layer(np.zeros((2, 8, 16)))  # (2, 8, 16)
    ```

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(
        self,
        num_heads,
        key_value_dim=None,
        use_bias=True,
        use_attention_scale=True,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_heads <= 0:
            raise ValueError(
                f"`num_heads` must be positive. Received: num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.key_value_dim = key_value_dim
        self.use_bias = use_bias
        self.use_attention_scale = use_attention_scale
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _dense(self, units, name):
        return keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, query_shape, value_shape=None):
        hidden_dim = query_shape[-1]
        value_shape = query_shape if value_shape is None else value_shape
        if self.key_value_dim is None and hidden_dim % self.num_heads:
            raise ValueError(
                "The hidden size must be divisible by `num_heads` when "
                "`key_value_dim` is not given. Received: "
                f"hidden_dim={hidden_dim}, num_heads={self.num_heads}"
            )
        head_dim = self.key_value_dim or hidden_dim // self.num_heads
        self.head_dim = head_dim
        # 2-D kernels (D, H*K) and (H*K, D), not (D, H, K) and (H, K, D):
        # XLA on CPU runs a one-row product with a 3-D kernel as a slow loop
        # (docs/performance.md). Initializers count the same fans as
        # EinsumDense did for the 3-D ones, and draw the same values.
        width = self.num_heads * head_dim  # H*K
        self.query_dense = self._dense(width, "query")
        self.query_dense.build(query_shape)
        self.key_dense = self._dense(width, "key")
        self.key_dense.build(value_shape)
        self.value_dense = self._dense(width, "value")
        self.value_dense.build(value_shape)
        self.output_dense = self._dense(hidden_dim, "attention_output")
        self.output_dense.build((query_shape[0], query_shape[1], width))
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="dropout"
        )
        self.built = True

    def _heads(self, dense, x):
        return split_heads(dense(x), self.num_heads, self.head_dim)

    def compute_key_value(self, value):
        """Keys and values of `value` `(B, S, D)`, as a cache `(B, 2, S, H, K)`.

        Precompute this once for cross-attention during decoding.
        """
        return ops.stack(
            [
                self._heads(self.key_dense, value),
                self._heads(self.value_dense, value),
            ],
            axis=1,
        )  # (B, 2, S, H, K)

    def call(
        self,
        query,
        value=None,
        attention_mask=None,
        position_bias=None,
        cache=None,
        cache_index=None,
        training=None,
    ):
        source = query if value is None else value
        q = self._heads(self.query_dense, query)  # (B, T, H, K)
        if cache is not None and cache_index is None:
            key, value_states = cache[:, 0], cache[:, 1]  # (B, L, H, K)
        else:
            key = self._heads(self.key_dense, source)  # (B, S, H, K)
            value_states = self._heads(self.value_dense, source)
            if cache is not None:
                key = _write_cache(cache[:, 0], key, cache_index)
                value_states = _write_cache(
                    cache[:, 1], value_states, cache_index
                )
                cache = ops.stack([key, value_states], axis=1)
        attended = scaled_dot_product_attention(
            q,
            key,
            value_states,
            attention_mask=merge_masks(attention_mask),
            position_bias=position_bias,
            scale="default" if self.use_attention_scale else None,
            dropout_layer=self.dropout_layer if self.dropout else None,
            training=training,
        )
        output = self.output_dense(merge_heads(attended))  # (B, T, D)
        if cache is not None:
            return output, cache
        return output

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_value_dim": self.key_value_dim,
                "use_bias": self.use_bias,
                "use_attention_scale": self.use_attention_scale,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
