"""tf.data pipelines: text → tokens → objective → fixed-length batches.

Every batch is `(features, labels, weights)` with static shapes (XLA), built
by the model's input format (`keras_llm.data.formats`): seq2seq
`encoder_token_ids`, `encoder_padding_mask` `(B, S)`, `decoder_token_ids`,
`decoder_padding_mask` `(B, T)`, labels `(B, T)`; decoder-only
`token_ids`, `padding_mask` `(B, T)`; masked `token_ids`, `padding_mask`,
`segment_ids`; a classifier the masked features with labels and weights
`(B,)`. `weights` is 1.0 where a label counts in the loss. `B` is the
batch of one worker (`global_batch_size / num_workers`).
"""

import dataclasses

import tensorflow as tf

from keras_llm import kinds
from keras_llm.config import objectives_of
from keras_llm.config import span_corruption_lengths
from keras_llm.data import objectives

_TOKENIZE_BATCH = 256


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the pipeline will do, resolved before any tensor."""

    objective: str
    raw_length: int  # tokens per chunk for chunked objectives; 0 for pairs
    pairs: bool = False  # the source gives input/target pairs


def resolve_plan(data, model_config, pairs):
    """Picks the objective for the data at hand.

    The config loader has already checked everything that needs no data
    (the objective fits the model's kind, the lengths); what is left
    depends on whether the source gives pairs or single texts.

    Args:
        data: the `DataConfig`.
        model_config: the model config (its `kind`, `default_objective`).
        pairs: bool. The source gives input/target pairs.

    Raises:
        ValueError: the objective does not fit the data, with the fix.
    """
    objective = data.objective
    if objective == "auto":
        objective = model_config.default_objective
        if pairs and objective not in kinds.EITHER_OBJECTIVES:
            objective = kinds.PAIR_OBJECTIVES[0]
        if objective is None:
            raise ValueError(
                "data.objective: this model trains on pairs; use "
                "data.source: bible or files with data.target_field (or "
                ".tsv files)."
            )
    allowed = objectives_of(model_config)
    if objective not in allowed:
        raise ValueError(
            f"data.objective: {objective!r} does not fit this "
            f"{model_config.kind} model (it needs one of {list(allowed)})."
        )
    if objective in kinds.PAIR_OBJECTIVES and not pairs:
        raise ValueError(
            f"data.objective: {objective!r} needs input/target pairs; this "
            "source gives single texts (set data.target_field, use .tsv "
            "files, or data.source: bible)."
        )
    on_pairs = kinds.PAIR_OBJECTIVES + kinds.EITHER_OBJECTIVES
    if objective not in on_pairs and pairs:
        raise ValueError(
            f"data.objective: {objective!r} needs single texts; this source "
            "gives pairs (use objective seq2seq, or causal_lm for a "
            "decoder-only model)."
        )
    seq = data.sequence_length
    raw = {"causal_lm": seq + 1, "masked_lm": seq - 2}.get(objective, 0)
    if objective == "span_corruption":
        raw, _ = span_corruption_lengths(
            seq, data.noise_density, data.mean_noise_span_length
        )
    if pairs:
        raw = 0  # examples are made pair by pair, not cut from a stream
    return Plan(objective, raw, pairs)


def _chunks(dataset, tokenizer, raw_length):
    """Concatenates the documents' tokens and cuts `(raw_length,)` chunks.

    With the tokenizer's `add_bos` (Llama's), every document starts with
    BOS, as in Llama's pretraining and as prompts start in generation;
    without it the documents' ids run on as before.
    """
    add_bos = getattr(tokenizer, "add_bos", False)

    def ids(texts):
        ids = tokenizer.tokenize(texts)
        if add_bos:
            bos = tf.fill(
                [ids.nrows(), 1], tf.cast(tokenizer.bos_id, ids.dtype)
            )
            ids = tf.concat([tf.RaggedTensor.from_tensor(bos), ids], axis=1)
        return ids.flat_values

    tokens = dataset.map(lambda e: e["text"]).batch(_TOKENIZE_BATCH)
    tokens = tokens.map(ids)
    return tokens.unbatch().batch(raw_length, drop_remainder=True)


def _one(function, *ids):
    """Runs a format's batch function on one example's id vectors."""
    rows = [tf.RaggedTensor.from_tensor(x[tf.newaxis]) for x in ids]
    return tf.nest.map_structure(lambda t: t[0], function(*rows))


def _first(batch):
    """The one example of a batch of one."""
    return tf.nest.map_structure(lambda t: t[0], batch)


def _examples(dataset, plan, input_format, data, seed):
    """Text elements → (features, labels, weights) examples."""
    tokenizer = input_format.tokenizer
    if plan.objective == "seq2seq":
        prefix = input_format.task_prefix

        def pair(element):
            inputs = tokenizer.tokenize(
                tf.strings.join([prefix, element["inputs"]])
            )
            targets = tokenizer.tokenize(element["targets"])
            return _one(input_format.examples, inputs, targets)

        return dataset.map(
            pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    if plan.objective == "classification":

        def labelled(element):
            # The format's own tokenize and label ids, as prediction uses.
            return _first(
                input_format.pair_examples(
                    element["inputs"][tf.newaxis],
                    element["targets"][tf.newaxis],
                    static=True,
                )
            )

        return dataset.map(
            labelled, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    if plan.objective == "causal_lm" and plan.pairs:

        def prompt_completion(element):
            # The prompt as generation builds it (`prompt_ids`), then the
            # completion and EOS.
            return _first(
                input_format.training_pair_examples(
                    element["inputs"][tf.newaxis],
                    element["targets"][tf.newaxis],
                    loss_on_prompt=data.loss_on_prompt,
                )
            )

        return dataset.map(
            prompt_completion,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    chunks = _chunks(dataset, tokenizer, plan.raw_length).enumerate()

    def example(index, chunk):
        example_seed = tf.stack([tf.cast(seed, tf.int64), index])
        if plan.objective == "span_corruption":
            inputs, targets = objectives.span_corruption(
                chunk,
                example_seed,
                tokenizer.sentinel_id(0),
                data.noise_density,
                data.mean_noise_span_length,
            )
            return _one(input_format.examples, inputs, targets)
        if plan.objective == "causal_lm":
            return _one(input_format.examples, chunk)
        # masked_lm: [CLS] chunk [SEP], then BERT's masking
        length = input_format.sequence_length
        ids = tf.reshape(_one(input_format.input_ids, chunk), [length])
        special = tf.concat([[True], tf.zeros_like(chunk, tf.bool), [True]], 0)
        masked, labels, weights = objectives.mask_tokens(
            ids,
            example_seed,
            tokenizer.mask_id,
            tokenizer.vocabulary_size,
            special,
        )
        features = _one(lambda x: input_format.features(x, length), masked)
        return features, labels, weights

    return chunks.map(
        example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


def build_datasets(
    data,
    input_format,
    plan,
    *,
    batch_size,
    seed,
    splits,
    eval_batch_size=None,
    num_workers=1,
    worker_index=0,
):
    """Train (repeating, shuffled) and validation datasets of one worker.

    Args:
        data: the `DataConfig`.
        input_format: the model's `InputFormat`, with the run's tokenizer.
        plan: the `Plan` from `resolve_plan`.
        batch_size: int. Examples per batch of this worker (the global
            batch divided by the number of workers).
        eval_batch_size: int. Examples per validation batch (the last may
            be smaller, so a small split still gives one); defaults to
            `batch_size`.
        seed: int. Shuffling and the objectives' randomness.
        splits: `(train, validation)` text datasets from
            `sources.load_splits(data)`.
        num_workers, worker_index: this worker's shard of the training text.

    Returns:
        `(train, validation)`: training batches of `batch_size` examples
        (`drop_remainder`), validation batches of `eval_batch_size`.
    """
    train_text, validation_text = splits
    train_text = train_text.shard(num_workers, worker_index)
    train_text = train_text.shuffle(
        data.shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True
    ).repeat()
    train = _examples(train_text, plan, input_format, data, seed)
    train = train.batch(batch_size, drop_remainder=True).prefetch(2)
    validation = _examples(validation_text, plan, input_format, data, seed + 1)
    validation = validation.batch(eval_batch_size or batch_size)
    return train, validation
