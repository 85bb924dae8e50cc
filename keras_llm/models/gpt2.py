"""GPT-2 (Radford et al., 2019): `GPT2Backbone` and `GPT2CausalLM`.

A decoder-only stack of pre-norm blocks (causal self-attention, no
cross-attention) over learned token and position embeddings, a final layer
norm, and an output layer tied to the token embedding.
"""

import keras
from keras import ops

from keras_llm.blocks import DecoderBlock
from keras_llm.layers.embedding import TokenEmbedding
from keras_llm.layers.position import PositionEmbedding
from keras_llm.models.backbone import Backbone
from keras_llm.models.tasks import CausalLM


def _gpt2_initializer():
    return keras.initializers.RandomNormal(stddev=0.02)


@keras.saving.register_keras_serializable(package="keras_llm")
class GPT2Backbone(Backbone):
    """GPT-2 decoder-only backbone.

    Args:
        vocabulary_size: int. `V` (50257 for the released models).
        num_layers: int. Decoder blocks.
        num_heads: int. Attention heads `H`; must divide `hidden_dim`.
        hidden_dim: int. `D`.
        intermediate_dim: int. Feed-forward width `F` (`4 * D` in GPT-2).
        dropout: float. Dropout on the embeddings, attention probabilities,
            feed-forward activations and residual branches. Defaults to
            `0.1`.
        max_sequence_length: int. Rows of the learned position table: the
            longest input. Defaults to `1024`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        dtype: dtype policy, e.g. `"mixed_bfloat16"`.

    Inputs: dict of `token_ids` and `padding_mask` `(B, T)`.
    Outputs: `sequence_output` `(B, T, D)`, after the final layer norm.

    Example:
    ```python
    backbone = keras_llm.models.GPT2Backbone(
        vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=64, max_sequence_length=32)
    hidden = backbone({"token_ids": np.ones((1, 8), "int32"),
                       "padding_mask": np.ones((1, 8), "int32")})
    ```

    Reference:
        - [Radford et al., 2019](https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf)
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.1,
        max_sequence_length=1024,
        layer_norm_epsilon=1e-5,
        dtype=None,
        **kwargs,
    ):
        # === Layers ===
        self.token_embedding = TokenEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=True,
            embeddings_initializer=_gpt2_initializer(),
            dtype=dtype,
            name="token_embedding",
        )
        self.position_embedding = PositionEmbedding(
            max_sequence_length,
            initializer=keras.initializers.RandomNormal(stddev=0.01),
            dtype=dtype,
            name="position_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="embedding_dropout"
        )
        self.transformer_blocks = [
            DecoderBlock(
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                activation="gelu_tanh",
                dropout=dropout,
                normalize_first=True,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=_gpt2_initializer(),
                use_cross_attention=False,
                dtype=dtype,
                name=f"transformer_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="layer_norm"
        )

        # === Functional Model ===
        inputs = {
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
            "padding_mask": keras.Input(
                (None,), dtype="int32", name="padding_mask"
            ),
        }
        x = self._embed(inputs["token_ids"])
        x = self.embedding_dropout(x)
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
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.layer_norm_epsilon = layer_norm_epsilon

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    def _embed(self, token_ids, start_index=0):
        x = self.token_embedding(token_ids)  # (B, T, D)
        return x + self.position_embedding(x, start_index=start_index)


@keras.saving.register_keras_serializable(package="keras_llm")
class GPT2CausalLM(CausalLM):
    """GPT-2 with its tied language-model head: dict inputs → logits.

    Logits `(B, T, V)` are float32 whatever the dtype policy, for a stable
    loss. Decoding uses a fixed-size cache
    `(B, num_layers, 2, max_length, H, K)`: `build_cache` allocates it and
    `call_with_cache` runs new tokens (a whole prompt, or one per step)
    placed at `cache_index`.

    Args:
        backbone: `keras_llm.models.GPT2Backbone`.

    Example:
    ```python
    model = keras_llm.build("zoo/gpt2_tiny.yaml")
    cache = model.build_cache(prompt_ids, max_length=64)
    logits, hidden, cache = model.call_with_cache(prompt_ids, cache, 0)
    ```

    Reference:
        - [Radford et al., 2019](https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf)
    """

    def __init__(self, backbone, **kwargs):
        inputs = backbone.input
        logits = self._project(backbone, backbone(inputs))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone

    def logits(self, hidden):
        """Float32 logits `(..., T, V)` of hidden states (after the final
        layer norm)."""
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
            cache: `(B, num_layers, 2, L, H, K)`.
            cache_index: int scalar tensor.
            padding_mask: optional `(B, L)` mask over the cache slots (1 =
                real token), e.g. to hide the pads of left-padded prompts.
            position_offset: optional int `(B,)`: row `b`'s token in slot
                `s` gets position `s - position_offset[b]` (clipped to the
                table), e.g. the number of left pads, so a left-padded prompt
                gets the positions it would have alone. `None`: position =
                slot.

        Returns:
            `(logits (B, T, V), hidden (B, T, D), cache)`.
        """
        backbone = self.backbone
        if position_offset is None:
            x = backbone._embed(token_ids, start_index=cache_index)  # (B, T, D)
        else:
            x = backbone.token_embedding(token_ids)  # (B, T, D)
            slots = cache_index + ops.arange(ops.shape(token_ids)[1])  # (T,)
            positions = ops.clip(
                slots[None, :] - ops.cast(position_offset, "int32")[:, None],
                0,
                backbone.max_sequence_length - 1,
            )  # (B, T)
            table = backbone.position_embedding.position_embeddings
            x = x + ops.cast(ops.take(table, positions, axis=0), x.dtype)
        caches = []
        for i, block in enumerate(backbone.transformer_blocks):
            x, layer_cache, _ = block(
                x,
                padding_mask=padding_mask,
                self_attention_cache=cache[:, i],
                cache_index=cache_index,
            )
            caches.append(layer_cache)
        hidden = backbone.layer_norm(x)
        logits = self.logits(hidden)
        return logits, hidden, ops.stack(caches, axis=1)
