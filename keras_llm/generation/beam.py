"""Beam search (and beam sampling) in one `tf.while_loop`, step for step
as Hugging Face's `generate` does it (transformers 5)."""

import tensorflow as tf

from keras_llm.generation.sampling import gumbel
from keras_llm.generation.sampling import static_dim
from keras_llm.generation.sampling import warp_logits
from keras_llm.generation.sampling import write_column

# Hugging Face's "minus infinity" for scores that must never win; kept finite
# so that sums and comparisons behave exactly as in its beam search.
_NEG = -1.0e9


def _length_power(length, length_penalty):
    # Hugging Face divides float32 scores by the Python float
    # `length ** length_penalty`: a float64 power rounded to float32.
    power = tf.pow(tf.cast(length, tf.float64), float(length_penalty))
    return tf.cast(power, tf.float32)


def beam_search(adapter, logits, state, config, eos_id, pad_id, seed):
    """Beam search as Hugging Face's `generate` (transformers 5) does it.

    Per prompt, `2 * num_beams` candidates are kept each step; those ending
    in EOS (or at `max_new_tokens`) among the best `num_beams` become
    finished hypotheses scored `sum(log p) / length ** length_penalty`, the
    best `num_beams` of which are kept; the rest continue. A prompt stops
    taking hypotheses when its `num_beams` slots are full and
    `early_stopping is True`, or when no running beam can beat its worst
    finished one (the heuristic `early_stopping` selects). The loop ends
    when every prompt has stopped or `max_new_tokens` are out. With
    `do_sample`, candidates are sampled without replacement from the
    warped scores (beam sampling).

    Returns:
        int32 `(B, max_new_tokens)`: the best finished hypothesis per
        prompt, padded with `pad_id` after its EOS.
    """
    num_beams = config.num_beams
    max_new_tokens = config.max_new_tokens
    length_penalty = config.length_penalty
    early_stopping = config.early_stopping
    num_candidates = 2 * num_beams
    batch_size = static_dim(logits, 0)
    vocabulary_size = static_dim(logits, 1)

    def repeat(tensor):  # (B, ...) -> (B * num_beams, ...), beams adjacent
        return tf.repeat(tensor, num_beams, axis=0)

    logits = repeat(logits)
    state = tf.nest.map_structure(repeat, state)
    is_top_beam = tf.range(num_candidates) < num_beams  # (2K,)

    def select(
        t,
        logits,
        running,
        running_scores,
        finished_ids,
        finished_scores,
        is_finished,
        improvable,
    ):
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        if config.do_sample:
            log_probs = warp_logits(log_probs, config)
        log_probs = (
            tf.reshape(log_probs, [batch_size, num_beams, vocabulary_size])
            + running_scores[:, :, None]
        )
        log_probs = tf.reshape(log_probs, [batch_size, -1])  # (B, K * V)
        if config.do_sample:
            noisy = log_probs + gumbel(
                (batch_size, num_beams * vocabulary_size), seed, t
            )
            picked = tf.math.top_k(noisy, num_candidates).indices
            scores = tf.gather(log_probs, picked, batch_dims=1)
            order = tf.argsort(
                scores, axis=-1, direction="DESCENDING", stable=True
            )
            scores = tf.gather(scores, order, batch_dims=1)
            picked = tf.gather(picked, order, batch_dims=1)
        else:
            scores, picked = tf.math.top_k(log_probs, num_candidates)
        # (B, 2K) each: which beam, which token.
        parent = picked // vocabulary_size
        token = picked % vocabulary_size
        candidates = tf.gather(running, parent, batch_dims=1)  # (B, 2K, N)
        candidates = write_column(candidates, t, token)
        stops = tf.zeros_like(token, tf.bool) | tf.equal(t, max_new_tokens - 1)
        if eos_id is not None:
            stops |= tf.equal(token, eos_id)

        # The best num_beams candidates that did not stop run on.
        running_candidates = scores + tf.cast(stops, tf.float32) * _NEG
        keep = tf.math.top_k(running_candidates, num_beams).indices  # (B, K)
        running = tf.gather(candidates, keep, batch_dims=1)
        running_scores = tf.gather(running_candidates, keep, batch_dims=1)
        parent = tf.gather(parent, keep, batch_dims=1)

        # Those that stopped among the top num_beams may become finished
        # hypotheses, if they beat the ones this prompt already holds.
        just_finished = stops & is_top_beam[None, :]
        hypothesis = scores / _length_power(t + 1, length_penalty)
        if early_stopping is True:
            full = tf.reduce_all(is_finished, axis=-1, keepdims=True)
            hypothesis += tf.cast(full, tf.float32) * _NEG
        hypothesis += tf.cast(~improvable, tf.float32) * _NEG
        hypothesis += tf.cast(~just_finished, tf.float32) * _NEG
        merged_scores = tf.concat([finished_scores, hypothesis], axis=1)
        best = tf.math.top_k(merged_scores, num_beams).indices  # (B, K)
        finished_ids = tf.gather(
            tf.concat([finished_ids, candidates], axis=1), best, batch_dims=1
        )
        finished_scores = tf.gather(merged_scores, best, batch_dims=1)
        is_finished = tf.gather(
            tf.concat([is_finished, just_finished], axis=1), best, batch_dims=1
        )

        # Can a running beam still beat the worst finished hypothesis?
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = max_new_tokens
        else:
            best_length = t + 1
        best_running = running_scores[:, :1] / _length_power(
            best_length, length_penalty
        )
        worst_finished = tf.where(
            is_finished,
            tf.reduce_min(finished_scores, axis=1, keepdims=True),
            _NEG,
        )
        improvable &= tf.reduce_any(
            best_running > worst_finished, axis=-1, keepdims=True
        )
        done = ~tf.reduce_any(improvable) | tf.reduce_all(stops)
        if early_stopping is True:
            done |= tf.reduce_all(is_finished)
        # Flat (B * K,) rows of the beams that run on, to reorder the cache.
        parent += tf.range(batch_size)[:, None] * num_beams
        return (
            tf.reshape(parent, [-1]),
            running,
            running_scores,
            finished_ids,
            finished_scores,
            is_finished,
            improvable,
            done,
        )

    running = tf.fill([batch_size, num_beams, max_new_tokens], pad_id)
    # Only the first beam is live at first, so the beams differ.
    running_scores = tf.tile(
        tf.concat([[0.0], tf.fill([num_beams - 1], _NEG)], 0)[None],
        [batch_size, 1],
    )
    loop_vars = select(
        0,
        logits,
        running,
        running_scores,
        running,
        tf.fill([batch_size, num_beams], _NEG),
        tf.zeros([batch_size, num_beams], tf.bool),
        tf.ones([batch_size, 1], tf.bool),
    )

    def cond(t, state, parent, running, *rest):
        return ~rest[-1]

    def body(
        t,
        state,
        parent,
        running,
        running_scores,
        finished_ids,
        finished_scores,
        is_finished,
        improvable,
        done,
    ):
        cache, constants = state
        cache = tf.gather(cache, parent)  # follow the surviving beams
        tokens = tf.reshape(tf.gather(running, t - 1, axis=2), [-1])
        hidden, state = adapter.step(tokens, t, (cache, constants))
        logits = adapter.logits(hidden)
        outputs = select(
            t,
            logits,
            running,
            running_scores,
            finished_ids,
            finished_scores,
            is_finished,
            improvable,
        )
        return (t + 1, state) + outputs

    outputs = tf.while_loop(
        cond,
        body,
        (tf.constant(1), state) + loop_vars,
        maximum_iterations=max_new_tokens - 1,
    )
    finished_ids = outputs[5]
    return finished_ids[:, 0]
