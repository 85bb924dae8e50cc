"""Llama (Touvron et al., 2023; Grattafiori et al., 2024): `LlamaBackbone`
and `LlamaCausalLM`.

A decoder-only stack of pre-norm blocks: RMS normalization, rotary
positions (optionally with Llama 3's frequency scaling), grouped-query
attention (`num_key_value_heads` key/value heads shared by groups of query
heads; the KV cache holds only those), a SwiGLU feed-forward, no biases,
and an output layer tied to the token embedding or not.

The attention lives here rather than in `keras_llm.layers`: the shared
`MultiHeadAttention` has as many key/value heads as query heads and takes
positions as one start index, while Llama needs fewer key/value heads and
a position per row (a left-padded prompt rotates its tokens by their
positions in the prompt, not by their slots).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_llm.layers.attention import _write_cache
from keras_llm.layers.attention import merge_heads
from keras_llm.layers.attention import scaled_dot_product_attention
from keras_llm.layers.attention import split_heads
from keras_llm.layers.embedding import TokenEmbedding
from keras_llm.layers.feedforward import FeedForward
from keras_llm.layers.masks import causal_mask
from keras_llm.layers.masks import merge_masks
from keras_llm.layers.masks import padding_to_attention_mask
from keras_llm.layers.normalization import RMSNormalization
from keras_llm.layers.utils import clone_initializer
from keras_llm.models.backbone import Backbone
from keras_llm.models.tasks import CausalLM

ROPE_SCALINGS = ("linear", "llama3")


def _llama_initializer():
    return keras.initializers.RandomNormal(stddev=0.02)  # initializer_range


def rope_inverse_frequencies(
    head_dim,
    theta=10000.0,
    scaling=None,
    factor=1.0,
    low_freq_factor=1.0,
    high_freq_factor=4.0,
    original_max_sequence_length=8192,
):
    """The rotary inverse frequencies `(K/2,)`, float32 as Hugging Face
    computes them.

    Args:
        head_dim: int. `K`, even.
        theta: float. The base wavelength (`rope_theta`).
        scaling: `None`, `"linear"` (every frequency divided by `factor`:
            position interpolation) or `"llama3"` (Llama 3.1's rule: long
            wavelengths divided by `factor`, short ones kept, the band
            between `original_max_sequence_length / high_freq_factor` and
            `/ low_freq_factor` blended smoothly).
        factor, low_freq_factor, high_freq_factor,
        original_max_sequence_length: the scaling's parameters.

    Returns:
        float32 numpy `(K/2,)`.
    """
    exponents = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(
        head_dim
    )
    inverse = (1.0 / np.float32(theta) ** exponents).astype(np.float32)
    if scaling == "linear":
        return (inverse / np.float32(factor)).astype(np.float32)
    if scaling != "llama3":
        return inverse
    low_wavelength = original_max_sequence_length / low_freq_factor
    high_wavelength = original_max_sequence_length / high_freq_factor
    wavelength = np.float32(2 * math.pi) / inverse
    scaled = np.where(wavelength > low_wavelength, inverse / factor, inverse)
    smooth = (original_max_sequence_length / wavelength - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelength >= high_wavelength) & (wavelength <= low_wavelength)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def _rotate(x, positions, inverse_frequencies):
    """Rotary embedding of `x` `(B, T, H, K)` at `positions` `(B or 1, T)`:
    pairs `(x[i], x[i + K/2])` turn by `position * inverse_frequencies[i]`
    (the "rotate half" layout of GPT-NeoX and Hugging Face Llama)."""
    half = x.shape[-1] // 2
    angles = ops.cast(positions, "float32")[..., None] * inverse_frequencies
    angles = ops.concatenate([angles, angles], axis=-1)  # (B|1, T, K)
    cos = ops.cast(ops.cos(angles), x.dtype)[:, :, None, :]
    sin = ops.cast(ops.sin(angles), x.dtype)[:, :, None, :]
    rotated = ops.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


@keras.saving.register_keras_serializable(package="keras_llm")
class LlamaAttention(keras.layers.Layer):
    """Grouped-query self-attention with rotary positions and a KV cache.

    `num_heads` query heads share `num_key_value_heads` key/value heads,
    `num_heads / num_key_value_heads` query heads each (head `h` reads
    key/value head `h // group`, as Hugging Face's `repeat_kv`). Queries
    and keys are rotated before the keys enter the cache, which holds the
    key/value heads only: `(B, 2, L, num_key_value_heads, K)`.

    Args:
        num_heads: int. Query heads `H`.
        num_key_value_heads: int. Key/value heads; divides `num_heads`.
        head_dim: int. `K`, even.
        rope: dict of `rope_inverse_frequencies`' keyword arguments
            (`theta`, `scaling`, `factor`, ...).
        dropout: float. Dropout on the attention probabilities.
        kernel_initializer: initializer of the projections.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float `(B, T, D)`.
        attention_mask: bool, broadcastable to `(B, T, S)`, or `None`.
        positions: int `(B or 1, T)`: each token's position, or `None`
            (`start_index + 0 .. T-1`).
        cache: `(B, 2, L, num_key_value_heads, K)` or `None`.
        cache_index: int scalar: the cache slot of `inputs[:, 0]`.
        training: bool or `None`.

    Returns:
        `(B, T, D)`, or `((B, T, D), cache)` with a cache.
    """

    def __init__(
        self,
        num_heads,
        num_key_value_heads,
        head_dim,
        rope=None,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_heads % num_key_value_heads:
            raise ValueError(
                "`num_heads` must be a multiple of `num_key_value_heads`. "
                f"Received: num_heads={num_heads}, "
                f"num_key_value_heads={num_key_value_heads}"
            )
        if head_dim % 2:
            raise ValueError(
                f"Rotary positions need an even head size. Received: "
                f"head_dim={head_dim}"
            )
        self.num_heads = num_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.rope = dict(rope or {})
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.inverse_frequencies = rope_inverse_frequencies(
            head_dim, **self.rope
        )

    def _dense(self, units, name):
        return keras.layers.Dense(
            units,
            use_bias=False,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        k = self.head_dim
        # 2-D kernels, as MultiHeadAttention's: (D, H*K), (D, H_kv*K) and
        # (H*K, D).
        self.query_dense = self._dense(self.num_heads * k, "query")
        self.query_dense.build(inputs_shape)
        self.key_dense = self._dense(self.num_key_value_heads * k, "key")
        self.key_dense.build(inputs_shape)
        self.value_dense = self._dense(self.num_key_value_heads * k, "value")
        self.value_dense.build(inputs_shape)
        self.output_dense = self._dense(hidden_dim, "attention_output")
        self.output_dense.build((None, None, self.num_heads * k))
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="dropout"
        )
        self.built = True

    def _heads(self, dense, x, num_heads):
        return split_heads(dense(x), num_heads, self.head_dim)

    def call(
        self,
        inputs,
        attention_mask=None,
        positions=None,
        cache=None,
        cache_index=None,
        training=None,
    ):
        if positions is None:
            start = 0 if cache_index is None else cache_index
            positions = (ops.arange(ops.shape(inputs)[1]) + start)[None]
        frequencies = ops.convert_to_tensor(self.inverse_frequencies)
        h, h_kv = self.num_heads, self.num_key_value_heads
        query = self._heads(self.query_dense, inputs, h)  # (B, T, H, K)
        key = self._heads(self.key_dense, inputs, h_kv)  # (B, T, H_kv, K)
        value = self._heads(self.value_dense, inputs, h_kv)
        query = _rotate(query, positions, frequencies)
        key = _rotate(key, positions, frequencies)
        if cache is not None:
            key = _write_cache(cache[:, 0], key, cache_index)  # (B, L, ...)
            value = _write_cache(cache[:, 1], value, cache_index)
            cache = ops.stack([key, value], axis=1)
        group = self.num_heads // self.num_key_value_heads
        if group > 1:  # each key/value head serves `group` query heads
            key = ops.repeat(key, group, axis=2)  # (B, S, H, K)
            value = ops.repeat(value, group, axis=2)
        attended = scaled_dot_product_attention(
            query,
            key,
            value,
            attention_mask=attention_mask,
            dropout_layer=self.dropout_layer if self.dropout else None,
            training=training,
        )  # (B, T, H, K)
        output = self.output_dense(merge_heads(attended))  # (B, T, D)
        if cache is not None:
            return output, cache
        return output

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "num_key_value_heads": self.num_key_value_heads,
                "head_dim": self.head_dim,
                "rope": self.rope,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_llm")
class LlamaDecoderBlock(keras.layers.Layer):
    """Pre-norm Llama block: `x + attention(rms(x))`, then
    `x + swiglu(rms(x))`, without biases.

    Args:
        num_heads, num_key_value_heads, head_dim, rope, dropout: as
            `LlamaAttention`.
        intermediate_dim: int. Feed-forward width `F`.
        layer_norm_epsilon: float. Of both RMS normalizations.
        kernel_initializer: initializer of every projection.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float `(B, T, D)`.
        padding_mask: `(B, T)`, or `(B, L)` over the cache slots, or `None`.
        positions: int `(B or 1, T)` or `None` (see `LlamaAttention`).
        cache: `(B, 2, L, num_key_value_heads, K)` or `None`.
        cache_index: int scalar, with `cache`.
        training: bool or `None`.

    Returns:
        `(B, T, D)`, or `((B, T, D), cache)` with a cache.
    """

    def __init__(
        self,
        num_heads,
        num_key_value_heads,
        head_dim,
        intermediate_dim,
        rope=None,
        dropout=0.0,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.intermediate_dim = intermediate_dim
        self.rope = dict(rope or {})
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        self.self_attention_norm = RMSNormalization(
            self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="self_attention_norm",
        )
        self.self_attention_norm.build(inputs_shape)
        self.self_attention = LlamaAttention(
            self.num_heads,
            self.num_key_value_heads,
            self.head_dim,
            rope=self.rope,
            dropout=self.dropout,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="self_attention",
        )
        self.self_attention.build(inputs_shape)
        self.feedforward_norm = RMSNormalization(
            self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="feedforward_norm",
        )
        self.feedforward_norm.build(inputs_shape)
        # SwiGLU: inner_dense is gate_proj (silu), linear_dense up_proj.
        self.feedforward = FeedForward(
            self.intermediate_dim,
            activation="silu",
            use_gated_activation=True,
            use_bias=False,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="feedforward",
        )
        self.feedforward.build(inputs_shape)
        self.built = True

    def call(
        self,
        inputs,
        padding_mask=None,
        positions=None,
        cache=None,
        cache_index=None,
        training=None,
    ):
        query_length = ops.shape(inputs)[1]
        if cache is None:
            key_length, start = query_length, 0
        else:
            key_length, start = ops.shape(cache)[2], cache_index
        mask = merge_masks(
            causal_mask(query_length, key_length, start)[None],  # (1, T, S)
            None
            if padding_mask is None
            else padding_to_attention_mask(padding_mask),
        )
        attended = self.self_attention(
            self.self_attention_norm(inputs),
            attention_mask=mask,
            positions=positions,
            cache=cache,
            cache_index=cache_index,
            training=training,
        )
        if cache is not None:
            attended, cache = attended
        x = inputs + attended
        x = x + self.feedforward(self.feedforward_norm(x), training=training)
        if cache is not None:
            return x, cache
        return x

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "num_key_value_heads": self.num_key_value_heads,
                "head_dim": self.head_dim,
                "intermediate_dim": self.intermediate_dim,
                "rope": self.rope,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_llm")
class LlamaBackbone(Backbone):
    """Llama decoder-only backbone.

    Args:
        vocabulary_size: int. `V`.
        num_layers: int. Decoder blocks.
        num_heads: int. Query heads `H`.
        num_key_value_heads: int. Key/value heads `H_kv`; divides
            `num_heads` (equal: multi-head attention; fewer: grouped-query
            attention, `H / H_kv` query heads per key/value head).
        hidden_dim: int. `D`.
        intermediate_dim: int. SwiGLU width `F`.
        key_value_dim: int. Head size `K` (even). Defaults to
            `hidden_dim // num_heads`.
        dropout: float. Dropout on the attention probabilities (Hugging
            Face's `attention_dropout`). Defaults to `0.0`.
        max_sequence_length: int. The longest input, and the most tokens a
            prompt and its generated text hold together (rotary positions
            have no table; this bounds the data and the KV cache).
            Defaults to `2048`.
        rope_theta: float. The rotary base wavelength. Defaults to
            `10000.0`.
        rope_scaling: `None`, `"linear"` or `"llama3"`: see
            `rope_inverse_frequencies`. Defaults to `None`.
        rope_scaling_factor: float. Defaults to `1.0`.
        rope_low_freq_factor: float. Llama 3 scaling. Defaults to `1.0`.
        rope_high_freq_factor: float. Llama 3 scaling. Defaults to `4.0`.
        rope_original_max_sequence_length: int. The context the model was
            pre-trained with, before scaling (Llama 3 scaling). Defaults to
            `8192`.
        layer_norm_epsilon: float. Of the RMS normalizations. Defaults to
            `1e-5`.
        tie_embedding_weights: bool. The output layer is the transposed
            token embedding. Defaults to `False`.
        dtype: dtype policy, e.g. `"mixed_bfloat16"`.

    Inputs: dict of `token_ids` and `padding_mask` `(B, T)`.
    Outputs: `sequence_output` `(B, T, D)`, after the final RMS norm.

    Example:
    ```python
    backbone = keras_llm.models.LlamaBackbone(
        vocabulary_size=100, num_layers=2, num_heads=4,
        num_key_value_heads=2, hidden_dim=32, intermediate_dim=64)
    hidden = backbone({"token_ids": np.ones((1, 8), "int32"),
                       "padding_mask": np.ones((1, 8), "int32")})
    ```

    References:
        - [Touvron et al., 2023](https://arxiv.org/abs/2302.13971)
        - [Ainslie et al., 2023](https://arxiv.org/abs/2305.13245) (GQA)
        - [Grattafiori et al., 2024](https://arxiv.org/abs/2407.21783)
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        num_key_value_heads,
        hidden_dim,
        intermediate_dim,
        key_value_dim=None,
        dropout=0.0,
        max_sequence_length=2048,
        rope_theta=10000.0,
        rope_scaling=None,
        rope_scaling_factor=1.0,
        rope_low_freq_factor=1.0,
        rope_high_freq_factor=4.0,
        rope_original_max_sequence_length=8192,
        layer_norm_epsilon=1e-5,
        tie_embedding_weights=False,
        dtype=None,
        **kwargs,
    ):
        if rope_scaling not in (None, *ROPE_SCALINGS):
            raise ValueError(
                f"`rope_scaling` must be None or one of {ROPE_SCALINGS}. "
                f"Received: rope_scaling={rope_scaling!r}"
            )
        head_dim = key_value_dim or hidden_dim // num_heads
        rope = {
            "theta": rope_theta,
            "scaling": rope_scaling,
            "factor": rope_scaling_factor,
            "low_freq_factor": rope_low_freq_factor,
            "high_freq_factor": rope_high_freq_factor,
            "original_max_sequence_length": rope_original_max_sequence_length,
        }
        # === Layers ===
        self.token_embedding = TokenEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=tie_embedding_weights,
            embeddings_initializer=_llama_initializer(),
            dtype=dtype,
            name="token_embedding",
        )
        self.transformer_blocks = [
            LlamaDecoderBlock(
                num_heads=num_heads,
                num_key_value_heads=num_key_value_heads,
                head_dim=head_dim,
                intermediate_dim=intermediate_dim,
                rope=rope,
                dropout=dropout,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=_llama_initializer(),
                dtype=dtype,
                name=f"transformer_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.layer_norm = RMSNormalization(
            layer_norm_epsilon, dtype=dtype, name="layer_norm"
        )

        # === Functional Model ===
        inputs = {
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "padding_mask": keras.Input(
                (None,), dtype="int32", name="padding_mask"
            ),
        }
        x = self.token_embedding(inputs["token_ids"])
        for block in self.transformer_blocks:
            x = block(x, padding_mask=inputs["padding_mask"])
        sequence_output = self.layer_norm(x)  # (B, T, D)
        super().__init__(
            inputs=inputs, outputs=sequence_output, dtype=dtype, **kwargs
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.num_key_value_heads = num_key_value_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.key_value_dim = key_value_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.rope_theta = rope_theta
        self.rope_scaling = rope_scaling
        self.rope_scaling_factor = rope_scaling_factor
        self.rope_low_freq_factor = rope_low_freq_factor
        self.rope_high_freq_factor = rope_high_freq_factor
        self.rope_original_max_sequence_length = (
            rope_original_max_sequence_length
        )
        self.layer_norm_epsilon = layer_norm_epsilon
        self.tie_embedding_weights = tie_embedding_weights

    @property
    def head_dim(self):
        return self.key_value_dim or self.hidden_dim // self.num_heads

    @property
    def cache_heads(self):
        return self.num_key_value_heads  # the cache holds these only


@keras.saving.register_keras_serializable(package="keras_llm")
class LlamaCausalLM(CausalLM):
    """Llama with its language-model head: dict inputs → float32 logits.

    Decoding uses a fixed-size cache of the key/value heads only,
    `(B, num_layers, 2, max_length, num_key_value_heads, K)`: with Llama
    3.2 1B's 8 key/value heads for 32 query heads, a quarter of a
    multi-head cache.

    Args:
        backbone: `keras_llm.models.LlamaBackbone`.

    Example:
    ```python
    model = keras_llm.build("llama_tiny")
    cache = model.build_cache(prompt_ids, max_length=64)
    logits, hidden, cache = model.call_with_cache(prompt_ids, cache, 0)
    ```
    """

    def __init__(self, backbone, **kwargs):
        inputs = backbone.input
        logits = self._project(backbone, backbone(inputs))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone

    def logits(self, hidden):
        """Float32 logits `(..., T, V)` of hidden states (after the final
        RMS norm)."""
        return self._project(self.backbone, hidden)

    @staticmethod
    def _project(backbone, hidden):
        logits = backbone.token_embedding(hidden, reverse=True)  # (B, T, V)
        return ops.cast(logits, "float32")

    def call_with_cache(
        self,
        token_ids,
        cache,
        cache_index,
        padding_mask=None,
        position_offset=None,
    ):
        """Runs `token_ids` `(B, T)` placed at cache slots `cache_index ..
        cache_index + T - 1`.

        Args:
            token_ids: int tensor `(B, T)`.
            cache: `(B, num_layers, 2, L, num_key_value_heads, K)`.
            cache_index: int scalar tensor.
            padding_mask: optional `(B, L)` mask over the cache slots (1 =
                real token), e.g. to hide the pads of left-padded prompts.
            position_offset: optional int `(B,)`: row `b`'s token in slot
                `s` is rotated to position `s - position_offset[b]` (the
                number of left pads), so a left-padded prompt gets the
                positions it would have alone. `None`: position = slot.

        Returns:
            `(logits (B, T, V), hidden (B, T, D), cache)`.
        """
        backbone = self.backbone
        slots = cache_index + ops.arange(ops.shape(token_ids)[1])  # (T,)
        if position_offset is None:
            positions = slots[None]  # (1, T)
        else:
            offset = ops.cast(position_offset, "int32")[:, None]
            positions = slots[None, :] - offset  # (B, T)
        x = backbone.token_embedding(token_ids)  # (B, T, D)
        caches = []
        for i, block in enumerate(backbone.transformer_blocks):
            x, layer_cache = block(
                x,
                padding_mask=padding_mask,
                positions=positions,
                cache=cache[:, i],
                cache_index=cache_index,
            )
            caches.append(layer_cache)
        hidden = backbone.layer_norm(x)
        return self.logits(hidden), hidden, ops.stack(caches, axis=1)
