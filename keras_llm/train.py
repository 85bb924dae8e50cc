"""Training: `train(cfg, run_dir)` — strategy, precision, the custom loop,
evaluation, checkpoints that resume exactly.

Why a custom loop (DESIGN.md traps 1, 7, 8): `compile(jit_compile=True)`
fails under MirroredStrategy and `fit` fails under MultiWorkerMirrored.
Here the per-replica forward+backward pass is XLA-compiled inside
`strategy.run`; the all-reduce, the global-norm clipping and the optimizer
update stay outside XLA. Each replica's loss is divided by the *global*
count of target tokens, so 1 and N replicas take the same step.
"""

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from keras_llm import distribute
from keras_llm import rundir
from keras_llm import schedules
from keras_llm._callable import make_callable
from keras_llm.data import pipeline
from keras_llm.data import sources

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    step: int
    train_loss: float | None
    validation_loss: float | None


def _check_run_dir(run_dir):
    """Fails before anything is written if `run_dir` cannot be written."""
    rundir.check_writable(run_dir, "the run directory")
    if os.path.isdir(run_dir) and os.path.exists(rundir.config_path(run_dir)):
        return "existing"
    return "new"


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


class _Logger:
    """metrics.jsonl, TensorBoard and the progress bar (chief only)."""

    def __init__(self, run_dir, start_step, total_steps, enabled, progress):
        self.enabled = enabled
        self.path = os.path.join(run_dir, rundir.METRICS_FILE)
        self.progbar = None
        if not enabled:
            return
        # A resumed run drops what the killed run logged after its last
        # checkpoint, so the log equals an uninterrupted run's.
        kept = []
        if os.path.exists(self.path):
            with open(self.path) as f:
                kept = [
                    line
                    for line in f
                    if json.loads(line).get("step", 0) <= start_step
                ]
        with open(self.path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(self.path + ".tmp", self.path)
        self.writer = tf.summary.create_file_writer(
            os.path.join(run_dir, rundir.LOG_DIR)
        )
        if progress:
            self.progbar = keras.utils.Progbar(
                total_steps,
                stateful_metrics=[
                    "loss",
                    "tokens/s",
                    "lr",
                    "val_loss",
                    "val_ppl",
                ],
            )
            self.progbar.update(start_step)

    def log(self, step, values, show=True):
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        if self.progbar is not None and show:
            self.progbar.update(step, list(values.items()))


def _loss_terms(model, features, labels, weights):
    logits = model(features, training=True)  # (B, T, V) float32
    losses = keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True
    )
    return tf.reduce_sum(losses * weights)


def train(cfg, run_dir, *, progress=False):
    """Trains `cfg` into `run_dir`, resuming from its checkpoints if any.

    Args:
        cfg: `ExperimentConfig`.
        run_dir: the run directory (created; resumed if it holds one).
        progress: show a progress bar (the CLI sets it).

    Returns:
        `TrainResult`.

    Raises:
        ValueError, FileNotFoundError, PermissionError: bad input, before
            anything is written.
        FloatingPointError: the loss became NaN/Inf; the last good
            checkpoint is kept.
    """
    from keras_llm.models import build_model

    state = _check_run_dir(run_dir)
    if state == "existing":
        saved = rundir.read_config(run_dir)
        if saved.model != cfg.model:
            raise ValueError(
                f"{run_dir} holds a run of another model (see "
                f"{rundir.config_path(run_dir)}): use a new --run-dir, or "
                "train that config to resume it."
            )
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
        raise ValueError(
            "data: the training corpus is empty (no non-blank document in "
            f"source {cfg.data.source!r}"
            + (
                f", files {cfg.data.train_files!r}"
                if cfg.data.train_files
                else ""
            )
            + ")."
        )
    plan = pipeline.resolve_plan(cfg, "inputs" in train_text.element_spec)

    # Seed before the tokenizer exists: seeding clears TF's kernel caches,
    # which deletes a SentencePiece resource made earlier (DESIGN trap 3).
    keras.utils.set_random_seed(cfg.train.seed)
    os.makedirs(run_dir, exist_ok=True)
    tokenizer = _tokenizer(cfg, run_dir, train_text, is_chief, plan.objective)
    if tokenizer.vocabulary_size > cfg.model.vocabulary_size:
        raise ValueError(
            f"model.vocabulary_size: the tokenizer emits "
            f"{tokenizer.vocabulary_size} ids, more than the model's "
            f"{cfg.model.vocabulary_size}."
        )
    train_data, validation_data, plan = pipeline.build_datasets(
        cfg, tokenizer, num_workers, worker_index, splits
    )
    if not list(train_data.take(1)):
        raise ValueError(
            "data: the corpus is too small for one batch of "
            f"{cfg.train.global_batch_size} examples of {plan.objective}."
        )
    if is_chief:
        rundir.write_config(cfg, run_dir)

    policy = (
        None
        if cfg.runtime.mixed_precision == "float32"
        else (cfg.runtime.mixed_precision)
    )
    with strategy.scope():
        model = build_model(cfg.model, dtype=policy)
        optimizer = schedules.make_optimizer(
            cfg.train, cfg.runtime.mixed_precision
        )
        optimizer.build(model.trainable_variables)
    # Host-side counters (outside the scope: plain, not mirrored). The log
    # accumulators live in the checkpoint, so a resumed run logs the same
    # averages as an uninterrupted one.
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    loss_total = tf.Variable(
        0.0, dtype=tf.float64, trainable=False, name="loss_total"
    )
    loss_steps = tf.Variable(
        0.0, dtype=tf.float64, trainable=False, name="loss_steps"
    )
    iterator = iter(train_data)
    checkpoint = tf.train.Checkpoint(
        model=model,
        optimizer=optimizer,
        step=step,
        iterator=iterator,
        loss_total=loss_total,
        loss_steps=loss_steps,
    )
    directory = rundir.checkpoint_dir(run_dir)
    if not is_chief:  # each worker keeps its own data position
        directory = os.path.join(directory, f"worker_{worker_index}")
    manager = tf.train.CheckpointManager(
        checkpoint, directory, max_to_keep=cfg.train.max_checkpoints_to_keep
    )
    if manager.latest_checkpoint:
        latest = manager.latest_checkpoint
        names = [n for n, _ in tf.train.list_variables(latest)]
        if any(n.startswith("optimizer/") for n in names):
            checkpoint.restore(latest).assert_consumed()
            logger.info("Resumed from %s (step %d).", latest, int(step))
        else:  # model-only (`kllm convert`): fine-tune from its weights
            tf.train.Checkpoint(model=model).restore(
                latest
            ).assert_existing_objects_matched()
            logger.info("Fine-tuning the weights of %s.", latest)

    step_fn = _make_step_fn(
        cfg, strategy, model, optimizer, accumulation, num_workers
    )
    eval_fn = _make_eval_fn(cfg, model)
    logs = _Logger(
        run_dir, int(step), cfg.train.train_steps, is_chief, progress
    )
    train_loss = validation_loss = None
    if int(step) == 0:  # the baseline the validation curve falls from
        validation_loss = _evaluate(
            eval_fn, validation_data, cfg.train.eval_steps
        )
        if validation_loss is not None:
            logs.log(
                0,
                {
                    "val_loss": validation_loss,
                    "val_ppl": math.exp(min(validation_loss, 50.0)),
                },
            )
    interval_start, tokens_seen = time.perf_counter(), 0
    while int(step) < cfg.train.train_steps:
        loss, tokens = step_fn(iterator)
        loss = float(loss)
        if not math.isfinite(loss):
            last = manager.latest_checkpoint or "none yet"
            raise FloatingPointError(
                f"The loss became {loss} at step {int(step) + 1}. Stopped; "
                f"the last good checkpoint is kept ({last}). Lower "
                "train.learning_rate, set train.gradient_clip_norm, or use "
                "runtime.mixed_precision: mixed_bfloat16."
            )
        step.assign_add(1)
        loss_total.assign_add(loss)
        loss_steps.assign_add(1.0)
        tokens_seen += int(tokens)
        current = int(step)
        if current % cfg.train.log_interval_steps == 0 or (
            current == cfg.train.train_steps
        ):
            elapsed = time.perf_counter() - interval_start
            train_loss = float(loss_total) / max(float(loss_steps), 1.0)
            lr = optimizer.learning_rate
            lr = float(lr(optimizer.iterations - 1) if callable(lr) else lr)
            logs.log(
                current,
                {
                    "loss": train_loss,
                    "tokens/s": tokens_seen / max(elapsed, 1e-9),
                    "lr": lr,
                },
            )
            loss_total.assign(0.0)
            loss_steps.assign(0.0)
            tokens_seen = 0
        if current % cfg.train.eval_interval_steps == 0 or (
            current == cfg.train.train_steps
        ):
            validation_loss = _evaluate(
                eval_fn, validation_data, cfg.train.eval_steps
            )
            if validation_loss is not None:
                logs.log(
                    current,
                    {
                        "val_loss": validation_loss,
                        "val_ppl": math.exp(min(validation_loss, 50.0)),
                    },
                )
        if current % cfg.train.checkpoint_interval_steps == 0 or (
            current == cfg.train.train_steps
        ):
            manager.save(checkpoint_number=current)
        if tokens_seen == 0:  # a new logging interval: time only training
            interval_start = time.perf_counter()
    return TrainResult(run_dir, int(step), train_loss, validation_loss)


def _make_step_fn(cfg, strategy, model, optimizer, accumulation, num_workers):
    """One optimizer step over the next global (per-worker) batch."""
    variables = model.trainable_variables
    num_local = strategy.num_replicas_in_sync // num_workers
    clip = cfg.train.gradient_clip_norm
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    pin_devices = isinstance(strategy, tf.distribute.MirroredStrategy)

    @tf.function(jit_compile=cfg.runtime.jit_compile)
    def replica_gradients(features, labels, weights, count):
        """Forward+backward of one replica's share, micro-batch by
        micro-batch; loss normalized by the global token count."""
        grads = [tf.zeros_like(v) for v in variables]
        total = tf.constant(0.0)
        size = tf.shape(labels)[0] // accumulation
        for i in range(accumulation):
            part = (
                slice(None)
                if accumulation == 1
                else slice(i * size, (i + 1) * size)
            )
            with tf.GradientTape() as tape:
                loss_sum = _loss_terms(
                    model,
                    {k: v[part] for k, v in features.items()},
                    labels[part],
                    weights[part],
                )
                loss = loss_sum / count
                objective = optimizer.scale_loss(loss) if scaled else loss
            step_grads = tape.gradient(objective, variables)
            # Weights the loss does not reach (BERT's pooler under masked
            # LM) get no gradient: they stay put.
            grads = [
                g if s is None else g + tf.cast(s, g.dtype)
                for g, s in zip(grads, step_grads)
            ]
            total += loss
        return grads, total

    @tf.function
    def step_fn(iterator):
        features, labels, weights = next(iterator)

        def share(ctx):
            index = ctx.replica_id_in_sync_group % num_local
            size = tf.shape(labels)[0] // num_local
            part = slice(index * size, (index + 1) * size)
            return (
                {k: v[part] for k, v in features.items()},
                labels[part],
                weights[part],
            )

        per_replica = strategy.experimental_distribute_values_from_function(
            share
        )
        local_count = strategy.run(
            lambda features, labels, weights: tf.reduce_sum(weights),
            args=per_replica,
        )
        count = tf.maximum(strategy.reduce("SUM", local_count, axis=None), 1.0)

        def on_replica_device(*args):
            # Pin the XLA call to the replica's device: left to the placer,
            # replica 1's cluster can land on device 0 ("Trying to access
            # resource ... located in device CPU:1 from device CPU:0").
            if not pin_devices:  # multi-worker: placed by the strategy
                return replica_gradients(*args)
            devices = tf.distribute.get_replica_context().devices
            with tf.device(tf.nest.flatten(devices)[0]):
                return replica_gradients(*args)

        grads, loss = strategy.run(
            on_replica_device, args=(*per_replica, count)
        )
        grads = [strategy.reduce("SUM", g, axis=None) for g in grads]
        loss = strategy.reduce("SUM", loss, axis=None)
        if clip is not None:
            if scaled:
                grads = [g / optimizer.dynamic_scale for g in grads]
                grads, _ = tf.clip_by_global_norm(grads, clip)
                grads = [g * optimizer.dynamic_scale for g in grads]
            else:
                grads, _ = tf.clip_by_global_norm(grads, clip)
        optimizer.apply(grads, variables)
        tokens = tf.add_n(
            [
                tf.reduce_sum(tf.cast(v, tf.float32))
                for k, v in features.items()
                if "padding" in k
            ]
        )
        return loss, tokens

    return step_fn


def _make_eval_fn(cfg, model):
    @tf.function(jit_compile=cfg.runtime.jit_compile)
    def eval_fn(features, labels, weights):
        logits = model(features, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        )
        return tf.reduce_sum(losses * weights), tf.reduce_sum(weights)

    return eval_fn


def _evaluate(eval_fn, dataset, max_batches):
    total = count = 0.0
    for features, labels, weights in dataset.take(max_batches):
        loss_sum, weight_sum = eval_fn(features, labels, weights)
        total += float(loss_sum)
        count += float(weight_sum)
    if count == 0:
        logger.warning("The validation split is empty: no validation loss.")
        return None
    return total / count


make_callable(__name__, train)
