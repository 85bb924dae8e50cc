"""Sampling pieces shared by the decode loops: Hugging Face's logits
warpers, a seeded counter-based RNG, and small static-shape helpers."""

import tensorflow as tf


def warp_logits(logits, config):
    """Hugging Face's sampling warpers in its order: temperature, top-k,
    top-p. Removed tokens get `-inf`.

    Args:
        logits: float32 `(R, V)`.
        config: `GenerationConfig`.
    """
    if config.temperature != 1.0:
        logits = logits / config.temperature
    if config.top_k:
        vocabulary_size = static_dim(logits, -1)
        k = config.top_k
        if isinstance(vocabulary_size, int):
            k = min(k, vocabulary_size)
        else:
            k = tf.minimum(k, vocabulary_size)
        kth = tf.math.top_k(logits, k=k).values[:, -1:]  # (R, 1)
        logits = tf.where(logits < kth, -float("inf"), logits)
    if config.top_p < 1.0:
        ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
        probs = tf.nn.softmax(ordered, axis=-1)
        # Keep a token while the mass before it is below top_p (the most
        # likely one always stays).
        before = tf.cumsum(probs, axis=-1, exclusive=True)
        kept = tf.where(before < config.top_p, ordered, float("inf"))
        threshold = tf.reduce_min(kept, axis=-1, keepdims=True)  # (R, 1)
        logits = tf.where(logits < threshold, -float("inf"), logits)
    return logits


def _hash32(x):
    """A 32-bit integer hash (Wellons' "lowbias32") of uint32 `x`."""
    x ^= tf.bitwise.right_shift(x, 16)
    x *= tf.constant(0x7FEB352D, tf.uint32)
    x ^= tf.bitwise.right_shift(x, 15)
    x *= tf.constant(0x846CA68B, tf.uint32)
    return x ^ tf.bitwise.right_shift(x, 16)


def _uniform(shape, seed, t):
    """Uniform floats in (0, 1) of a static-rank `(R, C)` `shape`, a pure
    function of `(seed, t)` and the position.

    Integer hashing, not `tf.random.stateless_*`: those draw different
    numbers under XLA than without it, and a seed must give the same sample
    from the XLA-compiled library loop and from an export (no XLA).
    """
    seed = tf.cast(seed, tf.uint32)
    key = _hash32(seed[0] ^ tf.constant(0x243F6A88, tf.uint32))
    key = _hash32(key ^ seed[1])
    key = _hash32(key ^ tf.cast(t, tf.uint32))
    counter = tf.reshape(tf.range(shape[0] * shape[1]), shape)
    bits = _hash32(_hash32(tf.cast(counter, tf.uint32) + key) ^ key)
    # The top 24 bits, centred in their interval: never 0, never 1.
    return (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) / 2**24


def gumbel(shape, seed, t):
    # Gumbel-max: argmax(logits + G) samples softmax(logits); top-k of it
    # samples k without replacement.
    return -tf.math.log(-tf.math.log(_uniform(shape, seed, t)))


def static_dim(tensor, axis):
    """A static dimension where known (shapes stay fixed through the loop),
    else the dynamic one."""
    static = tensor.shape[axis]
    return tf.shape(tensor)[axis] if static is None else static


def write_column(tensor, t, values):
    """`tensor[..., t] = values` for `(..., N)` `tensor` and scalar `t`."""
    columns = tf.range(tf.shape(tensor)[-1])
    return tf.where(columns == t, values[..., None], tensor)
