"""Sequence lengths the objectives need, in pure Python (no TensorFlow).

`span_corruption_lengths` is also in `keras_llm.data.objectives` (the
pipeline's copy); the two must agree until data/ imports this one.
"""


def span_corruption_lengths(
    inputs_length, noise_density=0.15, mean_noise_span_length=3.0
):
    """Raw token count and target length that fill `inputs_length` exactly.

    Port of T5's `random_spans_helper` (one sentinel per span in inputs and
    targets, one EOS each). For T5's 512 inputs: 568 raw tokens, 114 targets.

    Returns:
        `(tokens_length, targets_length)`.
    """

    def lengths(tokens_length):
        num_noise = int(round(tokens_length * noise_density))
        num_spans = int(round(num_noise / mean_noise_span_length))
        return (
            tokens_length - num_noise + num_spans + 1,
            num_noise + num_spans + 1,
        )

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    return tokens_length, lengths(tokens_length)[1]
