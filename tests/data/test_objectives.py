"""Objectives: T5 span corruption statistics and exact reconstruction;
BERT masking rates."""

import numpy as np
import pytest
import tensorflow as tf

from keras_llm.config import span_corruption_lengths
from keras_llm.data import objectives

VOCAB = 1000
FIRST_SENTINEL = VOCAB - 1  # <extra_id_0>; later sentinels count down


def test_lengths_match_t5():
    # T5's baseline: 512 inputs ← 568 raw tokens, 114 targets.
    assert span_corruption_lengths(512) == (568, 114)
    raw, targets = span_corruption_lengths(64)
    assert raw > 64 and targets < 64


def reconstruct(inputs, targets):
    """Undo span corruption: put each sentinel's span back."""
    spans, current = {}, None
    for token in targets:
        if token > FIRST_SENTINEL - 100:
            current = token
            spans[current] = []
        else:
            spans[current].append(token)
    out = []
    for token in inputs:
        out.extend(spans[token] if token > FIRST_SENTINEL - 100 else [token])
    return out


def test_span_corruption_statistics_and_reconstruction():
    raw, _ = span_corruption_lengths(512)
    noise, spans, total = 0, 0, 0
    for i in range(50):
        tokens = np.random.default_rng(i).integers(3, 800, size=raw)
        inputs, targets = objectives.span_corruption(
            tf.constant(tokens, tf.int32), tf.constant([7, i]), FIRST_SENTINEL
        )
        inputs, targets = inputs.numpy(), targets.numpy()
        sentinels_in = inputs[inputs > FIRST_SENTINEL - 100]
        sentinels_out = targets[targets > FIRST_SENTINEL - 100]
        # Sentinels count down from <extra_id_0>, in order, same in both.
        np.testing.assert_array_equal(
            sentinels_in, FIRST_SENTINEL - np.arange(len(sentinels_in))
        )
        np.testing.assert_array_equal(sentinels_in, sentinels_out)
        assert reconstruct(inputs, targets) == tokens.tolist()
        # The lengths fill the model exactly (+1 EOS each).
        assert len(inputs) + 1 == 512 and len(targets) + 1 == 114
        noise += len(targets) - len(sentinels_out)
        spans += len(sentinels_out)
        total += raw
    assert abs(noise / total - 0.15) <= 0.02
    assert abs(noise / spans - 3.0) <= 0.5


def test_span_corruption_is_seeded():
    tokens = tf.range(10, 78)
    a = objectives.span_corruption(tokens, tf.constant([1, 2]), FIRST_SENTINEL)
    b = objectives.span_corruption(tokens, tf.constant([1, 2]), FIRST_SENTINEL)
    c = objectives.span_corruption(tokens, tf.constant([1, 3]), FIRST_SENTINEL)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])


def test_bert_masking_rates():
    ids = tf.constant(
        np.random.default_rng(0).integers(5, 900, 20000), tf.int32
    )
    special = tf.zeros_like(ids, tf.bool)
    masked, labels, weights = objectives.mask_tokens(
        ids,
        tf.constant([0, 1]),
        mask_id=4,
        vocabulary_size=VOCAB,
        special_mask=special,
    )
    masked, weights = masked.numpy(), weights.numpy()
    picked = weights > 0
    assert abs(picked.mean() - 0.15) < 0.01
    assert abs((masked[picked] == 4).mean() - 0.8) < 0.03
    kept = (masked[picked] == ids.numpy()[picked]).mean()
    assert 0.08 < kept < 0.13  # 10% unchanged (+ random hits of itself)
    np.testing.assert_array_equal(masked[~picked], ids.numpy()[~picked])
    np.testing.assert_array_equal(labels, ids)


@pytest.mark.parametrize("length", [64, 512])
def test_noise_mask_density(length):
    mask = objectives.random_spans_noise_mask(
        length, 0.15, 3.0, tf.constant([3, 4])
    ).numpy()
    assert mask.shape == (length,)
    assert abs(mask.mean() - 0.15) < 0.03
    assert not mask[0]  # spans alternate, starting with non-noise
