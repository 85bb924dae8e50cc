"""The layer contract (helpers.check_layer) for every public layer."""

import numpy as np
import pytest

import keras_llm
from keras_llm import layers
from tests.helpers import check_layer

RNG = np.random.default_rng(0)
HIDDEN = RNG.normal(size=(2, 5, 8)).astype("float32")
HEADS = RNG.normal(size=(2, 5, 2, 4)).astype("float32")
IDS = RNG.integers(0, 11, size=(2, 5)).astype("int32")

CASES = {
    "attention": (
        layers.MultiHeadAttention,
        {"num_heads": 2, "key_value_dim": 3},
        {"query": HIDDEN},
        (2, 5, 8),
        8,
    ),
    "attention_no_bias_no_scale": (
        layers.MultiHeadAttention,
        {"num_heads": 2, "use_bias": False, "use_attention_scale": False},
        {"query": HIDDEN},
        (2, 5, 8),
        4,
    ),
    "cross_attention": (
        layers.MultiHeadAttention,
        {"num_heads": 2},
        {"query": HIDDEN, "value": HIDDEN[:, :3]},
        (2, 5, 8),
        8,
    ),
    "feedforward": (
        layers.FeedForward,
        {"intermediate_dim": 16, "activation": "gelu"},
        {"inputs": HIDDEN},
        (2, 5, 8),
        4,
    ),
    "feedforward_geglu": (
        layers.FeedForward,
        {
            "intermediate_dim": 16,
            "activation": "gelu_tanh",
            "use_gated_activation": True,
            "use_bias": False,
        },
        {"inputs": HIDDEN},
        (2, 5, 8),
        3,
    ),
    "rms_norm": (
        layers.RMSNormalization,
        {"epsilon": 1e-6},
        {"inputs": HIDDEN},
        (2, 5, 8),
        1,
    ),
    "token_embedding": (
        layers.TokenEmbedding,
        {"vocabulary_size": 11, "hidden_dim": 8},
        {"inputs": IDS},
        (2, 5, 8),
        1,
    ),
    "position_embedding": (
        layers.PositionEmbedding,
        {"sequence_length": 9},
        {"inputs": HIDDEN},
        (2, 5, 8),
        1,
    ),
    "sinusoidal": (
        layers.SinusoidalPositionEncoding,
        {},
        {"inputs": HIDDEN},
        (2, 5, 8),
        0,
    ),
    "relative_bias": (
        layers.RelativePositionBias,
        {"num_heads": 2, "num_buckets": 8},
        {"query": HIDDEN},
        (1, 2, 5, 5),
        1,
    ),
    "rotary": (
        layers.RotaryEmbedding,
        {},
        {"inputs": HEADS},
        (2, 5, 2, 4),
        0,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_contract(case, tmp_path):
    cls, init_kwargs, inputs, shape, num_weights = CASES[case]
    check_layer(cls, init_kwargs, inputs, shape, num_weights, tmp_path)


def test_tied_output_projection_contract(tmp_path):
    # The reverse call is the layer's second face: it must save and load too.
    hidden = RNG.normal(size=(2, 5, 8)).astype("float32")
    check_layer(
        layers.TokenEmbedding,
        {"vocabulary_size": 11, "hidden_dim": 8, "tie_weights": False},
        {"inputs": hidden},
        (2, 5, 11),
        2,
        tmp_path,
        call_kwargs={"reverse": True},
    )


def test_every_public_layer_is_covered_and_registered():
    import keras

    covered = {case[0] for case in CASES.values()}
    assert set(layers.LAYERS) <= covered
    for cls in layers.LAYERS + (
        keras_llm.blocks.EncoderBlock,
        keras_llm.blocks.DecoderBlock,
    ):
        assert keras.saving.get_registered_name(cls).startswith("keras_llm>")
