"""The training state: model and optimizer built under the strategy, the
host-side counters, the checkpoint, and its restore."""

import dataclasses
import logging
import os

import tensorflow as tf

from keras_llm import rundir
from keras_llm import schedules

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainState:
    """What a checkpoint holds, and the manager that writes it."""

    model: object
    optimizer: object
    step: tf.Variable
    loss_total: tf.Variable  # the running log interval's loss sum
    loss_steps: tf.Variable  # ... and its step count
    iterator: object
    manager: tf.train.CheckpointManager

    def save(self):
        return self.manager.save(checkpoint_number=int(self.step))


def restore(cfg, run_dir, prepared):
    """Builds the model and optimizer and restores the newest checkpoint.

    A training checkpoint restores everything (model, optimizer, step, data
    position, log accumulators) and must match exactly; a model-only one
    (`kllm convert`) gives the starting weights of a fine-tune.
    """
    from keras_llm.models import build_model

    policy = cfg.runtime.mixed_precision
    with prepared.strategy.scope():
        model = build_model(
            cfg.model, dtype=None if policy == "float32" else policy
        )
        optimizer = schedules.make_optimizer(cfg.train, policy)
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
    iterator = iter(prepared.train_data)
    checkpoint = tf.train.Checkpoint(
        model=model,
        optimizer=optimizer,
        step=step,
        iterator=iterator,
        loss_total=loss_total,
        loss_steps=loss_steps,
    )
    directory = rundir.checkpoint_dir(run_dir)
    if not prepared.is_chief:  # each worker keeps its own data position
        directory = os.path.join(directory, f"worker_{prepared.worker_index}")
    manager = tf.train.CheckpointManager(
        checkpoint, directory, max_to_keep=cfg.train.max_checkpoints_to_keep
    )
    latest = manager.latest_checkpoint
    if latest:
        names = [n for n, _ in tf.train.list_variables(latest)]
        if any(n.startswith("optimizer/") for n in names):
            checkpoint.restore(latest).assert_consumed()
            logger.info("Resumed from %s (step %d).", latest, int(step))
        else:  # model-only (`kllm convert`): fine-tune from its weights
            tf.train.Checkpoint(model=model).restore(
                latest
            ).assert_existing_objects_matched()
            logger.info("Fine-tuning the weights of %s.", latest)
    return TrainState(
        model, optimizer, step, loss_total, loss_steps, iterator, manager
    )
