"""T5 (Raffel et al., 2020): `T5Backbone` and `T5Seq2SeqLM`.

v1.0: relu feed-forward, output layer tied to the embedding (decoder output
scaled by `D^-0.5`). v1.1: gated-gelu (`activation="gelu_tanh"`,
`use_gated_activation=True`) and an untied output layer.
"""

import keras
from keras import ops

from keras_llm.blocks import DecoderBlock
from keras_llm.blocks import EncoderBlock
from keras_llm.layers.embedding import TokenEmbedding
from keras_llm.layers.normalization import RMSNormalization
from keras_llm.layers.position import RelativePositionBias
from keras_llm.models.backbone import Seq2SeqBackbone
from keras_llm.models.tasks import Seq2SeqLM


@keras.saving.register_keras_serializable(package="keras_llm")
class T5Backbone(Seq2SeqBackbone):
    """T5 encoder-decoder backbone.

    Args:
        vocabulary_size: int. `V`.
        num_layers: int. Encoder layers (and decoder layers, unless
            `num_decoder_layers` says otherwise).
        num_heads: int. Attention heads `H`.
        hidden_dim: int. `D`.
        intermediate_dim: int. Feed-forward width `F`.
        key_value_dim: int. Head size `K`. Defaults to `D // H`.
        dropout: float. Defaults to `0.1`.
        activation: str. `"relu"` (v1.0) or `"gelu_tanh"` (v1.1).
        use_gated_activation: bool. `True` for v1.1. Defaults to `False`.
        layer_norm_epsilon: float. Defaults to `1e-6`.
        tie_embedding_weights: bool. Output layer tied to the embedding
            (v1.0). Defaults to `True`.
        num_buckets: int. Relative-position buckets. Defaults to `32`.
        max_distance: int. Relative-position max distance. Defaults to `128`.
        num_decoder_layers: int. Decoder layers, for a decoder shallower or
            deeper than the encoder (as the t5-efficient checkpoints).
            Defaults to `None`: `num_layers`.
        dtype: dtype policy, e.g. `"mixed_bfloat16"`.

    Inputs: dict of `encoder_token_ids`, `encoder_padding_mask` `(B, S)`,
    `decoder_token_ids`, `decoder_padding_mask` `(B, T)`.
    Outputs: dict of `encoder_sequence_output` `(B, S, D)` and
    `decoder_sequence_output` `(B, T, D)`.

    Example:
    ```python
    backbone = keras_llm.models.T5Backbone(
        vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32)
    ```

    Reference:
        - [Raffel et al., 2020](https://arxiv.org/abs/1910.10683)
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        key_value_dim=None,
        dropout=0.1,
        activation="relu",
        use_gated_activation=False,
        layer_norm_epsilon=1e-6,
        tie_embedding_weights=True,
        num_buckets=32,
        max_distance=128,
        num_decoder_layers=None,
        dtype=None,
        **kwargs,
    ):
        # === Layers ===
        kernel_initializer = keras.initializers.VarianceScaling(
            1.0, "fan_in", "truncated_normal"
        )
        self.token_embedding = TokenEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=tie_embedding_weights,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
            dtype=dtype,
            name="token_embedding",
        )
        block_kwargs = dict(
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            key_value_dim=key_value_dim,
            activation=activation,
            use_gated_activation=use_gated_activation,
            dropout=dropout,
            normalize_first=True,
            normalization="rms_norm",
            layer_norm_epsilon=layer_norm_epsilon,
            use_bias=False,
            use_attention_scale=False,
            kernel_initializer=kernel_initializer,
            dtype=dtype,
        )
        bias_kwargs = dict(
            num_heads=num_heads,
            num_buckets=num_buckets,
            max_distance=max_distance,
            initializer=keras.initializers.RandomNormal(
                stddev=hidden_dim**-0.5
            ),
            dtype=dtype,
        )

        def dropout_layer(name):
            return keras.layers.Dropout(dropout, dtype=dtype, name=name)

        self.encoder_embedding_dropout = dropout_layer(
            "encoder_embedding_dropout"
        )
        self.encoder_relative_bias = RelativePositionBias(
            bidirectional=True, name="encoder_relative_bias", **bias_kwargs
        )
        self.encoder_blocks = [
            EncoderBlock(name=f"encoder_block_{i}", **block_kwargs)
            for i in range(num_layers)
        ]
        self.encoder_final_norm = RMSNormalization(
            layer_norm_epsilon, dtype=dtype, name="encoder_final_norm"
        )
        self.encoder_final_dropout = dropout_layer("encoder_final_dropout")
        self.decoder_embedding_dropout = dropout_layer(
            "decoder_embedding_dropout"
        )
        self.decoder_relative_bias = RelativePositionBias(
            bidirectional=False, name="decoder_relative_bias", **bias_kwargs
        )
        self.decoder_blocks = [
            DecoderBlock(name=f"decoder_block_{i}", **block_kwargs)
            for i in range(num_decoder_layers or num_layers)
        ]
        self.decoder_final_norm = RMSNormalization(
            layer_norm_epsilon, dtype=dtype, name="decoder_final_norm"
        )
        self.decoder_final_dropout = dropout_layer("decoder_final_dropout")

        # === Functional Model ===
        self._init_seq2seq_graph(dtype=dtype, **kwargs)

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.key_value_dim = key_value_dim
        self.dropout = dropout
        self.activation = activation
        self.use_gated_activation = use_gated_activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.tie_embedding_weights = tie_embedding_weights
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.num_decoder_layers = num_decoder_layers

    @property
    def head_dim(self):
        return self.key_value_dim or self.hidden_dim // self.num_heads

    def _encode(self, token_ids, padding_mask, training=None):
        x = self.token_embedding(token_ids)  # (B, S, D)
        x = self.encoder_embedding_dropout(x, training=training)
        position_bias = self.encoder_relative_bias(x)  # (1, H, S, S)
        for block in self.encoder_blocks:
            x = block(
                x,
                padding_mask=padding_mask,
                position_bias=position_bias,
                training=training,
            )
        x = self.encoder_final_norm(x)
        return self.encoder_final_dropout(x, training=training)

    def _decode(
        self,
        token_ids,
        padding_mask,
        encoder_output,
        encoder_padding_mask,
        training=None,
    ):
        x = self.token_embedding(token_ids)  # (B, T, D)
        x = self.decoder_embedding_dropout(x, training=training)
        position_bias = self.decoder_relative_bias(x)  # (1, H, T, T)
        for block in self.decoder_blocks:
            x = block(
                x,
                encoder_outputs=encoder_output,
                padding_mask=padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                position_bias=position_bias,
                training=training,
            )
        x = self.decoder_final_norm(x)
        return self.decoder_final_dropout(x, training=training)


@keras.saving.register_keras_serializable(package="keras_llm")
class T5Seq2SeqLM(Seq2SeqLM):
    """T5 with its language-model head: dict inputs → logits `(B, T, V)`.

    Logits are float32 whatever the dtype policy, for a stable loss.

    Args:
        backbone: `keras_llm.models.T5Backbone`.

    Example:
    ```python
    model = keras_llm.build("zoo/t5_tiny.yaml")
    logits = model({"encoder_token_ids": ..., "encoder_padding_mask": ...,
                    "decoder_token_ids": ..., "decoder_padding_mask": ...})
    ```
    """

    def __init__(self, backbone, **kwargs):
        inputs = backbone.input
        outputs = backbone(inputs)
        logits = self._project(backbone, outputs["decoder_sequence_output"])
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone

    def logits(self, hidden):
        """Float32 logits `(..., T, V)` of decoder hidden states `(..., T,
        D)` (after the final norm)."""
        return self._project(self.backbone, hidden)

    @staticmethod
    def _project(backbone, hidden):
        if backbone.tie_embedding_weights:
            # Mesh TF T5 rescales before the tied projection. (A divide:
            # Keras marks `KerasTensor * float` as sparse.)
            hidden = ops.divide(hidden, backbone.hidden_dim**0.5)
        logits = backbone.token_embedding(hidden, reverse=True)  # (B, T, V)
        return ops.cast(logits, "float32")

    def call_with_cache(
        self,
        decoder_token_ids,
        self_attention_cache,
        cache_index,
        cross_attention_cache,
        encoder_padding_mask,
    ):
        """Decodes `decoder_token_ids` `(B, T)` placed at `cache_index`.

        Returns:
            `(logits (B, T, V), hidden (B, T, D), self_attention_cache)`.
        """
        backbone = self.backbone
        x = backbone.token_embedding(decoder_token_ids)  # (B, T, D)
        position_bias = backbone.decoder_relative_bias(
            x, self_attention_cache[:, 0, 0], start_index=cache_index
        )  # (1, H, T, L)
        caches = []
        for i, block in enumerate(backbone.decoder_blocks):
            x, cache, _ = block(
                x,
                encoder_padding_mask=encoder_padding_mask,
                position_bias=position_bias,
                self_attention_cache=self_attention_cache[:, i],
                cross_attention_cache=cross_attention_cache[:, i],
                cache_index=cache_index,
            )
            caches.append(cache)
        hidden = backbone.decoder_final_norm(x)
        logits = self.logits(hidden)
        return logits, hidden, ops.stack(caches, axis=1)
