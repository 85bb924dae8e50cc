"""Everything a run needs before its model exists: the run dir checked,
the strategy, the data read once, the tokenizer, the datasets."""

import dataclasses
import logging
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_llm import distribute
from keras_llm import rundir
from keras_llm.data import pipeline
from keras_llm.data import sources

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Prepared:
    """A run ready to build its model and train."""

    strategy: tf.distribute.Strategy
    num_workers: int
    worker_index: int
    is_chief: bool
    tokenizer: object
    plan: pipeline.Plan
    train_data: tf.data.Dataset
    validation_data: tf.data.Dataset


def prepare(cfg, run_dir):
    """Checks the run, reads the data and makes the datasets.

    Raises:
        ValueError, FileNotFoundError, PermissionError: bad input, before
            anything but the tokenizer and the config is written.
    """
    from keras_llm.models import task_class

    _check_run_dir(cfg, run_dir)
    strategy = distribute.make_strategy(cfg.runtime)
    replicas = strategy.num_replicas_in_sync
    num_workers, worker_index, is_chief = distribute.worker_info()
    accumulation = cfg.train.gradient_accumulation_steps
    if cfg.train.global_batch_size % (replicas * accumulation):
        raise ValueError(
            f"train.global_batch_size: {cfg.train.global_batch_size} is not "
            f"divisible by {replicas} replicas x {accumulation} accumulation "
            f"steps (use a multiple of {replicas * accumulation})."
        )
    splits = sources.load_splits(cfg.data)  # read once: the Bible is big
    train_text = splits[0]
    if not list(train_text.take(1)):
        files = cfg.data.train_files
        raise ValueError(
            "data: the training corpus is empty (no non-blank document in "
            f"source {cfg.data.source!r}"
            + (f", files {files!r}" if files else "")
            + ")."
        )
    pairs = "inputs" in train_text.element_spec
    plan = pipeline.resolve_plan(cfg.data, cfg.model, pairs)

    # Seed before the tokenizer exists: seeding clears TF's kernel caches,
    # which deletes a SentencePiece resource made earlier
    # (docs/architecture.md, "Known traps").
    keras.utils.set_random_seed(cfg.train.seed)
    os.makedirs(run_dir, exist_ok=True)
    tokenizer = _tokenizer(cfg, run_dir, train_text, is_chief, plan.objective)
    if tokenizer.vocabulary_size > cfg.model.vocabulary_size:
        raise ValueError(
            f"model.vocabulary_size: the tokenizer emits "
            f"{tokenizer.vocabulary_size} ids, more than the model's "
            f"{cfg.model.vocabulary_size}."
        )
    input_format = task_class(cfg.model).input_format.from_data_config(
        tokenizer, cfg.data
    )
    train_data, validation_data = pipeline.build_datasets(
        cfg.data,
        input_format,
        plan,
        batch_size=cfg.train.global_batch_size // num_workers,
        seed=cfg.train.seed,
        splits=splits,
        num_workers=num_workers,
        worker_index=worker_index,
    )
    if not list(train_data.take(1)):
        raise ValueError(
            "data: the corpus is too small for one batch of "
            f"{cfg.train.global_batch_size} examples of {plan.objective}."
        )
    if is_chief:
        rundir.write_config(cfg, run_dir)
    return Prepared(
        strategy,
        num_workers,
        worker_index,
        is_chief,
        tokenizer,
        plan,
        train_data,
        validation_data,
    )


def _check_run_dir(cfg, run_dir):
    """Fails before anything is written if `run_dir` cannot be written or
    holds a run of another model."""
    rundir.check_writable(run_dir, "the run directory")
    if os.path.isdir(run_dir) and os.path.exists(rundir.config_path(run_dir)):
        saved = rundir.read_config(run_dir)
        if saved.model != cfg.model:
            raise ValueError(
                f"{run_dir} holds a run of another model (see "
                f"{rundir.config_path(run_dir)}): use a new --run-dir, or "
                "train that config to resume it."
            )


def _train_tokenizer(cfg, train_text, objective, directory):
    """A vocabulary of `model.vocabulary_size` ids from the training text:
    WordPiece for masked LM (BERT), else SentencePiece (seeded)."""
    from keras_llm.data import tokenizer as tokenizer_lib

    size = cfg.model.vocabulary_size  # all ids, sentinels included
    texts = sources.sample_texts(train_text)
    if objective == "masked_lm":
        logger.info("Training a WordPiece vocabulary of %d ids.", size)
        return tokenizer_lib.train_wordpiece(texts, size, directory)
    logger.info("Training a SentencePiece vocabulary of %d ids.", size)
    sentinels = cfg.data.num_sentinels if objective == "span_corruption" else 0
    return tokenizer_lib.train_sentencepiece(
        texts, size, directory, num_sentinels=sentinels, seed=cfg.train.seed
    )


def _tokenizer(cfg, run_dir, train_text, write, objective):
    """The run's tokenizer: the run dir's, the configured one, or trained on
    the training text (seeded) and saved into the run dir."""
    from keras_llm.data import tokenizer as tokenizer_lib

    target = os.path.join(run_dir, rundir.TOKENIZER_DIR)
    if os.path.isdir(target):
        return tokenizer_lib.load_tokenizer(target)
    # Written beside the target and renamed, so a tokenizer/ dir is always
    # complete; other workers train into a temporary folder they delete.
    scratch = target + ".tmp" if write else tempfile.mkdtemp()
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        if cfg.data.tokenizer:
            tokenizer = tokenizer_lib.load_tokenizer(cfg.data.tokenizer)
            tokenizer.save(scratch)
        else:
            tokenizer = _train_tokenizer(cfg, train_text, objective, scratch)
        if write:
            os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return tokenizer
