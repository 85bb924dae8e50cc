"""`train(cfg, run_dir)`: prepare, restore, then the training loop."""

import dataclasses
import logging
import math
import time

from keras_llm.training import logs
from keras_llm.training import prepare
from keras_llm.training import state as state_lib
from keras_llm.training import steps

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    step: int
    train_loss: float | None
    validation_loss: float | None


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
        progress: show a progress bar (the CLI sets it).

    Returns:
        `TrainResult`.

    Raises:
        ValueError, FileNotFoundError, PermissionError: bad input, before
            anything is written.
        FloatingPointError: the loss became NaN/Inf; the last good
            checkpoint is kept.
    """
    prepared = prepare.prepare(cfg, run_dir)
    state = state_lib.restore(cfg, run_dir, prepared)
    step_fn = steps.make_step_fn(
        cfg,
        prepared.strategy,
        state.model,
        state.optimizer,
        prepared.num_workers,
    )
    evaluate = steps.make_evaluate(cfg, state.model)
    log = logs.Logger(
        run_dir,
        int(state.step),
        cfg.train.train_steps,
        prepared.is_chief,
        progress,
    )
    return _loop(cfg, run_dir, prepared, state, step_fn, evaluate, log)


def _loop(cfg, run_dir, prepared, state, step_fn, evaluate, log):
    settings = cfg.train
    step = state.step
    validation_data = prepared.validation_data
    train_loss = validation_loss = None
    if int(step) == 0:  # the baseline the validation curve falls from
        validation_loss = evaluate(validation_data)
        _warn_if_empty(validation_loss)
        log.log_validation(0, validation_loss)
    interval_start, tokens_seen = time.perf_counter(), 0
    while int(step) < settings.train_steps:
        loss, tokens = step_fn(state.iterator)
        loss = float(loss)
        if not math.isfinite(loss):
            last = state.manager.latest_checkpoint or "none yet"
            raise FloatingPointError(
                f"The loss became {loss} at step {int(step) + 1}. Stopped; "
                f"the last good checkpoint is kept ({last}). Lower "
                "train.learning_rate, set train.gradient_clip_norm, or use "
                "runtime.mixed_precision: mixed_bfloat16."
            )
        step.assign_add(1)
        state.loss_total.assign_add(loss)
        state.loss_steps.assign_add(1.0)
        tokens_seen += int(tokens)
        current = int(step)
        last_step = current == settings.train_steps
        if current % settings.log_interval_steps == 0 or last_step:
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
        if current % settings.eval_interval_steps == 0 or last_step:
            validation_loss = evaluate(validation_data)
            log.log_validation(current, validation_loss)
        if current % settings.checkpoint_interval_steps == 0 or last_step:
            state.save()
        if tokens_seen == 0:  # a new logging interval: time only training
            interval_start = time.perf_counter()
    return TrainResult(run_dir, int(step), train_loss, validation_loss)


def _learning_rate(optimizer):
    rate = optimizer.learning_rate
    if callable(rate):
        return float(rate(optimizer.iterations - 1))
    return float(rate)


def _warn_if_empty(validation_loss):
    if validation_loss is None:
        logger.warning("The validation split is empty: no validation loss.")
