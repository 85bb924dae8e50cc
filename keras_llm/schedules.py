"""Learning-rate schedules (pure functions of the step, as Keras schedules)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_llm")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `learning_rate`, then a decay.

    Args:
        learning_rate: float. The peak rate, reached at `warmup_steps`.
        warmup_steps: int. Linear warmup length (0: none).
        decay: str. `"constant"`, `"inverse_sqrt"` (rate ·
            sqrt(warmup / step) after warmup; Vaswani et al. and T5) or
            `"cosine"` (to 0 at `total_steps`).
        total_steps: int. The run's length (for cosine).
    """

    def __init__(
        self, learning_rate, warmup_steps, decay="constant", total_steps=1
    ):
        if decay not in ("constant", "inverse_sqrt", "cosine"):
            raise ValueError(
                "`decay` must be 'constant', 'inverse_sqrt' or 'cosine'. "
                f"Received: decay={decay!r}"
            )
        self.learning_rate = learning_rate
        self.warmup_steps = warmup_steps
        self.decay = decay
        self.total_steps = total_steps

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0  # the step being taken, 1-based
        warmup = float(max(self.warmup_steps, 0))
        if warmup > 0:
            factor = ops.minimum(step / warmup, 1.0)
        else:
            factor = ops.ones_like(step)
        if self.decay == "inverse_sqrt":
            factor = factor * ops.sqrt(
                max(warmup, 1.0) / ops.maximum(step, max(warmup, 1.0))
            )
        elif self.decay == "cosine":
            span = max(float(self.total_steps) - warmup, 1.0)
            progress = ops.clip((step - warmup) / span, 0.0, 1.0)
            factor = factor * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return self.learning_rate * factor

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "total_steps": self.total_steps,
        }


def make_optimizer(train, mixed_precision="float32"):
    """The optimizer of a `TrainConfig` (with loss scaling for float16).

    Gradient clipping is not set here: the training loop clips the
    all-reduced gradients by their global norm.
    """
    schedule = WarmupSchedule(
        train.learning_rate,
        train.warmup_steps,
        train.schedule,
        train.train_steps,
    )
    decay = train.weight_decay or None
    if train.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(
            learning_rate=schedule, weight_decay=train.weight_decay
        )
    elif train.optimizer == "lamb":
        optimizer = keras.optimizers.Lamb(
            learning_rate=schedule, weight_decay=decay
        )
    else:
        optimizer = keras.optimizers.Adafactor(
            learning_rate=schedule, weight_decay=decay
        )
    if mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
