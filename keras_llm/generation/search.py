"""`decode`: the decode loop in pure TF; greedy search and sampling here,
beam search in `beam.py`.

Each loop is one `tf.while_loop` over fixed-size tensors, with no Python
branch on a tensor value, so it traces with autograph off (as
`keras.export.ExportArchive.add_endpoint` traces) and compiles whole with
XLA. Python branches read only the `GenerationConfig`, fixed at trace time.

The prompt's own pass gives the logits of token 0; the loop body feeds the
newest token back and picks the next, so no model step is wasted after the
last token.
"""

import tensorflow as tf

from keras_llm.generation.adapters import adapter_for
from keras_llm.generation.beam import beam_search
from keras_llm.generation.sampling import gumbel
from keras_llm.generation.sampling import static_dim
from keras_llm.generation.sampling import warp_logits
from keras_llm.generation.sampling import write_column


def decode(
    model,
    token_ids,
    padding_mask,
    config,
    *,
    eos_id,
    pad_id,
    start_id=None,
    seed=None,
):
    """Generates `config.max_new_tokens` ids per prompt, in the TF graph.

    Callable eagerly, inside `tf.function` (with or without
    `jit_compile=True`) and inside `ExportArchive.add_endpoint`.

    Args:
        model: a `Seq2SeqLM` or `CausalLM` task model.
        token_ids: int32 `(B, S)`. Seq2seq: the encoder input, right-padded.
            Decoder-only: the prompt, left-padded (see
            `InputFormat.pad_prompts`); every row needs at least one token.
        padding_mask: int `(B, S)`, 1 for real tokens.
        config: `GenerationConfig`.
        eos_id: int or `None`. A row stops after this id; `None` never stops.
        pad_id: int. Fills each row after its EOS.
        start_id: int. Seq2seq: the decoder's first input. Defaults to
            `pad_id` (T5's convention, and our training pipeline's).
        seed: int `(2,)` tensor for sampling (ignored otherwise); `None`:
            `[config.seed, 0]`, or a random one if `config.seed` is `None`
            too.

    Returns:
        int32 `(B, max_new_tokens)`: the new tokens only, EOS included, then
        `pad_id`.
    """
    adapter = adapter_for(model, pad_id if start_id is None else start_id)
    token_ids = tf.convert_to_tensor(token_ids, tf.int32)
    padding_mask = tf.convert_to_tensor(padding_mask, tf.int32)
    if not config.do_sample:
        seed = None  # unused: no RNG op in the graph
    elif seed is None and config.seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    elif seed is None:
        seed = tf.constant([config.seed, 0], tf.int32)
    else:
        seed = tf.cast(seed, tf.int32)
    hidden, state = adapter.prefill(
        token_ids, padding_mask, config.max_new_tokens
    )
    logits = adapter.logits(hidden)
    search = beam_search if config.num_beams > 1 else greedy_search
    return search(adapter, logits, state, config, eos_id, pad_id, seed)


def greedy_search(adapter, logits, state, config, eos_id, pad_id, seed):
    """Greedy decoding (or sampling when `config.do_sample`).

    Rows stop at EOS and are padded after it; the loop ends when every row
    has stopped or `max_new_tokens` are out.
    """
    max_new_tokens = config.max_new_tokens
    batch_size = static_dim(logits, 0)

    def choose(logits, t, finished):
        logits = tf.cast(logits, tf.float32)
        if config.do_sample:
            scores = warp_logits(logits, config)
            scores += gumbel((batch_size, static_dim(scores, 1)), seed, t)
        else:
            scores = logits
        token = tf.argmax(scores, axis=-1, output_type=tf.int32)  # (B,)
        return tf.where(finished, pad_id, token)

    def is_eos(token):
        if eos_id is None:
            return tf.zeros_like(token, tf.bool)
        return tf.equal(token, eos_id)

    def advance(t, token, output, finished):
        output = write_column(output, t, token)
        return output, finished | is_eos(token)

    output = tf.fill([batch_size, max_new_tokens], pad_id)
    finished = tf.zeros([batch_size], tf.bool)
    token = choose(logits, 0, finished)
    output, finished = advance(0, token, output, finished)

    def cond(t, token, output, finished, state):
        return (t < max_new_tokens) & ~tf.reduce_all(finished)

    def body(t, token, output, finished, state):
        hidden, state = adapter.step(token, t, state)
        logits = adapter.logits(hidden)
        token = choose(logits, t, finished)
        output, finished = advance(t, token, output, finished)
        return t + 1, token, output, finished, state

    _, _, output, _, _ = tf.while_loop(
        cond,
        body,
        (tf.constant(1), token, output, finished, state),
        maximum_iterations=max_new_tokens - 1,
    )
    return output
