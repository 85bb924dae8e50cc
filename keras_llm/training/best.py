"""The best checkpoint and early stopping.

Each validation's `train.best_metric` (`val_loss` by default) is compared
with the best so far, in the metric's direction
(`keras_llm.evaluation.metrics.METRICS`). A better one rewrites
`checkpoints/best/`: the model's weights (a model-only checkpoint,
`ckpt-STEP`) and `best.json` (metric, value, step), written into
`checkpoints/best_temp/` and renamed into place, so a kill leaves the old
best or the new one, never half of one. After
`train.early_stopping_patience` validations in a row without a better
value, the run stops.

The best value, its step and the count of validations without improvement
are variables of the training checkpoint: a resumed run restores the
state of its checkpoint's step and takes the same decisions as an
uninterrupted run. A best checkpoint written after the newest training
checkpoint (a kill in between) is rewritten when the resumed run reaches
that validation again.
"""

import json
import logging
import math
import os
import shutil

import tensorflow as tf

from keras_llm import rundir

logger = logging.getLogger(__name__)

TEMP_SUFFIX = "_temp"  # what `state._clear_leftovers` removes on start
OLD_SUFFIX = "_old"  # the previous best while the new one is renamed in


def higher_is_better(metric):
    """The direction of a logged validation metric (`val_loss`, `val_bleu`,
    ...), from the metric table of `keras_llm.evaluation`."""
    from keras_llm.evaluation.metrics import METRICS

    name = metric.removeprefix("val_")
    name = {"ppl": "perplexity"}.get(name, name)
    return METRICS[name].higher_is_better


def make_variables():
    """`(value, step, bad)`: the best value (NaN: none yet), its step (-1)
    and the validations since it; host-side, saved with the checkpoint."""
    return (
        tf.Variable(math.nan, dtype=tf.float64, trainable=False, name="best"),
        tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_step"),
        tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_evals"),
    )


class Tracker:
    """Decides, after each validation, whether it is the best so far (and
    writes the best checkpoint) and whether the run stops early."""

    def __init__(self, cfg, model, variables, directory):
        """
        Args:
            cfg: the run's `ExperimentConfig`.
            model: the task model whose weights the best checkpoint holds.
            variables: `(value, step, bad)` from `make_variables`, part of
                the training checkpoint.
            directory: where `best/` goes (the run's checkpoint folder, or
                a worker's own).
        """
        self.metric = cfg.train.best_metric
        self.patience = cfg.train.early_stopping_patience
        self.higher = higher_is_better(self.metric)
        self.model = model
        self.value, self.step, self.bad = variables
        self.path = os.path.join(directory, rundir.BEST_DIR)

    def reset(self):
        """Forgets the best so far (a new `train.best_metric`)."""
        self.value.assign(math.nan)
        self.step.assign(-1)
        self.bad.assign(0)

    def update(self, step, values):
        """Takes one validation's `values` (`{"val_loss": ..., ...}`).

        Returns:
            True when it is a new best (and the best checkpoint was
            written), False when not, `None` when the metric was not
            measured (an empty validation split): nothing counts then.
        """
        value = values.get(self.metric)
        if value is None or not math.isfinite(value):
            return None
        best = float(self.value)
        better = math.isnan(best) or (
            value > best if self.higher else value < best
        )
        if better:
            self._write(step, value)
            self.value.assign(value)
            self.step.assign(step)
            self.bad.assign(0)
        else:
            self.bad.assign_add(1)
        return better

    @property
    def exhausted(self):
        """Whether the patience is used up: the run stops."""
        return self.patience is not None and int(self.bad) >= self.patience

    def stop_message(self, step):
        """The one line that says why the run stopped at `step`."""
        bad = int(self.bad)
        return (
            f"Early stopping at step {step}: {self.metric} has not improved "
            f"on {float(self.value):.4f} (step {int(self.step)}) for "
            f"{bad} validation{'' if bad == 1 else 's'} "
            "(train.early_stopping_patience: "
            f"{self.patience}). The best weights are in {self.path}; raise "
            "the patience and run the same command to go on."
        )

    def summary(self):
        """`{"metric", "value", "step", "path"}` of the best, or `None`."""
        if int(self.step) < 0:
            return None
        return {
            "metric": self.metric,
            "value": float(self.value),
            "step": int(self.step),
            "path": self.path,
        }

    def _write(self, step, value):
        """The model's weights and `best.json` into `best_temp/`, then
        renamed to `best/` (the previous one moved aside first and
        removed after)."""
        temp, old = self.path + TEMP_SUFFIX, self.path + OLD_SUFFIX
        shutil.rmtree(temp, ignore_errors=True)
        prefix = os.path.join(temp, f"ckpt-{step}")
        checkpoint = tf.train.Checkpoint(
            model=self.model, step=tf.Variable(step, dtype=tf.int64)
        )
        try:
            checkpoint.write(prefix)
            info = {
                "metric": self.metric,
                "value": value,
                "step": step,
                "higher_is_better": self.higher,
                "checkpoint": os.path.basename(prefix),
            }
            with open(os.path.join(temp, rundir.BEST_FILE), "w") as f:
                f.write(json.dumps(info, indent=2) + "\n")
            if os.path.isdir(self.path):
                shutil.rmtree(old, ignore_errors=True)
                os.replace(self.path, old)
            os.replace(temp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        except (tf.errors.OpError, OSError) as error:
            from keras_llm.training.state import TrainingError

            message = getattr(error, "message", None) or str(error)
            raise TrainingError(
                f"Could not write the best checkpoint into {self.path}: "
                f"{message.splitlines()[0]}. Free space or fix the "
                "permissions, then run the same command to resume from the "
                "last checkpoint."
            ) from None


def recover(directory, fresh):
    """Tidies `best/` at the start of a run, before anything else is
    written: a fresh start drops the best of a killed earlier attempt; a
    resume puts back a best moved aside by a kill between the two renames
    (a half-written `best_temp/` is removed with the other leftovers)."""
    path = os.path.join(directory, rundir.BEST_DIR)
    old = path + OLD_SUFFIX
    if fresh:
        for folder in (path, old, path + TEMP_SUFFIX):
            shutil.rmtree(folder, ignore_errors=True)
        return
    if os.path.isdir(old):
        if os.path.isdir(path):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, path)
