"""Adapters: one decoding interface over the task models of each kind.

An adapter turns a task model's `build_cache` / `call_with_cache` into
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

from keras_llm import kinds


class Adapter:
    """Shared part: the output layer, applied by the search loops."""

    def __init__(self, model):
        self.model = model

    def logits(self, hidden):
        """Float32 logits `(B, V)` of last-position hidden states `(B, D)`."""
        return self.model.logits(hidden[:, None])[:, 0]


class Seq2SeqAdapter(Adapter):
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


class CausalAdapter(Adapter):
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


def adapter_for(model, start_id):
    """The adapter of a seq2seq or decoder-only task model."""
    if model.kind == kinds.SEQ2SEQ:
        return Seq2SeqAdapter(model, start_id)
    if model.kind == kinds.CAUSAL:
        return CausalAdapter(model)
    raise ValueError(
        f"{type(model).__name__} does not generate text; use "
        "`model.fill_mask` for masked language models."
    )
