"""BERT (Devlin et al., 2019): `BertBackbone`, `BertMaskedLM` and
`BertClassifier`.

A bidirectional stack of post-norm encoder blocks (exact GELU; keras-hub's
tanh approximation with `activation="gelu_tanh"`) over the sum
of token, learned position and segment embeddings, followed by a layer norm;
a pooler (dense + tanh) reads the first (`[CLS]`) position.
"""

import keras
from keras import ops

from keras_llm.blocks import EncoderBlock
from keras_llm.layers.embedding import TokenEmbedding
from keras_llm.layers.position import PositionEmbedding
from keras_llm.layers.utils import get_activation
from keras_llm.models.backbone import Backbone
from keras_llm.models.tasks import Classifier
from keras_llm.models.tasks import MaskedLM


def _bert_initializer():
    return keras.initializers.TruncatedNormal(stddev=0.02)


@keras.saving.register_keras_serializable(package="keras_llm")
class BertBackbone(Backbone):
    """BERT encoder backbone.

    Args:
        vocabulary_size: int. `V` (30522 for the uncased English models).
        num_layers: int. Encoder blocks.
        num_heads: int. Attention heads `H`; must divide `hidden_dim`.
        hidden_dim: int. `D`.
        intermediate_dim: int. Feed-forward width `F` (`4 * D` in BERT).
        dropout: float. Dropout on the embeddings, attention probabilities,
            feed-forward activations and residual branches. Defaults to
            `0.1`.
        max_sequence_length: int. Rows of the learned position table.
            Defaults to `512`.
        num_segments: int. Segment (token type) embeddings. Defaults to `2`.
        layer_norm_epsilon: float. Defaults to `1e-12`.
        activation: str. The feed-forward activation: `"gelu"` (exact,
            Hugging Face's and the paper's) or `"gelu_tanh"` (the tanh
            approximation keras-hub's encoder runs). Defaults to `"gelu"`.
        head_activation: str or `None`. The masked-LM head's activation
            (`BertMaskedLM`); `None`: `activation`, as Hugging Face's head
            (keras-hub's head runs exact GELU whatever its encoder's).
        head_layer_norm_epsilon: float or `None`. Epsilon of the masked-LM
            head's layer norm (`BertMaskedLM`), which keras-hub sets to
            `1e-5` whatever the encoder's; `None`: `layer_norm_epsilon`.
        dtype: dtype policy, e.g. `"mixed_bfloat16"`.

    Inputs: dict of `token_ids`, `padding_mask` and `segment_ids` `(B, T)`.
    Outputs: dict of `sequence_output` `(B, T, D)` and `pooled_output`
    `(B, D)` (dense + tanh of the first position).

    Example:
    ```python
    backbone = keras_llm.models.BertBackbone(
        vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=64, max_sequence_length=32)
    outputs = backbone({"token_ids": np.ones((1, 8), "int32"),
                        "padding_mask": np.ones((1, 8), "int32"),
                        "segment_ids": np.zeros((1, 8), "int32")})
    ```

    Reference:
        - [Devlin et al., 2019](https://arxiv.org/abs/1810.04805)
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.1,
        max_sequence_length=512,
        num_segments=2,
        layer_norm_epsilon=1e-12,
        activation="gelu",
        head_activation=None,
        head_layer_norm_epsilon=None,
        dtype=None,
        **kwargs,
    ):
        # === Layers ===
        self.token_embedding = TokenEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=True,
            embeddings_initializer=_bert_initializer(),
            dtype=dtype,
            name="token_embedding",
        )
        self.position_embedding = PositionEmbedding(
            max_sequence_length,
            initializer=_bert_initializer(),
            dtype=dtype,
            name="position_embedding",
        )
        self.segment_embedding = TokenEmbedding(
            num_segments,
            hidden_dim,
            embeddings_initializer=_bert_initializer(),
            dtype=dtype,
            name="segment_embedding",
        )
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon,
            dtype=dtype,
            name="embeddings_layer_norm",
        )
        self.embeddings_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="embeddings_dropout"
        )
        self.transformer_blocks = [
            EncoderBlock(
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                activation=activation,
                dropout=dropout,
                normalize_first=False,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=_bert_initializer(),
                dtype=dtype,
                name=f"transformer_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.pooled_dense = keras.layers.Dense(
            hidden_dim,
            activation="tanh",
            kernel_initializer=_bert_initializer(),
            dtype=dtype,
            name="pooled_dense",
        )

        # === Functional Model ===
        inputs = {
            name: keras.Input((None,), dtype="int32", name=name)
            for name in ("token_ids", "padding_mask", "segment_ids")
        }
        x = self.token_embedding(inputs["token_ids"])  # (B, T, D)
        x = x + self.position_embedding(x)
        x = x + self.segment_embedding(inputs["segment_ids"])
        x = self.embeddings_layer_norm(x)
        x = self.embeddings_dropout(x)
        for block in self.transformer_blocks:
            x = block(x, padding_mask=inputs["padding_mask"])
        pooled_output = self.pooled_dense(x[:, 0, :])  # (B, D)
        super().__init__(
            inputs=inputs,
            outputs={"sequence_output": x, "pooled_output": pooled_output},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        self.head_activation = head_activation
        self.head_layer_norm_epsilon = head_layer_norm_epsilon


@keras.saving.register_keras_serializable(package="keras_llm")
class BertOutputBias(keras.layers.Layer):
    """Adds a learned bias over the last axis, in float32.

    The bias of BERT's tied output layer: the logits are cast to float32
    first, so the bias and the sum stay in float32 under mixed precision.

    Call arguments:
        inputs: float tensor `(..., V)`.

    Returns:
        Float32 tensor `(..., V)`.
    """

    def build(self, inputs_shape):
        self.bias = self.add_weight(
            name="bias", shape=(inputs_shape[-1],), initializer="zeros"
        )
        self.built = True

    def call(self, inputs):
        return ops.cast(inputs, "float32") + ops.cast(self.bias, "float32")


@keras.saving.register_keras_serializable(package="keras_llm")
class BertMaskedLM(MaskedLM):
    """BERT with its masked-language-model head: dict inputs → logits.

    The head transforms every position (dense + the backbone's
    `head_activation` + layer norm with `head_layer_norm_epsilon`), projects
    onto the vocabulary with the transposed token embedding, and adds an
    output bias. Logits `(B, T, V)` are float32 whatever the dtype policy;
    the loss picks the masked positions.

    Args:
        backbone: `keras_llm.models.BertBackbone`.

    Example:
    ```python
    model = keras_llm.build("zoo/bert_tiny.yaml")
    logits = model({"token_ids": ..., "padding_mask": ...,
                    "segment_ids": ...})  # (B, T, V)
    ```

    Reference:
        - [Devlin et al., 2019](https://arxiv.org/abs/1810.04805)
    """

    def __init__(self, backbone, **kwargs):
        # === Layers ===
        dtype = backbone.dtype_policy
        self.transform_dense = keras.layers.Dense(
            backbone.hidden_dim,
            activation=get_activation(
                backbone.head_activation or backbone.activation
            ),
            kernel_initializer=_bert_initializer(),
            dtype=dtype,
            name="transform_dense",
        )
        head_epsilon = backbone.head_layer_norm_epsilon
        if head_epsilon is None:
            head_epsilon = backbone.layer_norm_epsilon
        self.transform_layer_norm = keras.layers.LayerNormalization(
            epsilon=head_epsilon,
            dtype=dtype,
            name="transform_layer_norm",
        )
        self.output_bias = BertOutputBias(dtype=dtype, name="output_bias")

        # === Functional Model ===
        inputs = backbone.input
        x = backbone(inputs)["sequence_output"]  # (B, T, D)
        x = self.transform_layer_norm(self.transform_dense(x))
        logits = backbone.token_embedding(x, reverse=True)  # (B, T, V)
        logits = self.output_bias(logits)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone


@keras.saving.register_keras_serializable(package="keras_llm")
class BertClassifier(Classifier):
    """BERT with a classification head: dict inputs → logits over labels.

    The pooled output (dense + tanh of `[CLS]`), dropout, then a dense layer
    to `num_labels` logits, float32 whatever the dtype policy: section 4.1
    of the paper, and keras-hub's `BertTextClassifier`.

    Args:
        backbone: `keras_llm.models.BertBackbone`.
        num_labels: int. Labels (keras-hub's `num_classes`); training reads
            them from the data.
        dropout: float or `None`. Dropout on the pooled output; `None`:
            the backbone's rate.

    Example:
    ```python
    backbone = keras_llm.models.BertBackbone(
        vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=64, max_sequence_length=32)
    model = keras_llm.models.BertClassifier(backbone, num_labels=3)
    logits = model({"token_ids": ..., "padding_mask": ...,
                    "segment_ids": ...})  # (B, 3)
    ```

    Reference:
        - [Devlin et al., 2019](https://arxiv.org/abs/1810.04805)
    """

    def __init__(self, backbone, num_labels, dropout=None, **kwargs):
        if dropout is None:
            dropout = backbone.dropout
        # === Layers ===
        dtype = backbone.dtype_policy
        self.output_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="output_dropout"
        )
        self.output_dense = keras.layers.Dense(
            num_labels,
            kernel_initializer=_bert_initializer(),
            dtype=dtype,
            name="logits",
        )

        # === Functional Model ===
        inputs = backbone.input
        x = backbone(inputs)["pooled_output"]  # (B, D)
        logits = self.output_dense(self.output_dropout(x))  # (B, num_labels)
        logits = ops.cast(logits, "float32")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.num_labels = num_labels
        self.dropout = dropout
