"""Pure mask functions. A mask is boolean; `True` means "may attend".

Shapes: `B` batch, `T` query length, `S` key length.
"""

from keras import ops


def causal_mask(query_length, key_length, start_index=0):
    """Boolean `(T, S)` mask: query `i` sees keys `0 .. start_index + i`.

    Args:
        query_length: int or scalar tensor. `T`.
        key_length: int or scalar tensor. `S`.
        start_index: int or scalar tensor. Absolute position of the first
            query, e.g. the cache index during decoding. Defaults to `0`.
    """
    query_positions = ops.arange(query_length) + start_index  # (T,)
    key_positions = ops.arange(key_length)  # (S,)
    return ops.expand_dims(query_positions, -1) >= ops.expand_dims(
        key_positions, 0
    )  # (T, S)


def padding_to_attention_mask(padding_mask):
    """`(B, S)` key padding mask (1 = real token) → boolean `(B, 1, S)`."""
    return ops.expand_dims(ops.cast(padding_mask, "bool"), 1)


def merge_masks(*masks):
    """Logical AND of broadcastable boolean masks; `None`s are skipped."""
    merged = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        merged = mask if merged is None else ops.logical_and(merged, mask)
    return merged
