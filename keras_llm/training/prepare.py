"""Everything a run needs before its model exists: the run dir checked,
the strategy, the data read once, the tokenizer. Nothing is written into
the run dir here: a tokenizer trained now waits in a scratch folder until
`commit` moves it in, once every check has passed."""

import dataclasses
import logging
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_llm import distribute
from keras_llm import kinds
from keras_llm import rundir
from keras_llm.data import pipeline
from keras_llm.data import sources
from keras_llm.training import init as init_lib

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Prepared:
    """A run ready to build its model."""

    strategy: tf.distribute.Strategy
    num_workers: int
    worker_index: int
    is_chief: bool
    saved_config: object  # the run dir's config when resuming, else None
    tokenizer: object
    tokenizer_scratch: str | None  # a new tokenizer's folder, not yet moved
    plan: pipeline.Plan
    splits: tuple  # (train, validation) text datasets
    notes: dict  # facts about the data, recorded in the run dir
    labels: list | None = None  # a classifier's label set, sorted


def prepare(cfg, run_dir):
    """Checks the run, reads the data and finds or trains the tokenizer.

    Raises:
        ValueError, FileNotFoundError, PermissionError: bad input; nothing
            has been written into `run_dir`.
    """
    saved = _check_run_dir(cfg, run_dir)
    strategy = distribute.make_strategy(cfg.runtime)
    replicas = strategy.num_replicas_in_sync
    num_workers, worker_index, is_chief = distribute.worker_info()
    if cfg.train.global_batch_size % replicas:
        raise ValueError(
            f"train.global_batch_size: {cfg.train.global_batch_size} is not "
            f"divisible by {replicas} replicas (use a multiple of "
            f"{replicas})."
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
    labels = init_lib.training_labels(cfg, run_dir)
    init_lib.check(cfg)

    # Seed before the tokenizer exists: seeding clears TF's kernel caches,
    # which deletes a SentencePiece resource made earlier
    # (docs/architecture.md, "Known traps").
    keras.utils.set_random_seed(cfg.train.seed)
    tokenizer, scratch = _tokenizer(cfg, run_dir, saved, train_text, plan)
    notes = {
        "tokenizer_ids": tokenizer.vocabulary_size,
        "model_vocabulary_size": cfg.model.vocabulary_size,
    }
    try:
        if tokenizer.vocabulary_size > cfg.model.vocabulary_size:
            raise ValueError(
                f"model.vocabulary_size: the tokenizer emits "
                f"{tokenizer.vocabulary_size} ids, more than the model's "
                f"{cfg.model.vocabulary_size}."
            )
    except ValueError:
        remove_scratch(scratch)
        raise
    return Prepared(
        strategy,
        num_workers,
        worker_index,
        is_chief,
        saved,
        tokenizer,
        scratch,
        plan,
        splits,
        notes,
        labels,
    )


def _check_run_dir(cfg, run_dir):
    """The run dir's saved config when it holds a run, else `None`; fails
    before anything is written if it cannot be written or holds a run of
    another model."""
    rundir.check_writable(run_dir, "the run directory")
    if not os.path.exists(rundir.config_path(run_dir)):
        return None
    saved = rundir.read_config(run_dir)
    if saved.model != cfg.model:
        raise ValueError(
            f"{run_dir} holds a run of another model (see "
            f"{rundir.config_path(run_dir)}): use a new --run-dir, or "
            "train that config to resume it."
        )
    return saved


def _tokenizer(cfg, run_dir, saved, train_text, plan):
    """`(tokenizer, scratch)`: the run dir's tokenizer (scratch `None`), or
    the configured one or one trained on the training text, saved into a
    scratch folder that `commit` moves into the run dir."""
    from keras_llm.data import tokenizer as tokenizer_lib

    target = os.path.join(run_dir, rundir.TOKENIZER_DIR)
    if os.path.isdir(target):
        return tokenizer_lib.load_tokenizer(target), None
    if saved is not None and rundir.latest_checkpoint(run_dir):
        raise FileNotFoundError(
            f"{target} is missing: the checkpoints in {run_dir} were trained "
            "with it. Restore it, or start a new run (--run-dir)."
        )
    scratch = tempfile.mkdtemp(prefix="kllm-tokenizer-")
    try:
        if given := init_lib.tokenizer_dir(cfg):
            tokenizer = tokenizer_lib.load_tokenizer(given)
            tokenizer.save(scratch)
        else:
            tokenizer = _train_tokenizer(cfg, train_text, plan, scratch)
    except BaseException:
        remove_scratch(scratch)
        raise
    return tokenizer, scratch


def _train_tokenizer(cfg, train_text, plan, directory):
    """A vocabulary of `model.vocabulary_size` ids from the training text:
    WordPiece for masked LM (BERT), else SentencePiece (seeded). A text too
    small for that many pieces gives fewer: said in one line."""
    from keras_llm.data import tokenizer as tokenizer_lib

    size = cfg.model.vocabulary_size  # all ids, sentinels included
    texts = sources.sample_texts(train_text)
    if kinds.kind_of(plan.objective) in (kinds.MASKED, kinds.CLASSIFIER):
        kind = "WordPiece"
        tokenizer = tokenizer_lib.train_wordpiece(texts, size, directory)
    else:
        kind = "SentencePiece"
        sentinels = (
            cfg.data.num_sentinels if plan.objective == "span_corruption" else 0
        )
        tokenizer = tokenizer_lib.train_sentencepiece(
            texts,
            size,
            directory,
            num_sentinels=sentinels,
            seed=cfg.train.seed,
        )
    if tokenizer.vocabulary_size < size:
        logger.warning(
            "Trained a %s vocabulary of %s ids on the training text, fewer "
            "than model.vocabulary_size %s (the text holds no more pieces): "
            "ids %s..%s stay unused. Give more text, or lower "
            "model.vocabulary_size.",
            kind,
            f"{tokenizer.vocabulary_size:,}",
            f"{size:,}",
            f"{tokenizer.vocabulary_size:,}",
            f"{size - 1:,}",
        )
    else:
        logger.info("Trained a %s vocabulary of %s ids.", kind, f"{size:,}")
    return tokenizer


def remove_scratch(path):
    if path:
        shutil.rmtree(path, ignore_errors=True)
