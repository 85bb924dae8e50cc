"""The training state: the model and optimizer built under the strategy,
the micro-batch that fits, the datasets, the checkpoint and its restore —
all checked before `commit` writes anything into the run dir."""

import dataclasses
import json
import logging
import os
import shutil

import tensorflow as tf

from keras_llm import config as config_lib
from keras_llm import distribute
from keras_llm import restore
from keras_llm import rundir
from keras_llm import schedules
from keras_llm.config import memory
from keras_llm.data import pipeline
from keras_llm.training import best as best_lib
from keras_llm.training import init as init_lib
from keras_llm.training import prepare

logger = logging.getLogger(__name__)

RUN_INFO_FILE = "run_info.json"
# Settings a run may change when it resumes: they do not touch the data
# order, the model or the optimizer's state.
RESUMABLE = {
    "train": (
        "train_steps",
        "learning_rate",
        "schedule",
        "warmup_steps",
        "weight_decay",
        "gradient_clip_norm",
        "micro_batch_size",
        "eval_interval_steps",
        "checkpoint_interval_steps",
        "checkpoint_interval_minutes",
        "max_checkpoints_to_keep",
        "eval_steps",
        "log_interval_steps",
        "eval_metrics",
        "eval_examples",
        "best_metric",
        "early_stopping_patience",
    ),
    "runtime": ("strategy", "jit_compile", "num_cpu_devices"),
}


@dataclasses.dataclass
class TrainState:
    """What a checkpoint holds, the manager that writes it, and the data."""

    model: object
    optimizer: object
    step: tf.Variable
    loss_total: tf.Variable  # the running log interval's loss sum
    loss_steps: tf.Variable  # ... and its step count
    iterator: object
    manager: tf.train.CheckpointManager
    memory_plan: memory.Plan
    validation_data: tf.data.Dataset
    restored_from: str | None  # the checkpoint resumed, if any
    fine_tuning: bool  # started from a model-only checkpoint
    best: best_lib.Tracker  # the best checkpoint and early stopping
    input_format: object  # prompts for train.eval_metrics (max_positions)
    eval_pairs: list | None  # (input, target) texts for train.eval_metrics

    def save(self):
        """Writes a checkpoint; a full disk or a permission error becomes
        one line."""
        try:
            return self.manager.save(checkpoint_number=int(self.step))
        except (tf.errors.OpError, OSError) as error:
            message = getattr(error, "message", None) or str(error)
            raise TrainingError(
                f"Could not write a checkpoint into {self.manager.directory}: "
                f"{message.splitlines()[0]}. Free space or fix the "
                "permissions, then run the same command to resume from the "
                "last checkpoint."
            ) from None


class TrainingError(ValueError):
    """A run that cannot go on (out of memory, a checkpoint not written):
    one line with the fix."""


def build(cfg, run_dir, prepared):
    """Builds the model, optimizer, datasets and checkpoint; restores the
    newest checkpoint. Writes nothing.

    A training checkpoint restores everything (model, optimizer, step, data
    position, log accumulators) and must match exactly; a model-only one
    (`kllm convert`) gives the starting weights of a fine-tune.
    """
    from keras_llm.models import build_model
    from keras_llm.models import task_class

    if prepared.saved_config is not None:
        _check_resumable(prepared.saved_config, cfg, run_dir)
    policy = cfg.runtime.mixed_precision
    strategy = prepared.strategy
    kind = config_lib.kind_of(cfg)  # the objective's (BERT may classify)
    with strategy.scope():
        model = build_model(
            cfg.model,
            dtype=None if policy == "float32" else policy,
            kind=kind,
            **init_lib.task_kwargs(prepared.labels),
        )
    per_replica = cfg.train.global_batch_size // strategy.num_replicas_in_sync
    budget, device = distribute.device_budget(strategy, prepared.num_workers)
    plan = memory.plan_micro_batch(
        cfg, model.count_params(), per_replica, budget, device
    )
    with strategy.scope():
        optimizer = schedules.make_optimizer(cfg.train, policy)
        optimizer.build(model.trainable_variables)

    input_format = task_class(cfg.model, kind).input_format.from_data_config(
        prepared.tokenizer, cfg.data, **init_lib.format_kwargs(prepared.labels)
    )
    eval_pairs = _eval_pairs(cfg, prepared.splits[1])
    # Prompts for train.eval_metrics, built as model.generate builds them
    # (a classifier's, as model.classify: with the run's labels).
    generation_format = model.input_format.from_data_config(
        prepared.tokenizer,
        cfg.data,
        max_positions=model.max_positions,
        **init_lib.format_kwargs(prepared.labels),
    )
    train_data, validation_data = pipeline.build_datasets(
        cfg.data,
        input_format,
        prepared.plan,
        batch_size=cfg.train.global_batch_size // prepared.num_workers,
        eval_batch_size=plan.micro_batch_size,
        seed=cfg.train.seed,
        splits=prepared.splits,
        num_workers=prepared.num_workers,
        worker_index=prepared.worker_index,
    )
    if not list(train_data.take(1)):
        raise ValueError(
            "data: the corpus is too small for one batch of "
            f"{cfg.train.global_batch_size} examples of "
            f"{prepared.plan.objective} (lower train.global_batch_size or "
            "data.sequence_length, or give more text)."
        )
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
    parts = dict(
        model=model,
        optimizer=optimizer,
        step=step,
        iterator=iterator,
        loss_total=loss_total,
        loss_steps=loss_steps,
    )
    # The best validation so far and the validations since: restored with
    # the step, so early stopping decides as in an uninterrupted run.
    best_variables = best_lib.make_variables()
    best_value, best_step, bad_evals = best_variables
    checkpoint = tf.train.Checkpoint(
        **parts, best=best_value, best_step=best_step, bad_evals=bad_evals
    )
    directory = rundir.checkpoint_dir(run_dir)
    if not prepared.is_chief:  # each worker keeps its own data position
        directory = os.path.join(directory, f"worker_{prepared.worker_index}")
    tracker = best_lib.Tracker(cfg, model, best_variables, directory)
    latest = _newest_present(directory)
    fine_tuning = False
    if latest:
        fine_tuning = _restore(checkpoint, parts, model, latest)
    elif cfg.train.init_checkpoint:
        init_lib.load_weights(cfg, model)
    saved = prepared.saved_config
    if saved is not None and saved.train.best_metric != cfg.train.best_metric:
        tracker.reset()
        logger.info(
            "train.best_metric changed from %s to %s: the best so far is "
            "measured anew from the next validation.",
            saved.train.best_metric,
            cfg.train.best_metric,
        )
    # The manager creates its folder: only once everything has passed.
    manager = _LazyManager(
        checkpoint, directory, cfg.train.max_checkpoints_to_keep
    )
    return TrainState(
        model,
        optimizer,
        step,
        loss_total,
        loss_steps,
        iterator,
        manager,
        plan,
        validation_data,
        latest,
        fine_tuning,
        tracker,
        generation_format,
        eval_pairs,
    )


def _eval_pairs(cfg, validation_text):
    """The first `train.eval_examples` validation (input, target) texts,
    the same at every validation; `None` without `train.eval_metrics`.

    Raises:
        ValueError: the data gives single texts, no targets to compare.
    """
    if not cfg.train.eval_metrics:
        return None
    if "inputs" not in validation_text.element_spec:
        raise ValueError(
            f"train.eval_metrics: {', '.join(cfg.train.eval_metrics)} "
            "compare outputs with targets, and the data gives single "
            "texts: train on input/target pairs (.tsv, or .jsonl / "
            ".tfrecord with data.target_field), or remove "
            "train.eval_metrics."
        )
    return [
        (row["inputs"].decode("utf-8"), row["targets"].decode("utf-8"))
        for row in validation_text.take(
            cfg.train.eval_examples
        ).as_numpy_iterator()
    ]


def _newest_present(directory):
    """The newest checkpoint whose files exist: deleting a damaged one
    resumes from the one before."""
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        return None
    for path in reversed(state.all_model_checkpoint_paths):
        if tf.io.gfile.exists(path + ".index"):
            return path
    return None


def _restore(checkpoint, parts, model, latest):
    """Restores `latest`; True when it is model-only (a fine-tune). A
    training checkpoint written before the best checkpoint existed
    restores everything else (the best is measured from the next
    validation)."""
    try:
        names = [n for n, _ in tf.train.list_variables(latest)]
        if any(n.startswith("optimizer/") for n in names):
            if not any(n.startswith("best_step/") for n in names):
                checkpoint = tf.train.Checkpoint(**parts)
            # A checkpoint of the older attention shapes: the kernels and
            # their optimizer slots reshaped (keras_llm.restore).
            with restore.restorable(latest, checkpoint) as path:
                checkpoint.restore(path).assert_consumed()
            return False
        holder = tf.train.Checkpoint(model=model)
        with restore.restorable(latest, holder) as path:
            holder.restore(path).assert_existing_objects_matched()
        return True
    except Exception as error:  # noqa: BLE001 (any reader failure: one line)
        message = getattr(error, "message", None) or str(error)
        raise ValueError(
            f"Cannot resume from {latest}: the checkpoint is damaged or "
            f"belongs to another setup ({message.splitlines()[0][:200]}). "
            f"Delete its files ({os.path.basename(latest)}.*) to resume from "
            "the one before, or use a new --run-dir."
        ) from None


class _LazyManager:
    """A `tf.train.CheckpointManager` made on first use: making one creates
    its directory, which must wait until the run is committed."""

    def __init__(self, checkpoint, directory, max_to_keep):
        self.directory = directory
        self._args = (checkpoint, directory, max_to_keep)
        self._manager = None

    def _get(self):
        if self._manager is None:
            checkpoint, directory, max_to_keep = self._args
            self._manager = tf.train.CheckpointManager(
                checkpoint, directory, max_to_keep=max_to_keep
            )
        return self._manager

    @property
    def latest_checkpoint(self):
        return self._get().latest_checkpoint

    def save(self, checkpoint_number):
        return self._get().save(checkpoint_number=checkpoint_number)


def _check_resumable(saved, cfg, run_dir):
    """Refuses, in one line naming the keys, a change a resume cannot make."""
    old, new = config_lib.to_dict(saved), config_lib.to_dict(cfg)
    changed = []
    for section in ("data", "train", "runtime"):
        for key, value in new[section].items():
            if old[section].get(key) != value:
                if key not in RESUMABLE.get(section, ()):
                    changed.append(f"{section}.{key}")
    if changed:
        raise ValueError(
            f"{run_dir} cannot resume with changed {', '.join(changed)} "
            f"(they change the data, the batch or the optimizer's state; "
            f"see {rundir.config_path(run_dir)}): set them back, or use a "
            "new --run-dir."
        )


def commit(cfg, run_dir, prepared, state):
    """Writes the run dir's config and tokenizer (the chief), once every
    check has passed, and clears what a killed run left behind."""
    os.makedirs(run_dir, exist_ok=True)
    _clear_leftovers(run_dir, state.manager.directory)
    best_lib.recover(
        state.manager.directory,
        state.restored_from is None or state.fine_tuning,
    )
    if not prepared.is_chief:
        prepare.remove_scratch(prepared.tokenizer_scratch)
        return
    if prepared.labels:
        _write_atomically(
            rundir.labels_path(run_dir),
            json.dumps(prepared.labels, indent=2, ensure_ascii=False),
        )
    if prepared.tokenizer_scratch:
        target = os.path.join(run_dir, rundir.TOKENIZER_DIR)
        staging = target + ".tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.move(prepared.tokenizer_scratch, staging)
        os.replace(staging, target)
    saved = prepared.saved_config
    if saved != cfg:
        if saved is not None:
            old, new = config_lib.to_dict(saved), config_lib.to_dict(cfg)
            logger.info(
                "Recorded the changed settings: %s.",
                ", ".join(
                    f"{section}.{key} {old[section][key]} -> {value}"
                    for section in new
                    for key, value in new[section].items()
                    if old[section].get(key) != value
                ),
            )
        _write_atomically(rundir.config_path(run_dir), config_lib.to_yaml(cfg))
    info = {
        **prepared.notes,
        "objective": prepared.plan.objective,
        "replicas": prepared.strategy.num_replicas_in_sync,
        "micro_batch_size": state.memory_plan.micro_batch_size,
        "accumulation_steps": state.memory_plan.accumulation,
        "estimated_peak_memory_bytes": state.memory_plan.peak_bytes,
        "memory_budget_bytes": state.memory_plan.budget_bytes,
    }
    _write_atomically(
        os.path.join(run_dir, RUN_INFO_FILE), json.dumps(info, indent=2)
    )


def _write_atomically(path, text):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _clear_leftovers(run_dir, checkpoint_dir):
    """Temporary files of a killed run: half-written checkpoints
    (`ckpt-N_temp/`), a tokenizer or log file that was never renamed."""
    for path in (
        os.path.join(run_dir, rundir.TOKENIZER_DIR + ".tmp"),
        os.path.join(run_dir, rundir.METRICS_FILE + ".tmp"),
        rundir.config_path(run_dir) + ".tmp",
        os.path.join(run_dir, RUN_INFO_FILE + ".tmp"),
        rundir.labels_path(run_dir) + ".tmp",
    ):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)
    if os.path.isdir(checkpoint_dir):
        for name in os.listdir(checkpoint_dir):
            if "_temp" in name:
                path = os.path.join(checkpoint_dir, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
