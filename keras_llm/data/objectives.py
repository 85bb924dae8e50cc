"""Training objectives as pure TF functions on token tensors.

- `span_corruption`: T5's denoising objective (Raffel et al., 2020, §3.1.4):
  noise spans in the inputs become sentinels; the targets list each sentinel
  followed by the tokens it hid.
- `mask_tokens`: BERT's masked LM (15% of tokens; 80% [MASK], 10% random,
  10% unchanged).
Everything is stateless-random from an explicit seed, so a resumed run
replays the same examples.
"""

import tensorflow as tf


def _random_segmentation(num_items, num_segments, seed):
    """Random partition of `num_items` into `num_segments` non-empty parts."""
    first = tf.cast(tf.range(num_items - 1) < num_segments - 1, tf.int32)
    order = tf.argsort(tf.random.stateless_uniform([num_items - 1], seed))
    first = tf.pad(tf.gather(first, order), [[1, 0]])  # shuffled boundaries
    segment_id = tf.cumsum(first)
    return tf.math.segment_sum(tf.ones_like(segment_id), segment_id)


def random_spans_noise_mask(
    length, noise_density, mean_noise_span_length, seed
):
    """Boolean `(length,)` mask of noise spans (T5's algorithm).

    `length` is a Python int; `seed` a `(2,)` int tensor. Spans alternate
    non-noise / noise, starting with non-noise.
    """
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    noise_lengths = _random_segmentation(num_noise, num_spans, seeds[0])
    kept_lengths = _random_segmentation(length - num_noise, num_spans, seeds[1])
    interleaved = tf.reshape(tf.stack([kept_lengths, noise_lengths], 1), [-1])
    span_starts = tf.cumsum(interleaved)[:-1]
    start_indicator = tf.math.unsorted_segment_sum(
        tf.ones_like(span_starts), span_starts, length
    )
    return tf.equal(tf.cumsum(start_indicator) % 2, 1)


def _spans_to_sentinels(tokens, noise_mask, first_sentinel_id):
    """Replaces each noise span by one sentinel, counting down from the top."""
    previous = tf.pad(noise_mask[:-1], [[1, 0]])
    first = tf.logical_and(noise_mask, tf.logical_not(previous))
    subsequent = tf.logical_and(noise_mask, previous)
    sentinel = first_sentinel_id + 1 - tf.cumsum(tf.cast(first, tokens.dtype))
    tokens = tf.where(first, sentinel, tokens)
    return tf.boolean_mask(tokens, tf.logical_not(subsequent))


def span_corruption(
    tokens,
    seed,
    first_sentinel_id,
    noise_density=0.15,
    mean_noise_span_length=3.0,
):
    """T5 span corruption of one raw token chunk (static length).

    Args:
        tokens: int32 `(N,)`, N static.
        seed: int `(2,)` stateless seed.
        first_sentinel_id: id of `<extra_id_0>`; later sentinels count down.

    Returns:
        `(inputs, targets)` int32 vectors without EOS.
    """
    length = tokens.shape[0]
    mask = random_spans_noise_mask(
        length, noise_density, mean_noise_span_length, seed
    )
    inputs = _spans_to_sentinels(tokens, mask, first_sentinel_id)
    targets = _spans_to_sentinels(
        tokens, tf.logical_not(mask), first_sentinel_id
    )
    return inputs, targets


def mask_tokens(
    token_ids, seed, mask_id, vocabulary_size, special_mask, mask_rate=0.15
):
    """BERT masking: picks `mask_rate` of the non-special tokens.

    Args:
        token_ids: int32 `(T,)`.
        special_mask: bool `(T,)`: positions never picked ([CLS], [SEP],
            padding).

    Returns:
        `(masked_ids, labels, weights)`: labels hold the original ids,
        weights are 1.0 at the picked positions.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    shape = tf.shape(token_ids)
    picked = tf.logical_and(
        tf.random.stateless_uniform(shape, seeds[0]) < mask_rate,
        tf.logical_not(special_mask),
    )
    choice = tf.random.stateless_uniform(shape, seeds[1])
    random_ids = tf.random.stateless_uniform(
        shape, seeds[2], minval=0, maxval=vocabulary_size, dtype=tf.int32
    )
    replaced = tf.where(
        choice < 0.8, mask_id, tf.where(choice < 0.9, random_ids, token_ids)
    )
    masked = tf.where(picked, replaced, token_ids)
    return masked, token_ids, tf.cast(picked, tf.float32)
