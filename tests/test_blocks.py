"""Encoder and decoder blocks: contract, pre/post-norm, causality, cache."""

import keras
import numpy as np
import pytest

from keras_llm import blocks
from keras_llm import layers
from tests.helpers import check_layer

RNG = np.random.default_rng(3)
D, H, K = 8, 2, 3


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def block_kwargs(**overrides):
    kwargs = dict(num_heads=H, intermediate_dim=16, key_value_dim=K)
    kwargs.update(overrides)
    return kwargs


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_block_contract(normalize_first, tmp_path):
    x = RNG.normal(size=(2, 5, D)).astype("float32")
    check_layer(
        blocks.EncoderBlock,
        block_kwargs(normalize_first=normalize_first),
        {"inputs": x, "padding_mask": np.array([[1] * 5, [1, 1, 1, 0, 0]])},
        (2, 5, D),
        4 * 2 + 2 + 2 * 2 + 2,
        tmp_path,
    )


def test_decoder_block_contract(tmp_path):
    x = RNG.normal(size=(2, 4, D)).astype("float32")
    source = RNG.normal(size=(2, 6, D)).astype("float32")
    # T5 flavour: RMS norm, gated gelu, no biases.
    kwargs = block_kwargs(
        normalization="rms_norm",
        use_bias=False,
        use_gated_activation=True,
        activation="gelu_tanh",
        normalize_first=True,
        use_attention_scale=False,
    )
    check_layer(
        blocks.DecoderBlock,
        kwargs,
        {"inputs": x, "encoder_outputs": source},
        (2, 4, D),
        4 + 1 + 4 + 1 + 3 + 1,
        tmp_path,
    )


def test_post_norm_and_pre_norm_differ_as_defined():
    x = RNG.normal(size=(1, 3, D)).astype("float32") * 3 + 2
    post = blocks.EncoderBlock(**block_kwargs(normalize_first=False))
    out = to_numpy(post(x))
    # Post-norm output is layer-normalized: zero mean, unit variance rows.
    np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(-1), 1.0, atol=1e-3)
    pre = blocks.EncoderBlock(**block_kwargs(normalize_first=True))
    assert abs(to_numpy(pre(x)).mean()) > 0.1  # residual stream kept


def test_encoder_padding_does_not_leak():
    block = blocks.EncoderBlock(**block_kwargs())
    x = RNG.normal(size=(1, 5, D)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0]])
    changed = x.copy()
    changed[:, 3:] = 9.0
    np.testing.assert_allclose(
        to_numpy(block(x, padding_mask=mask))[:, :3],
        to_numpy(block(changed, padding_mask=mask))[:, :3],
        atol=1e-5,
    )


def decode_step_by_step(block, x, max_length, **kwargs):
    """Feeds x one token at a time through the self-attention cache."""
    batch = x.shape[0]
    cache = np.zeros((batch, 2, max_length, H, K), "float32")
    cross_cache = None
    if kwargs.get("encoder_outputs") is not None:
        cross_cache = block.cross_attention.compute_key_value(
            kwargs.pop("encoder_outputs")
        )
    outputs = []
    for i in range(x.shape[1]):
        out, cache, cross_cache = block(
            x[:, i : i + 1],
            self_attention_cache=cache,
            cross_attention_cache=cross_cache,
            cache_index=i,
            **kwargs,
        )
        outputs.append(to_numpy(out))
    return np.concatenate(outputs, axis=1)


@pytest.mark.parametrize("cross", [False, True])
def test_decoder_cache_equals_full_pass(cross):
    block = blocks.DecoderBlock(
        **block_kwargs(use_cross_attention=cross, normalize_first=True)
    )
    x = RNG.normal(size=(2, 6, D)).astype("float32")
    kwargs = {}
    if cross:
        source = RNG.normal(size=(2, 4, D)).astype("float32")
        source_mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
        kwargs = {
            "encoder_outputs": source,
            "encoder_padding_mask": source_mask,
        }
    full = to_numpy(block(x, **kwargs))
    stepped = decode_step_by_step(block, x, max_length=9, **dict(kwargs))
    np.testing.assert_allclose(stepped, full, atol=1e-5)


def test_decoder_prefix_in_one_call_then_steps():
    # Prefill 3 tokens in one call, then 2 single steps.
    block = blocks.DecoderBlock(**block_kwargs(use_cross_attention=False))
    x = RNG.normal(size=(1, 5, D)).astype("float32")
    full = to_numpy(block(x))
    cache = np.zeros((1, 2, 8, H, K), "float32")
    out, cache, _ = block(x[:, :3], self_attention_cache=cache, cache_index=0)
    parts = [to_numpy(out)]
    for i in (3, 4):
        out, cache, _ = block(
            x[:, i : i + 1], self_attention_cache=cache, cache_index=i
        )
        parts.append(to_numpy(out))
    np.testing.assert_allclose(np.concatenate(parts, 1), full, atol=1e-5)


def test_future_tokens_never_change_earlier_outputs():
    block = blocks.DecoderBlock(**block_kwargs())
    x = RNG.normal(size=(1, 6, D)).astype("float32")
    source = RNG.normal(size=(1, 4, D)).astype("float32")
    base = to_numpy(block(x, encoder_outputs=source))
    for t in range(6):
        changed = x.copy()
        changed[:, t] += 5.0
        out = to_numpy(block(changed, encoder_outputs=source))
        np.testing.assert_allclose(out[:, :t], base[:, :t], atol=1e-6)
        assert not np.allclose(out[:, t], base[:, t])


def test_block_rejects_unknown_normalization():
    with pytest.raises(ValueError, match="normalization.*'batch_norm'"):
        blocks.EncoderBlock(**block_kwargs(normalization="batch_norm"))


def test_attention_mask_argument_is_applied():
    block = blocks.EncoderBlock(**block_kwargs())
    x = RNG.normal(size=(1, 4, D)).astype("float32")
    causal = layers.causal_mask(4, 4)[None]
    out = to_numpy(block(x, attention_mask=causal))
    changed = x.copy()
    changed[:, 3] += 4.0
    np.testing.assert_allclose(
        to_numpy(block(changed, attention_mask=causal))[:, :3],
        out[:, :3],
        atol=1e-5,
    )
