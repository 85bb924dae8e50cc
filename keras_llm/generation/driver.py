"""The host side of generation: batching, bucketing and the compiled
decode functions; token ids in and out (`generate_ids`), texts in and out
(`generate`, what `Task.generate` calls).

`generate_ids` pads each batch of prompts to a bucketed length (powers of
two from 16, capped by the model's limit) and runs one `tf.function` per
model and decoding setup, XLA-compiled by default: a new prompt length in
the same bucket reuses the compiled program.
"""

import contextlib
import dataclasses
import logging
import weakref

import numpy as np
import tensorflow as tf

from keras_llm import kinds
from keras_llm.data import formats
from keras_llm.generation.adapters import adapter_for
from keras_llm.generation.config import GenerationConfig
from keras_llm.generation.config import max_new_tokens_problem
from keras_llm.generation.search import decode

logger = logging.getLogger(__name__)

MIN_BUCKET = 16
DEFAULT_BATCH_SIZE = 32

# model -> {(config, eos_id, pad_id, start_id, jit_compile): tf.function}
_FUNCTIONS = weakref.WeakKeyDictionary()


def bucket_length(length, limit=None):
    """The padded prompt length for a longest prompt of `length` tokens:
    the next power of two, at least `MIN_BUCKET`, at most `limit`."""
    bucket = MIN_BUCKET
    while bucket < length:
        bucket *= 2
    if limit is not None:
        bucket = max(min(bucket, limit), length)
    return bucket


def decoding_function(
    model, config, *, eos_id, pad_id, start_id=None, jit_compile=True
):
    """The cached `tf.function(token_ids, padding_mask, seed)` that runs
    `keras_llm.generation.decode` for this model and setup.

    One function per (model, config less its seed, ids, `jit_compile`); it
    traces (and compiles) once per input shape, so bucket the prompts.
    """
    key = (
        dataclasses.replace(config, seed=None),
        eos_id,
        pad_id,
        start_id,
        bool(jit_compile),
    )
    functions = _FUNCTIONS.setdefault(model, {})
    if key not in functions:
        # A weak reference: the cache must not keep the model alive.
        model_ref = weakref.ref(model)

        def run(token_ids, padding_mask, seed):
            return decode(
                model_ref(),
                token_ids,
                padding_mask,
                config,
                eos_id=eos_id,
                pad_id=pad_id,
                start_id=start_id,
                seed=seed,
            )

        functions[key] = tf.function(
            run, jit_compile=bool(jit_compile), autograph=False
        )
    return functions[key]


def _rows(token_ids):
    """Prompts as a list of int32 numpy vectors."""
    if isinstance(token_ids, tf.RaggedTensor):
        token_ids = token_ids.to_list()
    elif isinstance(token_ids, (tf.Tensor, np.ndarray)):
        token_ids = np.asarray(token_ids)
        if token_ids.ndim != 2:
            raise ValueError(
                "`token_ids` must be 2-D (B, T), ragged or a list of lists. "
                f"Received: shape={token_ids.shape}"
            )
    return [np.asarray(row, dtype=np.int32).reshape(-1) for row in token_ids]


def _check_max_new_tokens(model, config):
    problem = max_new_tokens_problem(
        config.max_new_tokens, model.kind, model.max_positions
    )
    if problem:
        raise ValueError(f"Invalid `max_new_tokens`: {problem}.")


def prompt_limit(model, config):
    """The longest decoder-only prompt `config` leaves room for (the
    position table's end), or `None` when nothing limits it."""
    if model.kind != kinds.CAUSAL or model.max_positions is None:
        return None  # relative (T5) or sinusoidal positions: no table end
    return model.max_positions - config.max_new_tokens + 1


def generate_ids(
    model,
    token_ids,
    config=None,
    *,
    eos_id,
    pad_id,
    start_id=None,
    jit_compile=True,
    batch_size=DEFAULT_BATCH_SIZE,
    bucket=True,
):
    """Generates new token ids for a batch of prompts.

    Args:
        model: a `Seq2SeqLM` or `CausalLM` task model.
        token_ids: the prompts: a list of id lists, an int
            `tf.RaggedTensor` `(B, None)` or a dense `(B, T)` array (every
            row taken whole). Seq2seq: the encoder input, EOS included if
            the model was trained with it. Decoder-only: the prompt, at
            least one id per row.
        config: `GenerationConfig`. Defaults to greedy, 32 tokens.
        eos_id: int or `None`. A row stops after this id.
        pad_id: int. Pads the prompts and fills each row after its EOS.
        start_id: int. Seq2seq decoder start; defaults to `pad_id`.
        jit_compile: bool. Compile the whole decode loop with XLA.
        batch_size: int. Prompts decoded together.
        bucket: bool. Pad prompt lengths to powers of two (from 16), so
            lengths in one bucket share a compiled program.

    Returns:
        int32 numpy `(B, max_new_tokens)`: the new tokens only (EOS
        included), then `pad_id`.

    Raises:
        ValueError: a masked LM, a bad `token_ids`, an empty decoder-only
            prompt, a prompt too long for the model's position table, or
            more new tokens than the model can hold (see
            `keras_llm.generation.config.max_new_tokens_problem`).
    """
    config = GenerationConfig() if config is None else config
    adapter_for(model, pad_id)  # rejects masked LMs
    _check_max_new_tokens(model, config)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: {batch_size}")
    rows = _rows(token_ids)
    limit = prompt_limit(model, config)
    for i, row in enumerate(rows):
        if model.kind == kinds.CAUSAL and not len(row):
            raise ValueError(
                f"Prompt {i} is empty: a decoder-only model needs at least "
                "one token to start from (e.g. the BOS id)."
            )
        if limit is not None and len(row) > limit:
            raise ValueError(
                f"Prompt {i} has {len(row)} tokens: with "
                f"max_new_tokens={config.max_new_tokens} the model's "
                f"{model.max_positions} positions allow at "
                f"most {limit}."
            )
    function = decoding_function(
        model,
        config,
        eos_id=eos_id,
        pad_id=pad_id,
        start_id=start_id,
        jit_compile=jit_compile,
    )
    seed = config.seed
    if seed is None and config.do_sample:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    outputs = []
    for index, begin in enumerate(range(0, len(rows), batch_size)):
        chunk = rows[begin : begin + batch_size]
        longest = max(len(row) for row in chunk)
        length = bucket_length(longest, limit) if bucket else max(longest, 1)
        ragged = tf.RaggedTensor.from_row_lengths(
            np.concatenate(chunk).astype(np.int32),
            [len(row) for row in chunk],
        )
        ids, mask = formats.pad(
            ragged, pad_id, length, left=model.input_format.left_padded
        )
        chunk_seed = tf.constant([seed or 0, index], tf.int32)
        outputs.append(function(ids, mask, chunk_seed).numpy())
    if not outputs:
        return np.zeros([0, config.max_new_tokens], np.int32)
    return np.concatenate(outputs)


def _strip_after_eos(ids, eos_id, pad_id):
    """EOS and everything after it become `pad_id` (so text ends there)."""
    if eos_id is None:
        return ids
    after = np.cumsum(ids == eos_id, axis=1) > 0
    return np.where(after, pad_id, ids)


def detokenize(tokenizer, ids, skip_special_tokens=False):
    """Python strings of int ids `(B, T)` (pads dropped; with
    `skip_special_tokens`, as Hugging Face's `batch_decode(ids,
    skip_special_tokens=True)`: see `Tokenizer.detokenize`)."""
    texts = tokenizer.detokenize(
        tf.constant(ids, tf.int32), skip_special_tokens=skip_special_tokens
    ).numpy()
    return [text.decode("utf-8", errors="replace") for text in texts]


def as_list(texts):
    """A list of texts from a list or one str."""
    return [texts] if isinstance(texts, str) else list(texts)


@contextlib.contextmanager
def quiet_cut_warnings():
    """Silences `warn_if_cut`'s warnings for the block (callers that said
    it once for all their prompts)."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def warn_if_cut(input_format, texts, max_new_tokens):
    """Logs one warning when the format will cut some of `texts`.

    The input format keeps a seq2seq input's start (`sequence_length - 1`
    ids, then EOS) and a decoder-only prompt's end (`prompt_limit`); this
    counts the prompts that lose ids, so a long prompt is not cut silently.

    Returns:
        The number of prompts cut.
    """
    if input_format.kind == kinds.SEQ2SEQ:
        texts = tf.strings.join([input_format.task_prefix, texts])
        limit, shown, kept = (
            input_format.sequence_length - 1,  # then EOS
            input_format.sequence_length,
            "start",
        )
    elif input_format.kind == kinds.CAUSAL:
        limit = shown = input_format.prompt_limit(max_new_tokens)
        if getattr(input_format.tokenizer, "add_bos", False):
            limit -= 1  # the BOS before every prompt takes one
        kept = "end"
    else:
        return 0
    lengths = input_format.tokenize(texts).row_lengths().numpy()
    cut = int((lengths > limit).sum())
    if cut:
        were = "was" if cut == 1 else "were"
        logger.warning(
            "%d of %d prompts %s longer than the model's input (%d tokens) "
            "and %s cut, keeping the %s.",
            cut,
            len(lengths),
            were,
            shown,
            were,
            kept,
        )
    return cut


def generate(
    model,
    input_format,
    texts,
    config=None,
    *,
    jit_compile=True,
    batch_size=DEFAULT_BATCH_SIZE,
    keep_special_tokens=False,
):
    """Generates a text for each prompt (`Task.generate` calls this).

    The prompts are built by the model's input format, as in training and
    in the export: seq2seq inputs get the task prefix, truncation and EOS;
    decoder-only prompts keep their end and start from BOS when empty.
    Only the new text is returned; prompts the format cuts are counted in
    one logged warning (`warn_if_cut`).

    Args:
        model: a `Seq2SeqLM` or `CausalLM` task model.
        input_format: its `keras_llm.data.formats.InputFormat`.
        texts: list of str (or one str).
        config: `GenerationConfig`. Defaults to greedy, 32 tokens.
        jit_compile: bool. Compile the decode loop with XLA.
        batch_size: int. Prompts decoded together.
        keep_special_tokens: bool. Keep the special tokens the tokenizer
            renders (T5's `<extra_id_N>` sentinels, BERT's [CLS], ...).
            By default the texts are those of Hugging Face's
            `batch_decode(ids, skip_special_tokens=True)`: specials
            dropped, the tokenizer's spacing.

    Returns:
        list of str, one per prompt.
    """
    config = GenerationConfig() if config is None else config
    texts = as_list(texts)
    if not texts:
        return []
    tokenizer = input_format.tokenizer
    _check_max_new_tokens(model, config)
    texts = tf.constant(texts)
    warn_if_cut(input_format, texts, config.max_new_tokens)
    ragged = input_format.prompt_ids(texts, config.max_new_tokens)
    ids = generate_ids(
        model,
        ragged,
        config,
        eos_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id,
        jit_compile=jit_compile,
        batch_size=batch_size,
    )
    return detokenize(
        tokenizer,
        _strip_after_eos(ids, tokenizer.eos_id, tokenizer.pad_id),
        skip_special_tokens=not keep_special_tokens,
    )
