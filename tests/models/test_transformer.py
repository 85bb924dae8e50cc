"""The Transformer (Vaswani et al., 2017): cache, causality, save/load, size.

There is no Hugging Face twin to compare against, so these tests pin the
behaviour instead: cached decoding equals the full pass, the decoder is
causal, padding does not leak, and the base size has the parameter count
computed by hand below.
"""

import keras
import numpy as np
import pytest

from keras_llm.models import TransformerBackbone
from keras_llm.models import TransformerSeq2SeqLM
from tests.helpers import check_backbone
from tests.helpers import check_task

TINY = dict(
    vocabulary_size=97,
    num_layers=2,
    num_heads=4,
    hidden_dim=32,
    intermediate_dim=48,
    dropout=0.0,
    layer_norm_epsilon=1e-6,
)


def tiny_inputs(seed=0):
    rng = np.random.default_rng(seed)
    enc_ids = rng.integers(1, TINY["vocabulary_size"], (2, 7)).astype("int32")
    enc_mask = (np.arange(7)[None] < np.array([[7], [4]])).astype("int32")
    dec_ids = rng.integers(1, TINY["vocabulary_size"], (2, 5)).astype("int32")
    return {
        "encoder_token_ids": enc_ids * enc_mask,
        "encoder_padding_mask": enc_mask,
        "decoder_token_ids": dec_ids,
        "decoder_padding_mask": np.ones_like(dec_ids),
    }


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_decoder_is_causal_and_encoder_padding_does_not_leak():
    model = TransformerSeq2SeqLM(TransformerBackbone(**TINY))
    inputs = tiny_inputs()
    changed = {k: v.copy() for k, v in inputs.items()}
    changed["decoder_token_ids"][:, 3:] = 5  # future decoder tokens
    changed["encoder_token_ids"][1, 4:] = 9  # padding of the 2nd source
    a, b = to_numpy(model(inputs)), to_numpy(model(changed))
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-5)
    assert np.abs(a[:, 3:] - b[:, 3:]).max() > 1e-3
    # A real source token does change every target position.
    changed["encoder_token_ids"][0, 0] += 1
    c = to_numpy(model(changed))
    assert np.abs(c[0, :3] - b[0, :3]).min() > 0


def test_embedding_is_shared_and_scaled():
    backbone = TransformerBackbone(**TINY)
    # One matrix: source, target and output projection (section 3.4).
    assert len(backbone.token_embedding.weights) == 1
    x = backbone._embed(np.array([[3]]))
    table = to_numpy(backbone.token_embedding.embeddings)
    position_0 = np.tile([0.0, 1.0], TINY["hidden_dim"] // 2)  # sin 0, cos 0
    np.testing.assert_allclose(
        to_numpy(x)[0, 0],
        table[3] * 32**0.5 + position_0,
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.large
def test_base_parameter_count():
    # Vaswani et al. base: N=6, D=512, F=2048, H=8, V=37000 (shared BPE).
    #   embedding (shared with the output layer): 37000 * 512 = 18,944,000
    #   attention: 4 * (512 * 512 + 512)                       =  1,050,624
    #   feed-forward: 512 * 2048 + 2048 + 2048 * 512 + 512      =  2,099,712
    #   layer norm: 2 * 512                                     =      1,024
    #   encoder layer: attention + ffn + 2 norms                =  3,152,384
    #   decoder layer: 2 attentions + ffn + 3 norms             =  4,204,032
    #   total: 18,944,000 + 6 * 3,152,384 + 6 * 4,204,032       = 63,082,496
    # Post-norm has no final layer norm. (Table 3 of the paper says "65M" for
    # base without giving the breakdown.)
    backbone = TransformerBackbone(
        vocabulary_size=37000,
        num_layers=6,
        num_heads=8,
        hidden_dim=512,
        intermediate_dim=2048,
    )
    assert backbone.count_params() == 63_082_496
    assert TransformerSeq2SeqLM(backbone).count_params() == 63_082_496


@pytest.mark.large
def test_backbone_and_task_contracts(tmp_path):
    inputs = tiny_inputs()
    inputs["decoder_padding_mask"][0, 4:] = 0  # a padded target
    check_backbone(TransformerBackbone, TINY, inputs, tmp_path)
    check_task(
        TransformerSeq2SeqLM, TransformerBackbone, TINY, inputs, tmp_path
    )
