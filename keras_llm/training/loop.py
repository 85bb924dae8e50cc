"""`train(cfg, run_dir)`: prepare, build, commit, then the training loop.

Ctrl-C (SIGINT) and SIGTERM (preemption) finish the current step, write a
checkpoint and return; the same command resumes exactly from it. A second
Ctrl-C stops at once.

A step only dispatches work: its loss stays on the device until a log,
validation or checkpoint step (or one of the steps that time the ETA) reads
the losses of the steps since in one transfer. A loss that is not finite
stops the run there, naming the step that produced it; no checkpoint is
written after it.
"""

import dataclasses
import logging
import math
import signal
import threading
import time

import tensorflow as tf

from keras_llm import rundir
from keras_llm.training import logs
from keras_llm.training import prepare as prepare_lib
from keras_llm.training import state as state_lib
from keras_llm.training import steps
from keras_llm.training import validation

logger = logging.getLogger(__name__)

_TIMED_STEPS = 1  # steps timed (after the compiling first one) for the ETA
_LONG_RUN_SECONDS = 24 * 3600


class OutOfMemoryError(state_lib.TrainingError):
    """A step ran out of device memory (the estimate was too low)."""


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    step: int
    train_loss: float | None
    validation_loss: float | None
    interrupted: str | None = None  # the signal's name, if one stopped it
    checkpoint: str | None = None  # the newest checkpoint written
    # Why early stopping ended the run (one line), or None.
    stopped_early: str | None = None
    # The best validation: {"metric", "value", "step", "path"}, or None.
    best: dict | None = None


def train(cfg, run_dir, *, progress=False):
    """Trains `cfg` into `run_dir`, resuming from its checkpoints if any.

    Example:
    ```python
    cfg = keras_llm.config.load_config("t5_tiny")
    keras_llm.train(cfg, "runs/t5_tiny")
    ```

    Args:
        cfg: `ExperimentConfig`.
        run_dir: the run directory (created; resumed if it holds one).
        progress: show a progress line on stderr (the CLI sets it).

    Returns:
        `TrainResult`; `interrupted` names the signal when Ctrl-C or
        SIGTERM stopped the run (after a checkpoint); `stopped_early` says
        why `train.early_stopping_patience` stopped it; `best` is the best
        validation (`checkpoints/best/`).

    Raises:
        ValueError, FileNotFoundError, PermissionError: bad input, found
            before anything is written into `run_dir`.
        FloatingPointError: the loss became NaN/Inf; the last good
            checkpoint is kept.
    """
    prepared = prepare_lib.prepare(cfg, run_dir)
    try:
        state = state_lib.build(cfg, run_dir, prepared)
    except BaseException:
        prepare_lib.remove_scratch(prepared.tokenizer_scratch)
        raise
    state_lib.commit(cfg, run_dir, prepared, state)
    _announce(cfg, prepared, state)
    step_fn = steps.make_step_fn(
        cfg,
        prepared.strategy,
        state.model,
        state.optimizer,
        prepared.num_workers,
        state.memory_plan.accumulation,
    )
    evaluate = validation.make_validate(
        cfg, state, steps.make_evaluate(cfg, state.model)
    )
    log = logs.Logger(
        run_dir,
        int(state.step),
        cfg.train.train_steps,
        prepared.is_chief,
        progress,
    )
    try:
        with _StopSignals() as stop:
            return _loop(cfg, run_dir, state, step_fn, evaluate, log, stop)
    finally:
        log.close()


def _announce(cfg, prepared, state):
    step = int(state.step)
    if state.restored_from and not state.fine_tuning:
        logger.info(
            "Resumed from %s (step %d of %d).",
            state.restored_from,
            step,
            cfg.train.train_steps,
        )
    elif state.fine_tuning:
        logger.info(
            "Fine-tuning the weights of %s; starting at step 0 of %d.",
            state.restored_from,
            cfg.train.train_steps,
        )
    else:
        logger.info("Starting at step 0 of %d.", cfg.train.train_steps)
    replicas = prepared.strategy.num_replicas_in_sync
    tokens = cfg.train.global_batch_size * cfg.data.sequence_length
    logger.info(
        "%d replica%s; %s; %s input tokens per step.",
        replicas,
        "" if replicas == 1 else "s",
        state.memory_plan.describe(),
        f"{tokens:,}",
    )


class _StopSignals:
    """Turns SIGINT/SIGTERM into a request to stop after the current step;
    a second SIGINT interrupts at once."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach the main thread only
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name
        # The next Ctrl-C is not caught: it stops the run at once.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


def _validate(evaluate, log, best, step):
    """One validation: measured, logged, and weighed for the best
    checkpoint and early stopping. Returns the validation loss."""
    loss, metrics = evaluate()
    log.log_validation(step, loss, metrics)
    best.update(step, validation.logged_values(loss, metrics))
    return loss


def _loop(cfg, run_dir, state, step_fn, evaluate, log, stop):
    settings = cfg.train
    step = state.step
    best = state.best
    train_loss = validation_loss = None
    checkpoint = state.restored_from

    def result(interrupted=None, stopped_early=None):
        return TrainResult(
            run_dir,
            int(step),
            train_loss,
            validation_loss,
            interrupted,
            checkpoint,
            stopped_early,
            best.summary(),
        )

    if best.exhausted:  # stopped early before: as a finished run, no step
        message = best.stop_message(int(step))
        logger.warning(message)
        return result(stopped_early=message)
    if int(step) == 0:  # the baseline the validation curve falls from
        validation_loss = _validate(evaluate, log, best, 0)
        if validation_loss is None:
            logger.warning(
                "The validation split holds no example (too few documents "
                "for one of data.sequence_length tokens): raise "
                "data.validation_fraction or set data.validation_files."
            )
        log.end_step()
    interval_start, tokens_seen = time.perf_counter(), 0
    last_save = time.monotonic()
    first_step = int(step)
    unread = _Unread(first_step)

    def read():
        """Reads the unread steps back; stops the run at a loss that is
        not finite. Returns their input tokens."""
        try:
            tokens, bad = unread.read(state)
        except tf.errors.ResourceExhaustedError:
            raise OutOfMemoryError(_out_of_memory(cfg, state)) from None
        if bad is not None:
            bad_step, value = bad
            raise FloatingPointError(
                f"The loss became {value} at step {bad_step}. Stopped; the "
                f"last good checkpoint is kept ({checkpoint or 'none yet'}). "
                "Lower train.learning_rate, set train.gradient_clip_norm, or "
                "use runtime.mixed_precision: mixed_bfloat16."
            )
        return tokens

    timer = None
    while int(step) < settings.train_steps:
        if int(step) == first_step + 1:  # after the compiling first step
            timer = time.perf_counter()
            if log.progress is not None:
                log.progress.start_timing(first_step + 1)
        try:
            unread.add(*step_fn(state.iterator))
        except tf.errors.ResourceExhaustedError:
            raise OutOfMemoryError(_out_of_memory(cfg, state)) from None
        step.assign_add(1)
        current = int(step)
        last_step = current == settings.train_steps
        log_step = current % settings.log_interval_steps == 0 or last_step
        eval_step = current % settings.eval_interval_steps == 0 or last_step
        if current <= first_step + 1 + _TIMED_STEPS or log_step or eval_step:
            tokens_seen += read()
        if timer is not None and current == first_step + 1 + _TIMED_STEPS:
            _report_speed(cfg, log, current, timer)
        if log_step:
            elapsed = time.perf_counter() - interval_start
            train_loss = float(state.loss_total) / max(
                float(state.loss_steps), 1.0
            )
            log.log(
                current,
                {
                    "loss": train_loss,
                    "tokens/s": tokens_seen / max(elapsed, 1e-9),
                    "lr": _learning_rate(state.optimizer),
                },
            )
            state.loss_total.assign(0.0)
            state.loss_steps.assign(0.0)
            tokens_seen = 0
        if eval_step:
            validation_loss = _validate(evaluate, log, best, current)
        minutes = (time.monotonic() - last_save) / 60
        if (
            current % settings.checkpoint_interval_steps == 0
            or last_step
            or minutes >= settings.checkpoint_interval_minutes
            or stop.received
            or best.exhausted  # a re-run then stops at once, as this one
        ):
            tokens_seen += read()  # the log accumulators are saved
            checkpoint = state.save()
            last_save = time.monotonic()
        log.end_step()
        if best.exhausted:
            message = best.stop_message(current)
            logger.warning(message)
            return result(stopped_early=message)
        if stop.received:
            logger.warning(
                "%s: stopped at step %d and saved %s. Resume with: kllm "
                "train %s",
                stop.received,
                current,
                checkpoint,
                rundir.config_path(run_dir),
            )
            return result(interrupted=stop.received)
        if log_step:  # a new logging interval: time only training
            interval_start = time.perf_counter()
    return result()


class _Unread:
    """The losses and input tokens of the steps not read back yet, as
    tensors: reading waits for the device, so it happens once for many
    steps."""

    def __init__(self, step):
        self.step = step  # the last step read
        self.losses, self.tokens = [], []

    def add(self, loss, tokens):
        self.losses.append(loss)
        self.tokens.append(tokens)

    def read(self, state):
        """Adds the unread losses to the log accumulators, in step order
        (the sums an uninterrupted run makes, whatever the reads).

        Returns:
            `(tokens, bad)`: the steps' input tokens, and `(step, loss)`
            of the first loss that is not finite (`None` if all are).
        """
        if not self.losses:
            return 0, None
        losses, tokens = _to_host(
            (tf.stack(self.losses), tf.stack(self.tokens))
        )
        first, self.step = self.step, self.step + len(self.losses)
        self.losses, self.tokens = [], []
        total = float(state.loss_total)
        for index, loss in enumerate(losses.tolist()):
            if not math.isfinite(loss):
                return 0, (first + 1 + index, loss)
            total += loss
        state.loss_total.assign(total)
        state.loss_steps.assign_add(float(len(losses)))
        return sum(int(t) for t in tokens.tolist()), None


def _to_host(tensors):
    """The one place the loop waits for the device (tests count it)."""
    return tuple(t.numpy() for t in tensors)


def _report_speed(cfg, log, current, timer):
    seconds_per_step = (time.perf_counter() - timer) / _TIMED_STEPS
    remaining = (cfg.train.train_steps - current) * seconds_per_step
    logger.info(
        "%.2f s/step: the remaining %s steps take about %s.",
        seconds_per_step,
        f"{cfg.train.train_steps - current:,}",
        logs.format_duration(remaining),
    )
    if remaining > _LONG_RUN_SECONDS:
        logger.warning(
            "This run would take %s on this machine: for a quick run pick a "
            "smaller zoo file (kllm zoo list) or --set train.train_steps=%d "
            "(about an hour).",
            logs.format_duration(remaining),
            max(int(3600 / seconds_per_step), 1),
        )


def _out_of_memory(cfg, state):
    plan = state.memory_plan
    smaller = max(plan.micro_batch_size // 2, 1)
    return (
        f"Out of memory with a micro-batch of {plan.micro_batch_size} "
        f"(estimated {plan.peak_bytes / 2**30:.1f} GB): set "
        f"train.micro_batch_size: "
        f"{smaller} (the global batch stays {cfg.train.global_batch_size}), "
        "or shorten the sequences; then run the same command to resume."
    )


def _learning_rate(optimizer):
    rate = optimizer.learning_rate
    if callable(rate):
        return float(rate(optimizer.iterations - 1))
    return float(rate)
