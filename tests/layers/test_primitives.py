"""Positions, feed-forward, norms and embeddings against formulas and
keras-hub."""

import math

import keras
import keras_hub
import numpy as np
import pytest

from keras_llm import layers

RNG = np.random.default_rng(2)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_sinusoidal_matches_formula_and_keras_hub():
    x = np.zeros((2, 7, 10), "float32")
    ours = to_numpy(layers.SinusoidalPositionEncoding()(x))
    positions = np.arange(7)[:, None]
    freq = 1.0 / 10000 ** (2 * (np.arange(10) // 2) / 10)
    expected = np.where(
        np.arange(10) % 2 == 0,
        np.sin(positions * freq),
        np.cos(positions * freq),
    )
    np.testing.assert_allclose(ours[1], expected, atol=1e-5)
    hub = to_numpy(keras_hub.layers.SinePositionEncoding()(x))
    np.testing.assert_allclose(ours, hub, atol=1e-5)
    shifted = to_numpy(
        layers.SinusoidalPositionEncoding()(x[:, :2], start_index=5)
    )
    np.testing.assert_allclose(shifted, ours[:, 5:7], atol=1e-5)


def test_rotary_matches_keras_hub_and_preserves_norm():
    x = RNG.normal(size=(2, 6, 3, 8)).astype("float32")
    ours = to_numpy(layers.RotaryEmbedding()(x, start_index=2))
    hub = to_numpy(keras_hub.layers.RotaryEmbedding()(x, start_index=2))
    np.testing.assert_allclose(ours, hub, atol=1e-5)
    np.testing.assert_allclose(
        np.linalg.norm(ours, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5
    )
    # Relative: <rot(q, m), rot(k, n)> depends on m - n only.
    q, k = x[:1, :1], x[1:, :1]
    rope = layers.RotaryEmbedding()

    def dot(m, n):
        return np.sum(
            to_numpy(rope(q, start_index=m)) * to_numpy(rope(k, start_index=n))
        )

    np.testing.assert_allclose(dot(3, 1), dot(10, 8), rtol=1e-4)


def test_position_embedding_start_index_slices_the_table():
    layer = layers.PositionEmbedding(sequence_length=10)
    x = np.zeros((1, 3, 4), "float32")
    layer(x)
    table = to_numpy(layer.position_embeddings)
    np.testing.assert_array_equal(
        to_numpy(layer(x, start_index=4))[0], table[4:7]
    )


@pytest.mark.parametrize(
    "activation,fn",
    [
        ("relu", lambda x: np.maximum(x, 0)),
        (
            "gelu",
            lambda x: x * 0.5 * (1 + np.vectorize(math.erf)(x / np.sqrt(2))),
        ),
        (
            "gelu_tanh",
            lambda x: (
                0.5
                * x
                * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
            ),
        ),
        ("silu", lambda x: x / (1 + np.exp(-x))),
    ],
)
@pytest.mark.parametrize("gated", [False, True])
def test_feedforward_formula(activation, fn, gated):
    layer = layers.FeedForward(
        16, activation=activation, use_gated_activation=gated
    )
    x = RNG.normal(size=(2, 3, 8)).astype("float32")
    out = to_numpy(layer(x))

    def w(dense):
        return to_numpy(dense.kernel), to_numpy(dense.bias)

    w0, b0 = w(layer.inner_dense)
    hidden = fn(x @ w0 + b0)
    if gated:
        w1, b1 = w(layer.linear_dense)
        hidden = hidden * (x @ w1 + b1)
    w2, b2 = w(layer.output_dense)
    np.testing.assert_allclose(out, hidden @ w2 + b2, rtol=1e-4, atol=1e-5)


def test_feedforward_rejects_unknown_activation():
    with pytest.raises(
        ValueError, match="activation.*Received: activation='tanh'"
    ):
        layers.FeedForward(8, activation="tanh")


def test_rms_normalization_formula_and_bf16_stability():
    layer = layers.RMSNormalization(epsilon=1e-6)
    x = RNG.normal(size=(2, 3, 8)).astype("float32") * 50
    layer(x)
    layer.scale.assign(RNG.normal(size=8).astype("float32"))
    expected = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(
        to_numpy(layer(x)), expected * to_numpy(layer.scale), rtol=1e-5
    )


def test_tied_embedding_reverse_is_transpose():
    layer = layers.TokenEmbedding(vocabulary_size=11, hidden_dim=4)
    ids = np.array([[3, 7]])
    hidden = to_numpy(layer(ids))
    table = to_numpy(layer.embeddings)
    np.testing.assert_array_equal(hidden[0], table[[3, 7]])
    np.testing.assert_allclose(
        to_numpy(layer(hidden, reverse=True)), hidden @ table.T, rtol=1e-5
    )


def test_untie_weights_keeps_outputs_and_separates_the_tables():
    layer = layers.TokenEmbedding(vocabulary_size=11, hidden_dim=4)
    hidden = RNG.normal(size=(2, 3, 4)).astype("float32")
    tied = to_numpy(layer(hidden, reverse=True))
    layer.untie_weights()
    assert not layer.tie_weights
    assert tuple(layer.reverse_embeddings.shape) == (4, 11)
    np.testing.assert_allclose(
        to_numpy(layer(hidden, reverse=True)), tied, rtol=1e-6
    )
    np.testing.assert_array_equal(
        to_numpy(layer.reverse_embeddings), to_numpy(layer.embeddings).T
    )
    layer.embeddings.assign(np.zeros((11, 4), "float32"))  # not shared now
    assert np.abs(to_numpy(layer.reverse_embeddings)).max() > 0
    layer.untie_weights()  # untied already: nothing changes
    assert len(layer.weights) == 2
