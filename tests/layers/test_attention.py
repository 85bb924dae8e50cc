"""Attention behaviour: the textbook numbers, masks, bias, cache."""

import keras
import numpy as np

from keras_llm import layers

RNG = np.random.default_rng(1)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_scaled_dot_product_attention_textbook_example():
    # One head, d_k = 2, no projections: softmax(Q K^T / sqrt(2)) V.
    q = np.array([[1, 2], [3, 4]], "float32")[None, :, None, :]
    k = np.array([[5, 6], [7, 8]], "float32")[None, :, None, :]
    v = np.array([[9, 10], [11, 12]], "float32")[None, :, None, :]
    out = to_numpy(layers.scaled_dot_product_attention(q, k, v))[0, :, 0]
    np.testing.assert_allclose(
        out, [[10.9717, 11.9717], [10.9999, 11.9999]], atol=1e-4
    )


def test_scale_none_bias_and_mask_follow_the_formula():
    q, k, v = (
        RNG.normal(size=(2, 3, 2, 4)).astype("float32") for _ in range(3)
    )
    bias = RNG.normal(size=(1, 2, 3, 3)).astype("float32")
    mask = np.array([[1, 1, 0], [1, 0, 1]], bool)[:, None, :]  # (B, 1, S)
    out = to_numpy(
        layers.scaled_dot_product_attention(
            q, k, v, attention_mask=mask, position_bias=bias, scale=None
        )
    )
    scores = np.einsum("bthk,bshk->bhts", q, k) + bias
    scores = np.where(mask[:, None], scores, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        out, np.einsum("bhts,bshk->bthk", probs, v), rtol=1e-5, atol=1e-6
    )


def test_padding_mask_hides_keys():
    layer = layers.MultiHeadAttention(num_heads=2)
    query = RNG.normal(size=(1, 4, 8)).astype("float32")
    value = RNG.normal(size=(1, 6, 8)).astype("float32")
    mask = np.array([[[1, 1, 1, 1, 0, 0]]], bool)
    changed = value.copy()
    changed[:, 4:] = 100.0  # masked keys: must not matter
    np.testing.assert_allclose(
        to_numpy(layer(query, value, attention_mask=mask)),
        to_numpy(layer(query, changed, attention_mask=mask)),
        rtol=1e-6,
        atol=1e-6,
    )
    assert not np.allclose(
        to_numpy(layer(query, value)), to_numpy(layer(query, changed))
    )


def test_self_attention_cache_step_by_step_equals_full_pass():
    layer = layers.MultiHeadAttention(num_heads=2, key_value_dim=3)
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    full = to_numpy(layer(x, attention_mask=layers.causal_mask(5, 5)[None]))
    cache = np.zeros((2, 2, 7, 2, 3), "float32")  # L = 7 > T
    steps = []
    for i in range(5):
        out, cache = layer(
            x[:, i : i + 1],
            cache=cache,
            cache_index=i,
            attention_mask=layers.causal_mask(1, 7, i)[None],
        )
        steps.append(to_numpy(out))
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-5)
    # The cache holds the keys/values of exactly the 5 written positions.
    np.testing.assert_array_equal(to_numpy(cache)[:, :, 5:], 0.0)


def test_cross_attention_precomputed_cache_equals_direct():
    layer = layers.MultiHeadAttention(num_heads=2)
    query = RNG.normal(size=(2, 3, 8)).astype("float32")
    source = RNG.normal(size=(2, 6, 8)).astype("float32")
    direct = to_numpy(layer(query, source))
    cache = layer.compute_key_value(source)  # (B, 2, S, H, K)
    cached, returned = layer(query, cache=cache)
    np.testing.assert_allclose(to_numpy(cached), direct, atol=1e-6)
    np.testing.assert_array_equal(to_numpy(returned), to_numpy(cache))


def test_masks():
    np.testing.assert_array_equal(
        to_numpy(layers.causal_mask(2, 4, start_index=1)),
        [[1, 1, 0, 0], [1, 1, 1, 0]],
    )
    padding = np.array([[1, 1, 0]])
    merged = layers.merge_masks(
        layers.causal_mask(3, 3)[None],
        layers.padding_to_attention_mask(padding),
        None,
    )
    np.testing.assert_array_equal(
        to_numpy(merged)[0], [[1, 0, 0], [1, 1, 0], [1, 1, 0]]
    )
