"""One decoding interface over the task models, and prompt padding.

A decoder turns a task model's `build_cache` / `call_with_cache` into
graph functions the search loops call:

- `prefill(token_ids, padding_mask, max_new_tokens)` runs the prompt (the
  encoder, or the whole decoder-only prompt) and returns the hidden state
  `(B, D)` that predicts the first new token, and a state
  `(cache, constants)`;
- `step(tokens, t, state)` feeds the newest tokens `(B,)` (generated token
  `t - 1`) and returns the hidden state `(B, D)` that predicts token `t`
  and the new state;
- `logits(hidden)` applies the output layer: `(B, D)` → float32 `(B, V)`.

`cache` is the one part of the state that beam search reorders; the
`constants` (encoder keys/values, masks) are equal for every beam of a
prompt. Everything here is TF graph code without Python branches on tensor
values, so it traces with autograph off and compiles with XLA.
"""

import tensorflow as tf

SEQ2SEQ = "seq2seq"  # T5, Transformer: encoder input right-padded
CAUSAL = "causal"  # GPT-2: prompt left-padded
MASKED = "masked"  # BERT: fill-mask, no decoding


def model_kind(model):
    """`SEQ2SEQ`, `CAUSAL` or `MASKED`, from the task model's input keys.

    Raises:
        ValueError: the model is not a keras_llm task model.
    """
    inputs = getattr(model, "input", None)
    names = set(inputs) if isinstance(inputs, dict) else set()
    if "encoder_token_ids" in names:
        return SEQ2SEQ
    if "segment_ids" in names:
        return MASKED
    if "token_ids" in names and hasattr(model, "call_with_cache"):
        return CAUSAL
    raise ValueError(
        "Expected a keras_llm task model (T5Seq2SeqLM, TransformerSeq2SeqLM, "
        f"GPT2CausalLM or BertMaskedLM). Received: {type(model).__name__}"
    )


def pad_prompts(token_ids, pad_id, left=False, length=None):
    """Pads ragged prompts into a dense batch and its padding mask.

    Args:
        token_ids: int `tf.RaggedTensor` `(B, None)`.
        pad_id: int.
        left: bool. Pad on the left (decoder-only prompts, so every row's
            last token sits in the last column) instead of the right.
        length: int or `None`. Columns of the result; `None` is the longest
            row. Rows longer than `length` are cut (on the left when `left`,
            keeping the end of the prompt).

    Returns:
        `(token_ids, padding_mask)`, int32 `(B, length)` each.
    """
    token_ids = tf.cast(token_ids, tf.int32)
    if left:
        token_ids = tf.reverse(token_ids, axis=[1])
    shape = [None, length]
    dense = token_ids.to_tensor(default_value=pad_id, shape=shape)
    mask = tf.ones_like(token_ids).to_tensor(default_value=0, shape=shape)
    if left:
        dense, mask = tf.reverse(dense, [1]), tf.reverse(mask, [1])
    return dense, mask


class Decoder:
    """Shared part: the output layer, applied by the search loops."""

    def __init__(self, model):
        self.model = model

    def logits(self, hidden):
        """Float32 logits `(B, V)` of last-position hidden states `(B, D)`."""
        model = self.model
        return model._logits_of(model.backbone, hidden[:, None])[:, 0]


class Seq2SeqDecoder(Decoder):
    """T5 / Transformer: run the encoder once, then decode from `start_id`."""

    def __init__(self, model, start_id):
        super().__init__(model)
        self.start_id = start_id

    def prefill(self, token_ids, padding_mask, max_new_tokens):
        model = self.model
        # Position t of the decoder holds generated token t - 1 (0 holds the
        # start id); the last token is never fed back: max_new_tokens slots.
        _, cache, cross = model.build_cache(
            token_ids, padding_mask, max_new_tokens
        )
        start = tf.fill([tf.shape(token_ids)[0], 1], self.start_id)
        _, hidden, cache = model.call_with_cache(
            start, cache, 0, cross, padding_mask
        )
        return hidden[:, -1], (cache, (cross, padding_mask))

    def step(self, tokens, t, state):
        cache, (cross, padding_mask) = state
        _, hidden, cache = self.model.call_with_cache(
            tokens[:, None], cache, t, cross, padding_mask
        )
        return hidden[:, -1], (cache, (cross, padding_mask))


class CausalDecoder(Decoder):
    """GPT-2: run the left-padded prompt, then one token per step.

    Positions count real tokens only (`cumsum(mask) - 1`, as Hugging Face
    derives them from the attention mask), so a left-padded prompt decodes
    exactly as it would alone.
    """

    def prefill(self, token_ids, padding_mask, max_new_tokens):
        model = self.model
        batch_size = tf.shape(token_ids)[0]
        prompt_length = tf.shape(token_ids)[1]
        padding_mask = tf.cast(padding_mask, tf.int32)
        # Prompt slots 0 .. P-1, generated token t (fed back) at P + t.
        cache_length = prompt_length + max_new_tokens - 1
        cache = model.build_cache(token_ids, cache_length)
        slot_mask = tf.concat(
            [padding_mask, tf.ones([batch_size, max_new_tokens - 1], tf.int32)],
            axis=1,
        )  # (B, L)
        offset = prompt_length - tf.reduce_sum(padding_mask, axis=1)  # (B,)
        _, hidden, cache = model.call_with_cache(
            token_ids, cache, 0, padding_mask=slot_mask, position_offset=offset
        )
        # Batch-major, like every state tensor (beam search repeats them).
        prompt_lengths = tf.fill([batch_size], prompt_length)  # (B,)
        constants = (slot_mask, offset, prompt_lengths)
        return hidden[:, -1], (cache, constants)

    def step(self, tokens, t, state):
        cache, constants = state
        slot_mask, offset, prompt_lengths = constants
        _, hidden, cache = self.model.call_with_cache(
            tokens[:, None],
            cache,
            prompt_lengths[0] + t - 1,
            padding_mask=slot_mask,
            position_offset=offset,
        )
        return hidden[:, -1], (cache, constants)


class TwoRowDecoder:
    """Runs a one-prompt batch as two copies of it; the output layer sees
    one row.

    An XLA-on-CPU workaround: XLA fuses a one-row (matrix-vector) product
    with the reshape of a `(D, H, K)` attention kernel into a loop that
    reads the kernel column by column, 3-4x slower than the two-row matrix
    product (which moves the same bytes). The `(V, D)` output layer is the
    other way round: its one-row product is the fast one. Only for a static
    batch of 1 and a search that never reorders rows (not beam search).
    """

    def __init__(self, decoder):
        self.decoder = decoder
        self.logits = decoder.logits

    def prefill(self, token_ids, padding_mask, max_new_tokens):
        double = lambda x: tf.concat([x, x], axis=0)  # noqa: E731
        hidden, state = self.decoder.prefill(
            double(token_ids), double(padding_mask), max_new_tokens
        )
        return hidden[:1], state

    def step(self, tokens, t, state):
        hidden, state = self.decoder.step(
            tf.concat([tokens, tokens], 0), t, state
        )
        return hidden[:1], state


def decoder_for(model, start_id):
    """The decoder of a seq2seq or decoder-only task model."""
    kind = model_kind(model)
    if kind == SEQ2SEQ:
        return Seq2SeqDecoder(model, start_id)
    if kind == CAUSAL:
        return CausalDecoder(model)
    raise ValueError(
        f"{type(model).__name__} does not generate text; use "
        "`keras_llm.generation.fill_mask` for masked language models."
    )
