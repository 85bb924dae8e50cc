"""The Transformer (Vaswani et al., 2017): `TransformerBackbone` and
`TransformerSeq2SeqLM`.

Encoder-decoder with post-norm blocks (`LayerNorm(x + Sublayer(x))`), relu
feed-forward, fixed sinusoidal positions, and one embedding matrix shared by
the source, the target and the pre-softmax projection (section 3.4),
multiplied by `sqrt(D)` on the way in.
"""

import keras
from keras import ops

from keras_llm.blocks import DecoderBlock
from keras_llm.blocks import EncoderBlock
from keras_llm.layers.embedding import TokenEmbedding
from keras_llm.layers.position import SinusoidalPositionEncoding
from keras_llm.models.backbone import Seq2SeqBackbone
from keras_llm.models.tasks import Seq2SeqLM


@keras.saving.register_keras_serializable(package="keras_llm")
class TransformerBackbone(Seq2SeqBackbone):
    """Encoder-decoder Transformer backbone ("base": 6 layers, D=512, 8 heads,
    F=2048).

    Args:
        vocabulary_size: int. `V`, shared by source and target (a joint BPE
            vocabulary, 37000 in the paper's English-German setup).
        num_layers: int. Encoder layers, and as many decoder layers.
        num_heads: int. Attention heads `H`; must divide `hidden_dim`.
        hidden_dim: int. `D` (`d_model`).
        intermediate_dim: int. Feed-forward width `F` (`d_ff`).
        dropout: float. `P_drop`: on the embedding sums, attention
            probabilities, feed-forward activations and residual branches.
            Defaults to `0.1`.
        layer_norm_epsilon: float. Defaults to `1e-6`.
        dtype: dtype policy, e.g. `"mixed_bfloat16"`.

    Inputs: dict of `encoder_token_ids`, `encoder_padding_mask` `(B, S)`,
    `decoder_token_ids`, `decoder_padding_mask` `(B, T)`.
    Outputs: dict of `encoder_sequence_output` `(B, S, D)` and
    `decoder_sequence_output` `(B, T, D)`.

    Example:
    ```python
    backbone = keras_llm.models.TransformerBackbone(
        vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32)
    ```

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.1,
        layer_norm_epsilon=1e-6,
        dtype=None,
        **kwargs,
    ):
        # === Layers ===
        self.token_embedding = TokenEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=True,
            # N(0, D^-1/2): the embedding times sqrt(D) has unit variance,
            # the scale of the sinusoids it is added to (tensor2tensor).
            embeddings_initializer=keras.initializers.RandomNormal(
                stddev=hidden_dim**-0.5
            ),
            dtype=dtype,
            name="token_embedding",
        )
        self.position_encoding = SinusoidalPositionEncoding(
            dtype=dtype, name="position_encoding"
        )
        block_kwargs = dict(
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            activation="relu",
            dropout=dropout,
            normalize_first=False,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=dtype,
        )
        self.encoder_embedding_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="encoder_embedding_dropout"
        )
        self.encoder_blocks = [
            EncoderBlock(name=f"encoder_block_{i}", **block_kwargs)
            for i in range(num_layers)
        ]
        self.decoder_embedding_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="decoder_embedding_dropout"
        )
        self.decoder_blocks = [
            DecoderBlock(name=f"decoder_block_{i}", **block_kwargs)
            for i in range(num_layers)
        ]

        # === Functional Model ===
        self._init_seq2seq_graph(dtype=dtype, **kwargs)

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    def _embed(self, token_ids, start_index=0):
        x = self.token_embedding(token_ids)  # (B, T, D)
        # x * sqrt(D), written as a divide: Keras marks `KerasTensor * float`
        # (and ops.multiply with a scalar) as sparse in a functional graph.
        x = ops.divide(x, self.token_embedding.hidden_dim**-0.5)
        return x + self.position_encoding(x, start_index=start_index)

    def _encode(self, token_ids, padding_mask, training=None):
        x = self._embed(token_ids)  # (B, S, D)
        x = self.encoder_embedding_dropout(x, training=training)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=padding_mask, training=training)
        return x

    def _decode(
        self,
        token_ids,
        padding_mask,
        encoder_output,
        encoder_padding_mask,
        training=None,
    ):
        x = self._embed(token_ids)  # (B, T, D)
        x = self.decoder_embedding_dropout(x, training=training)
        for block in self.decoder_blocks:
            x = block(
                x,
                encoder_outputs=encoder_output,
                padding_mask=padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                training=training,
            )
        return x


@keras.saving.register_keras_serializable(package="keras_llm")
class TransformerSeq2SeqLM(Seq2SeqLM):
    """The Transformer with its tied output layer: dict inputs → logits.

    Logits `(B, T, V)` are float32 whatever the dtype policy. Decoding
    follows `T5Seq2SeqLM`: `build_cache` runs the encoder once,
    `call_with_cache` decodes new tokens at `cache_index`.

    Args:
        backbone: `keras_llm.models.TransformerBackbone`.

    Example:
    ```python
    model = keras_llm.build("zoo/transformer_tiny.yaml")
    logits = model({"encoder_token_ids": ..., "encoder_padding_mask": ...,
                    "decoder_token_ids": ..., "decoder_padding_mask": ...})
    ```

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, backbone, **kwargs):
        inputs = backbone.input
        outputs = backbone(inputs)
        logits = self._project(backbone, outputs["decoder_sequence_output"])
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone

    def logits(self, hidden):
        """Float32 logits `(..., T, V)` of decoder hidden states."""
        return self._project(self.backbone, hidden)

    @staticmethod
    def _project(backbone, hidden):
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
        x = backbone._embed(decoder_token_ids, start_index=cache_index)
        caches = []
        for i, block in enumerate(backbone.decoder_blocks):
            x, cache, _ = block(
                x,
                encoder_padding_mask=encoder_padding_mask,
                self_attention_cache=self_attention_cache[:, i],
                cross_attention_cache=cross_attention_cache[:, i],
                cache_index=cache_index,
            )
            caches.append(cache)
        logits = self.logits(x)
        return logits, x, ops.stack(caches, axis=1)
