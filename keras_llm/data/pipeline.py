"""tf.data pipelines: text → tokens → objective → fixed-length batches.

Every batch is `(features, labels, weights)` with static shapes (XLA):
- seq2seq archs (`t5`, `transformer`): features `encoder_token_ids`,
  `encoder_padding_mask` `(B, S)`, `decoder_token_ids`,
  `decoder_padding_mask` `(B, T)`; labels `(B, T)`;
- causal archs (`gpt2`): `token_ids`, `padding_mask` `(B, T)`;
- masked archs (`bert`): `token_ids`, `padding_mask`, `segment_ids`.
`weights` is 1.0 where a label counts in the loss. `B` is the batch of one
worker (`global_batch_size / num_workers`).
"""

import dataclasses

import tensorflow as tf

from keras_llm.data import objectives
from keras_llm.data import sources

SEQ2SEQ_ARCHS = ("t5", "transformer")
CAUSAL_ARCHS = ("gpt2",)
MASKED_ARCHS = ("bert",)
_TOKENIZE_BATCH = 256


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the pipeline will do, resolved and checked before any tensor."""

    objective: str
    sequence_length: int
    target_sequence_length: int
    raw_length: int  # tokens per chunk for chunked objectives
    task_prefix: str = ""
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0


def resolve_plan(cfg, pairs):
    """Picks the objective and lengths; raises ValueError with the fix."""
    from keras_llm import config as config_lib

    arch = config_lib.arch_of(cfg.model)
    data = cfg.data
    objective = data.objective
    if objective == "auto":
        if pairs:
            objective = "seq2seq"
        else:
            objective = {
                "t5": "span_corruption",
                "gpt2": "causal_lm",
                "bert": "masked_lm",
            }.get(arch)
            if objective is None:
                raise ValueError(
                    f"data.objective: arch {arch!r} trains on pairs; use "
                    "data.source: bible or files with data.target_field (or "
                    ".tsv files)."
                )
    allowed = {
        "span_corruption": SEQ2SEQ_ARCHS,
        "seq2seq": SEQ2SEQ_ARCHS,
        "causal_lm": CAUSAL_ARCHS,
        "masked_lm": MASKED_ARCHS,
    }[objective]
    if arch not in allowed:
        raise ValueError(
            f"data.objective: {objective!r} does not fit arch {arch!r} "
            f"(it needs one of {list(allowed)})."
        )
    if objective == "seq2seq" and not pairs:
        raise ValueError(
            "data.objective: 'seq2seq' needs input/target pairs; this source "
            "gives single texts (set data.target_field, use .tsv files, or "
            "data.source: bible)."
        )
    if objective != "seq2seq" and pairs:
        raise ValueError(
            f"data.objective: {objective!r} needs single texts; this source "
            "gives pairs (use objective seq2seq)."
        )
    max_length = getattr(cfg.model, "max_sequence_length", None)
    if max_length is not None and data.sequence_length > max_length:
        raise ValueError(
            f"data.sequence_length: {data.sequence_length} is longer than the "
            f"model holds (model.max_sequence_length={max_length})."
        )
    seq, target = data.sequence_length, data.target_sequence_length
    raw = {"causal_lm": seq + 1, "masked_lm": seq - 2, "seq2seq": 0}.get(
        objective, 0
    )
    if objective == "span_corruption":
        raw, needed = objectives.span_corruption_lengths(
            seq, data.noise_density, data.mean_noise_span_length
        )
        if target < needed:
            raise ValueError(
                f"data.target_sequence_length: span corruption of "
                f"{seq} input tokens needs {needed} target tokens. Received: "
                f"{target} (set data.target_sequence_length: {needed})."
            )
    if raw < 0 or seq < 4:
        raise ValueError(
            f"data.sequence_length: too short for {objective}. Received: {seq}"
        )
    return Plan(
        objective,
        seq,
        target,
        raw,
        data.task_prefix,
        data.noise_density,
        data.mean_noise_span_length,
    )


def _pad(ids, length, pad_id):
    ids = ids[:length]
    ids = tf.pad(ids, [[0, length - tf.shape(ids)[0]]], constant_values=pad_id)
    ids.set_shape([length])
    return ids


def _mask_of(length, real):
    return tf.cast(tf.range(length) < real, tf.int32)


def _chunks(dataset, tokenizer, raw_length):
    """Concatenates the documents' tokens and cuts `(raw_length,)` chunks."""
    tokens = dataset.map(lambda e: e["text"]).batch(_TOKENIZE_BATCH)
    tokens = tokens.map(lambda texts: tokenizer.tokenize(texts).flat_values)
    return tokens.unbatch().batch(raw_length, drop_remainder=True)


def _seq2seq_features(inputs, targets, plan, tokenizer):
    eos, pad = tokenizer.eos_id, tokenizer.pad_id
    seq, tgt = plan.sequence_length, plan.target_sequence_length
    inputs = tf.concat([inputs[: seq - 1], [eos]], 0)
    targets = tf.concat([targets[: tgt - 1], [eos]], 0)
    num_targets = tf.shape(targets)[0]
    # Teacher forcing: the decoder sees [start] + targets[:-1]; T5 starts
    # with the pad id.
    decoder_ids = tf.concat([[pad], targets[:-1]], 0)
    labels = _pad(targets, tgt, pad)
    features = {
        "encoder_token_ids": _pad(inputs, seq, pad),
        "encoder_padding_mask": _mask_of(seq, tf.shape(inputs)[0]),
        "decoder_token_ids": _pad(decoder_ids, tgt, pad),
        "decoder_padding_mask": _mask_of(tgt, num_targets),
    }
    weights = tf.cast(_mask_of(tgt, num_targets), tf.float32)
    return features, labels, weights


def _examples(dataset, plan, tokenizer, seed):
    """Text elements → (features, labels, weights) examples."""
    if plan.objective == "seq2seq":
        prefix = plan.task_prefix

        def pair(element):
            inputs = tokenizer.tokenize(
                tf.strings.join([prefix, element["inputs"]])
            )
            targets = tokenizer.tokenize(element["targets"])
            return _seq2seq_features(inputs, targets, plan, tokenizer)

        return dataset.map(
            pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    chunks = _chunks(dataset, tokenizer, plan.raw_length).enumerate()

    def example(index, chunk):
        example_seed = tf.stack([tf.cast(seed, tf.int64), index])
        if plan.objective == "span_corruption":
            inputs, targets = objectives.span_corruption(
                chunk,
                example_seed,
                tokenizer.sentinel_id(0),
                plan.noise_density,
                plan.mean_noise_span_length,
            )
            return _seq2seq_features(inputs, targets, plan, tokenizer)
        if plan.objective == "causal_lm":
            length = plan.sequence_length
            features = {
                "token_ids": chunk[:-1],
                "padding_mask": tf.ones([length], tf.int32),
            }
            return features, chunk[1:], tf.ones([length], tf.float32)
        # masked_lm: [CLS] chunk [SEP]
        ids = tf.concat([[tokenizer.cls_id], chunk, [tokenizer.sep_id]], 0)
        special = tf.concat([[True], tf.zeros_like(chunk, tf.bool), [True]], 0)
        masked, labels, weights = objectives.mask_tokens(
            ids,
            example_seed,
            tokenizer.mask_id,
            tokenizer.vocabulary_size,
            special,
        )
        length = plan.sequence_length
        features = {
            "token_ids": masked,
            "padding_mask": tf.ones([length], tf.int32),
            "segment_ids": tf.zeros([length], tf.int32),
        }
        return features, labels, weights

    return chunks.map(
        example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


def build_datasets(cfg, tokenizer, num_workers=1, worker_index=0, splits=None):
    """Train (repeating, shuffled) and validation datasets of one worker.

    Args:
        splits: `(train, validation)` text datasets already loaded with
            `sources.load_splits(cfg.data)`; `None` loads them.

    Returns:
        `(train, validation, plan)`; both datasets batch
        `global_batch_size // num_workers` examples with `drop_remainder`.
    """
    train_text, validation_text = splits or sources.load_splits(cfg.data)
    pairs = "inputs" in train_text.element_spec
    plan = resolve_plan(cfg, pairs)
    batch_size = cfg.train.global_batch_size // num_workers
    seed = cfg.train.seed
    train_text = train_text.shard(num_workers, worker_index)
    train_text = train_text.shuffle(
        cfg.data.shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True
    ).repeat()
    train = _examples(train_text, plan, tokenizer, seed)
    train = train.batch(batch_size, drop_remainder=True).prefetch(2)
    validation = _examples(validation_text, plan, tokenizer, seed + 1)
    validation = validation.batch(batch_size, drop_remainder=True)
    return train, validation, plan
