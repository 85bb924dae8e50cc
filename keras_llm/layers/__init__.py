"""Public Keras layers of keras_llm (the only import path users need)."""

import keras_llm.backend  # noqa: F401  (fails fast on a non-TF backend)
from keras_llm.layers.attention import MultiHeadAttention
from keras_llm.layers.attention import scaled_dot_product_attention
from keras_llm.layers.embedding import TokenEmbedding
from keras_llm.layers.feedforward import FeedForward
from keras_llm.layers.masks import causal_mask
from keras_llm.layers.masks import merge_masks
from keras_llm.layers.masks import padding_to_attention_mask
from keras_llm.layers.normalization import RMSNormalization
from keras_llm.layers.position import PositionEmbedding
from keras_llm.layers.position import RelativePositionBias
from keras_llm.layers.position import RotaryEmbedding
from keras_llm.layers.position import SinusoidalPositionEncoding
from keras_llm.layers.position import relative_position_bucket

LAYERS = (
    MultiHeadAttention,
    TokenEmbedding,
    FeedForward,
    RMSNormalization,
    PositionEmbedding,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionEncoding,
)

__all__ = [
    "LAYERS",
    "MultiHeadAttention",
    "RMSNormalization",
    "FeedForward",
    "PositionEmbedding",
    "RelativePositionBias",
    "RotaryEmbedding",
    "SinusoidalPositionEncoding",
    "TokenEmbedding",
    "causal_mask",
    "merge_masks",
    "padding_to_attention_mask",
    "relative_position_bucket",
    "scaled_dot_product_attention",
]
