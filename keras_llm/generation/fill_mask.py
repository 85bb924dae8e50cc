"""Fill-mask for masked language models (BERT)."""

import numpy as np
import tensorflow as tf

from keras_llm import kinds
from keras_llm.generation.driver import DEFAULT_BATCH_SIZE
from keras_llm.generation.driver import as_list
from keras_llm.generation.driver import bucket_length
from keras_llm.generation.driver import detokenize


def fill_mask(
    model,
    input_format,
    texts,
    top_k=5,
    *,
    batch_size=DEFAULT_BATCH_SIZE,
    keep_special_tokens=False,
):
    """Predicts the tokens behind each `[MASK]` (`MaskedLM.fill_mask`).

    Args:
        model: a `MaskedLM` (BERT).
        input_format: its `MaskedFormat` (tokenizer, `sequence_length`).
        texts: list of str (or one str), each with at least one `[MASK]`.
        top_k: int. Candidates per mask.
        batch_size: int. Texts run together.
        keep_special_tokens: bool. In `output`, keep special tokens (an
            [UNK] of the text, a predicted [SEP]) and the tokenizer's raw
            spacing ("a , b"). By default `output` is Hugging Face's
            `decode(ids, skip_special_tokens=True)`.

    Returns:
        One dict per text: `output`, the text with every mask replaced by
        its best candidate (as the tokenizer detokenizes); `candidates`, per
        mask in order, a list of `top_k` dicts `{"token", "token_id",
        "score"}` (softmax probability), best first.

    Raises:
        ValueError: not a masked LM, a text without `[MASK]`, or a bad
            `top_k`.
    """
    if model.kind != kinds.MASKED:
        raise ValueError(
            "fill_mask needs a masked language model (kind 'masked'). "
            f"Received: {type(model).__name__}; use `generate` instead."
        )
    vocabulary_size = model.backbone.vocabulary_size
    if not isinstance(top_k, int) or not 1 <= top_k <= vocabulary_size:
        raise ValueError(
            f"`top_k` must be an int in [1, {vocabulary_size}]. Received: "
            f"top_k={top_k!r}"
        )
    texts = as_list(texts)
    tokenizer = input_format.tokenizer
    limit = input_format.sequence_length
    rows = []
    if texts:
        rows = input_format.prompt_ids(tf.constant(texts)).to_list()
    for i, row in enumerate(rows):
        if tokenizer.mask_id not in row:
            raise ValueError(
                f"Text {i} has no [MASK] to fill (within its first {limit} "
                f"tokens): {texts[i]!r}"
            )
    results = []
    for begin in range(0, len(rows), batch_size):
        chunk = rows[begin : begin + batch_size]
        length = bucket_length(max(map(len, chunk)), limit)
        ragged = tf.ragged.constant(chunk, dtype=tf.int32)
        logits = model(input_format.features(ragged, length), training=False)
        probs = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        scores, best = tf.math.top_k(probs, k=top_k)  # (B, T, k)
        scores, best = scores.numpy(), best.numpy()
        for b, row in enumerate(chunk):
            positions = [
                i for i, id_ in enumerate(row) if id_ == tokenizer.mask_id
            ]
            pieces = detokenize(tokenizer, best[b, positions].reshape(-1, 1))
            filled = np.array(row)
            filled[positions] = best[b, positions, 0]
            candidates = [
                [
                    {
                        "token": pieces[m * top_k + j],
                        "token_id": int(best[b, p, j]),
                        "score": float(scores[b, p, j]),
                    }
                    for j in range(top_k)
                ]
                for m, p in enumerate(positions)
            ]
            output = detokenize(
                tokenizer,
                filled[None, 1:-1],
                skip_special_tokens=not keep_special_tokens,
            )[0]
            results.append({"output": output, "candidates": candidates})
    return results
