"""What a run reports: metrics.jsonl, TensorBoard and the progress line.

A resumed run drops what the killed run logged after its last checkpoint,
from metrics.jsonl and from the TensorBoard event files alike, so the logs
of an interrupted run equal an uninterrupted one's.
"""

import glob
import json
import os
import sys
import time

import tensorflow as tf

from keras_llm import rundir


class Logger:
    """Writes the logs of the chief; a no-op on the other workers."""

    def __init__(self, run_dir, start_step, total_steps, enabled, progress):
        self.enabled = enabled
        self.path = os.path.join(run_dir, rundir.METRICS_FILE)
        self.progress = Progress(total_steps) if progress and enabled else None
        if not enabled:
            return
        log_dir = os.path.join(run_dir, rundir.LOG_DIR)
        _truncate_metrics(self.path, start_step)
        _truncate_events(log_dir, start_step)
        self.writer = tf.summary.create_file_writer(log_dir)

    def log(self, step, values):
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        self.writer.flush()
        if self.progress is not None:
            self.progress.record(step, values)

    def log_validation(self, step, loss, metrics=None):
        """The validation loss and perplexity (nothing for an empty split)
        and `val_<name>` of each of `train.eval_metrics`, on one line."""
        from keras_llm.training import validation

        values = validation.logged_values(loss, metrics or {})
        if values:
            self.log(step, values)

    def end_step(self):
        """Shows the progress line if this step logged anything."""
        if self.progress is not None:
            self.progress.show()

    def close(self):
        if self.progress is not None:
            self.progress.close()


class Progress:
    """One progress line: rewritten in place on a terminal, a line per log
    interval otherwise (no control characters in a log file)."""

    def __init__(self, total_steps, stream=None):
        self.total = total_steps
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.values = {}
        self.step = 0
        self.pending = False
        self.timing = None  # (perf_counter, step) where timing started

    def start_timing(self, step):
        """Times the steps from here (after the compiling first one)."""
        self.timing = (time.perf_counter(), step)

    def eta(self):
        if self.timing is None or self.step <= self.timing[1]:
            return ""
        start, first = self.timing
        per_step = (time.perf_counter() - start) / (self.step - first)
        return format_duration((self.total - self.step) * per_step)

    def record(self, step, values):
        self.step = step
        self.values.update(values)
        self.pending = True

    def show(self):
        if not self.pending:
            return
        self.pending = False
        line = self.render()
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def render(self):
        width = len(str(self.total))
        parts = [f"step {self.step:>{width}}/{self.total}"]
        for name in ("loss", "val_loss", "val_ppl"):
            if name in self.values:
                parts.append(f"{name} {self.values[name]:.4f}")
        for name, value in self.values.items():  # train.eval_metrics
            if name.startswith("val_") and name not in ("val_loss", "val_ppl"):
                parts.append(f"{name} {value:.2f}")
        if "lr" in self.values:
            parts.append(f"lr {self.values['lr']:.2e}")
        if "tokens/s" in self.values:
            parts.append(f"{self.values['tokens/s']:,.0f} tokens/s")
        eta = self.eta()
        if eta and self.step < self.total:
            parts.append(f"ETA {eta}")
        return "  ".join(parts)

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def format_duration(seconds):
    """`12s`, `3m12s`, `5h04m`, `49 days`."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds / 86400:,.0f} days"


def _truncate_metrics(path, start_step):
    """Keeps the lines up to the restored step (none for a fresh start, so
    a re-run step-0 evaluation is not logged twice); a line cut short by a
    kill is dropped."""
    kept = []
    if start_step > 0 and os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if row.get("step", 0) <= start_step:
                    kept.append(json.dumps(row) + "\n")
    with open(path + ".tmp", "w") as f:
        f.writelines(kept)
    os.replace(path + ".tmp", path)


def _truncate_events(log_dir, start_step):
    """Drops TensorBoard events past the restored step from every event
    file (all of them for a fresh start); each file is rewritten to a
    temporary name and renamed over the original."""
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        if path.endswith(".tmp"):
            os.remove(path)
            continue
        if start_step == 0:
            os.remove(path)
            continue
        records, dropped = [], False
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                event = tf.compat.v1.Event.FromString(record)
                if event.HasField("summary") and event.step > start_step:
                    dropped = True
                else:
                    records.append(record)
        except tf.errors.DataLossError:  # the record a kill cut short
            dropped = True
        if dropped:
            with tf.io.TFRecordWriter(path + ".tmp") as writer:
                for record in records:
                    writer.write(record)
            os.replace(path + ".tmp", path)
