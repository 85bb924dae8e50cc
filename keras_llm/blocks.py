"""Transformer blocks: `EncoderBlock` and cache-aware `DecoderBlock`.

Shapes: `B` batch, `T` target length, `S` source length, `D` hidden,
`L` cache length, `H` heads, `K` head size.
"""

import keras

from keras_llm.layers.attention import MultiHeadAttention
from keras_llm.layers.feedforward import FeedForward
from keras_llm.layers.masks import causal_mask
from keras_llm.layers.masks import merge_masks
from keras_llm.layers.masks import padding_to_attention_mask
from keras_llm.layers.normalization import RMSNormalization
from keras_llm.layers.utils import clone_initializer

NORMALIZATIONS = ("layer_norm", "rms_norm")


class _Block(keras.layers.Layer):
    """Shared arguments and sublayer factories of the two blocks."""

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        key_value_dim=None,
        activation="relu",
        use_gated_activation=False,
        dropout=0.0,
        normalize_first=False,
        normalization="layer_norm",
        layer_norm_epsilon=1e-5,
        use_bias=True,
        use_attention_scale=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"`normalization` must be one of {NORMALIZATIONS}. "
                f"Received: normalization={normalization!r}"
            )
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.key_value_dim = key_value_dim
        self.activation = activation
        self.use_gated_activation = use_gated_activation
        self.dropout = dropout
        self.normalize_first = normalize_first
        self.normalization = normalization
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_bias = use_bias
        self.use_attention_scale = use_attention_scale
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _attention(self, name):
        return MultiHeadAttention(
            num_heads=self.num_heads,
            key_value_dim=self.key_value_dim,
            use_bias=self.use_bias,
            use_attention_scale=self.use_attention_scale,
            dropout=self.dropout,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def _norm(self, name):
        if self.normalization == "rms_norm":
            return RMSNormalization(
                epsilon=self.layer_norm_epsilon,
                dtype=self.dtype_policy,
                name=name,
            )
        return keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )

    def _dropout(self, name):
        return keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name=name
        )

    def _build_feedforward(self, inputs_shape):
        self.feedforward = FeedForward(
            intermediate_dim=self.intermediate_dim,
            activation=self.activation,
            use_gated_activation=self.use_gated_activation,
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="feedforward",
        )
        self.feedforward.build(inputs_shape)
        self.feedforward_norm = self._norm("feedforward_norm")
        self.feedforward_norm.build(inputs_shape)
        self.feedforward_dropout = self._dropout("feedforward_dropout")

    def _residual(self, x, sublayer, norm, dropout, training, **kwargs):
        """Pre-norm `x + f(norm(x))` or post-norm `norm(x + f(x))`."""
        inputs = norm(x) if self.normalize_first else x
        outputs = sublayer(inputs, training=training, **kwargs)
        extra = None
        if isinstance(outputs, tuple):
            outputs, extra = outputs
        x = x + dropout(outputs, training=training)
        if not self.normalize_first:
            x = norm(x)
        return x, extra

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "key_value_dim": self.key_value_dim,
                "activation": self.activation,
                "use_gated_activation": self.use_gated_activation,
                "dropout": self.dropout,
                "normalize_first": self.normalize_first,
                "normalization": self.normalization,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "use_bias": self.use_bias,
                "use_attention_scale": self.use_attention_scale,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


_BLOCK_ARGS_DOC = """
    Args:
        num_heads: int. Attention heads `H`.
        intermediate_dim: int. Feed-forward width `F`.
        key_value_dim: int. Head size `K`. Defaults to `D // H`.
        activation: str. Feed-forward activation: `"relu"`, `"gelu"`,
            `"gelu_tanh"` or `"silu"`. Defaults to `"relu"`.
        use_gated_activation: bool. Gated feed-forward (GEGLU/SwiGLU).
            Defaults to `False`.
        dropout: float. Dropout on attention probabilities, feed-forward
            activations and residual branches. Defaults to `0.0`.
        normalize_first: bool. Pre-norm (`True`: GPT-2, T5) or post-norm
            (`False`: BERT, the original Transformer). Defaults to `False`.
        normalization: str. `"layer_norm"` or `"rms_norm"` (T5).
            Defaults to `"layer_norm"`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        use_bias: bool. Biases in projections (T5 has none). Defaults to
            `True`.
        use_attention_scale: bool. `1/sqrt(K)` score scaling (T5 has none).
            Defaults to `True`.
        kernel_initializer: initializer. Defaults to `"glorot_uniform"`.
        **kwargs: passed to `keras.layers.Layer`.
"""


@keras.saving.register_keras_serializable(package="keras_llm")
class EncoderBlock(_Block):
    __doc__ = (
        """Transformer encoder block: bidirectional self-attention + FFN.
"""
        + _BLOCK_ARGS_DOC
        + """
    Call arguments:
        inputs: float tensor `(B, S, D)`.
        padding_mask: int/bool tensor `(B, S)`, 1 for real tokens, or `None`.
        attention_mask: bool tensor `(B, S, S)`, or `None`.
        position_bias: float tensor `(1 or B, H, S, S)`, or `None`.
        training: bool or `None`.

    Returns:
        Float tensor `(B, S, D)`.

    Example:
    ```python
    block = keras_llm.blocks.EncoderBlock(num_heads=2, intermediate_dim=32)
    outputs = block(np.zeros((2, 8, 16)))  # (2, 8, 16)
    ```
    """
    )

    def build(self, inputs_shape):
        self.self_attention = self._attention("self_attention")
        self.self_attention.build(inputs_shape)
        self.self_attention_norm = self._norm("self_attention_norm")
        self.self_attention_norm.build(inputs_shape)
        self.self_attention_dropout = self._dropout("self_attention_dropout")
        self._build_feedforward(inputs_shape)
        self.built = True

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        position_bias=None,
        training=None,
    ):
        mask = merge_masks(
            None
            if padding_mask is None
            else padding_to_attention_mask(padding_mask),
            attention_mask,
        )
        x, _ = self._residual(
            inputs,
            self.self_attention,
            self.self_attention_norm,
            self.self_attention_dropout,
            training,
            attention_mask=mask,
            position_bias=position_bias,
        )
        x, _ = self._residual(
            x,
            self.feedforward,
            self.feedforward_norm,
            self.feedforward_dropout,
            training,
        )
        return x


@keras.saving.register_keras_serializable(package="keras_llm")
class DecoderBlock(_Block):
    __doc__ = (
        """Transformer decoder block: causal self-attention, optional
    cross-attention, FFN; with a fixed-size KV cache for decoding.

    Cache layout, per block: self-attention `(B, 2, L, H, K)` written at
    `cache_index`; cross-attention `(B, 2, S, H, K)` precomputed once with
    `block.cross_attention.compute_key_value(encoder_outputs)`.
"""
        + _BLOCK_ARGS_DOC
        + """        use_cross_attention: bool. Attend to `encoder_outputs`
            (seq2seq;
            `False` for GPT-2). Defaults to `True`.

    Call arguments:
        inputs: float tensor `(B, T, D)`.
        encoder_outputs: float tensor `(B, S, D)`, or `None` (then the
            cross-attention cache must be given, or cross-attention is off).
        padding_mask: `(B, T)` (or `(B, L)` with a cache), or `None`.
        encoder_padding_mask: `(B, S)`, or `None`.
        position_bias: float tensor `(1 or B, H, T, T or L)`, or `None`.
        self_attention_cache: `(B, 2, L, H, K)`, or `None`.
        cross_attention_cache: `(B, 2, S, H, K)`, or `None`.
        cache_index: int scalar tensor: position of `inputs[:, 0]`.
        training: bool or `None`.

    Returns:
        `(B, T, D)`; with a self-attention cache, the tuple
        `(outputs, self_attention_cache, cross_attention_cache)`.
    """
    )

    def __init__(self, *args, use_cross_attention=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_cross_attention = use_cross_attention

    def build(self, inputs_shape, encoder_outputs_shape=None):
        self.self_attention = self._attention("self_attention")
        self.self_attention.build(inputs_shape)
        self.self_attention_norm = self._norm("self_attention_norm")
        self.self_attention_norm.build(inputs_shape)
        self.self_attention_dropout = self._dropout("self_attention_dropout")
        if self.use_cross_attention:
            source_shape = encoder_outputs_shape or inputs_shape
            self.cross_attention = self._attention("cross_attention")
            self.cross_attention.build(inputs_shape, source_shape)
            self.cross_attention_norm = self._norm("cross_attention_norm")
            self.cross_attention_norm.build(inputs_shape)
            self.cross_attention_dropout = self._dropout(
                "cross_attention_dropout"
            )
        self._build_feedforward(inputs_shape)
        self.built = True

    def call(
        self,
        inputs,
        encoder_outputs=None,
        padding_mask=None,
        encoder_padding_mask=None,
        position_bias=None,
        self_attention_cache=None,
        cross_attention_cache=None,
        cache_index=None,
        training=None,
    ):
        use_cache = self_attention_cache is not None
        query_length = keras.ops.shape(inputs)[1]
        if use_cache:
            key_length = keras.ops.shape(self_attention_cache)[2]
            start = cache_index
        else:
            key_length, start = query_length, 0
        self_mask = merge_masks(
            causal_mask(query_length, key_length, start)[None],  # (1, T, S)
            None
            if padding_mask is None
            else padding_to_attention_mask(padding_mask),
        )
        x, self_attention_cache = self._residual(
            inputs,
            self.self_attention,
            self.self_attention_norm,
            self.self_attention_dropout,
            training,
            attention_mask=self_mask,
            position_bias=position_bias,
            cache=self_attention_cache,
            cache_index=cache_index if use_cache else None,
        )
        if self.use_cross_attention and (
            encoder_outputs is not None or cross_attention_cache is not None
        ):
            cross_mask = (
                None
                if encoder_padding_mask is None
                else padding_to_attention_mask(encoder_padding_mask)
            )
            x, cross_attention_cache = self._residual(
                x,
                self.cross_attention,
                self.cross_attention_norm,
                self.cross_attention_dropout,
                training,
                value=encoder_outputs,
                attention_mask=cross_mask,
                cache=cross_attention_cache,
            )
        x, _ = self._residual(
            x,
            self.feedforward,
            self.feedforward_norm,
            self.feedforward_dropout,
            training,
        )
        if use_cache:
            return x, self_attention_cache, cross_attention_cache
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"use_cross_attention": self.use_cross_attention})
        return config
