"""What a run reports: metrics.jsonl, TensorBoard and the progress bar."""

import json
import math
import os

import keras
import tensorflow as tf

from keras_llm import rundir

_SHOWN = ["loss", "tokens/s", "lr", "val_loss", "val_ppl"]


class Logger:
    """Writes the logs of the chief; a no-op on the other workers."""

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
                total_steps, stateful_metrics=_SHOWN
            )
            self.progbar.update(start_step)

    def log(self, step, values):
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        if self.progbar is not None:
            self.progbar.update(step, list(values.items()))

    def log_validation(self, step, loss):
        """The validation loss and perplexity (nothing for an empty split)."""
        if loss is not None:
            perplexity = math.exp(min(loss, 50.0))
            self.log(step, {"val_loss": loss, "val_ppl": perplexity})
