"""The decode loop compiled with XLA inside a graph that is not compiled:
what `keras_llm.export(..., xla=True)` serves.

XLA compiles the loop again for every new input shape (seconds each), so
the ids are padded to buckets in the graph first: the batch to a power of
two (with copies of its first row, which stop when it stops, so the loop
runs no longer), the prompt length as `generate_ids` pads it (powers of two
from `MIN_BUCKET`, at most the model's limit). Tokenization stays outside
XLA: TensorFlow Text's ops do not compile.
"""

import tensorflow as tf

from keras_llm.generation.driver import MIN_BUCKET
from keras_llm.generation.driver import prompt_limit
from keras_llm.generation.search import decode

# Buckets up to minimum * 2**31, past any batch or prompt length.
_POWERS = 31


def bucket(size, minimum, limit=None):
    """In the graph: the smallest power of two that is at least `size` and
    `minimum` (a power of two too), at most `limit` but never below `size`.

    `bucket_length(n, limit)` is `bucket(n, MIN_BUCKET, limit)` in Python.
    """
    size = tf.convert_to_tensor(size, tf.int32)
    candidates = tf.constant(
        [minimum * 2**i for i in range(_POWERS) if minimum * 2**i < 2**31],
        tf.int32,
    )
    best = tf.reduce_min(tf.where(candidates >= size, candidates, 2**31 - 1))
    if limit is not None:
        best = tf.minimum(best, limit)
    return tf.maximum(best, size)


def xla_decoding(model, config, *, eos_id, pad_id, start_id=None):
    """`(token_ids, padding_mask) -> new ids`, for a traced graph: pads to
    buckets, runs `decode` in a `tf.function(jit_compile=True)` and drops
    the padded rows.

    Args: as `decode` (`token_ids` right-padded for seq2seq, left-padded for
        decoder-only models); `padding_mask` int `(B, S)`.

    Returns:
        A function of int `(B, S)` `token_ids` and `padding_mask` returning
        int32 `(B, max_new_tokens)`.
    """
    left = model.input_format.left_padded
    limit = prompt_limit(model, config)

    def run(token_ids, padding_mask):
        return decode(
            model,
            token_ids,
            padding_mask,
            config,
            eos_id=eos_id,
            pad_id=pad_id,
            start_id=start_id,
        )

    compiled = tf.function(run, jit_compile=True, autograph=False)

    def padded(token_ids, padding_mask):
        token_ids = tf.cast(token_ids, tf.int32)
        padding_mask = tf.cast(padding_mask, tf.int32)
        batch_size = tf.shape(token_ids)[0]
        length = tf.shape(token_ids)[1]
        # Rows: copies of row 0 (a pad row when the batch is empty).
        rows = tf.range(bucket(batch_size, 1)) % tf.maximum(batch_size, 1)
        token_ids = tf.gather(
            tf.concat([token_ids, tf.fill([1, length], pad_id)], 0), rows
        )
        padding_mask = tf.gather(
            tf.concat([padding_mask, tf.zeros([1, length], tf.int32)], 0),
            rows,
        )
        extra = bucket(length, MIN_BUCKET, limit) - length
        columns = [[0, 0], [extra, 0] if left else [0, extra]]
        token_ids = tf.pad(token_ids, columns, constant_values=pad_id)
        padding_mask = tf.pad(padding_mask, columns)
        return compiled(token_ids, padding_mask)[:batch_size]

    return padded
