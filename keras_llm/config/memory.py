"""A training step's peak memory, estimated before anything runs, and the
micro-batch that fits.

The estimate is deliberately simple and errs high: per token and layer it
counts the tensors a transformer block keeps for the backward pass (the
projections, the feed-forward activations, the attention scores and
probabilities, dropout masks), plus the float32 logits of every target
token, plus the weights, their gradients and the optimizer's slots. For
T5-small at 512/114 tokens it gives 0.43 GB per example, above the
0.32 GB XLA asked for (41 GB at the paper's batch of 128). No TensorFlow
here: `kllm validate` prints it; the device's budget comes from
`keras_llm.distribute.device_budget`.
"""

import dataclasses

from keras_llm import kinds

GB = 1024**3
# TensorFlow's runtime, XLA's compiled programs and the input pipeline.
_OVERHEAD_BYTES = 1 * GB
# Bytes per parameter beyond the weight: its gradient, then the slots.
_SLOT_BYTES = {"adamw": 8, "lamb": 8, "adafactor": 2}


def activation_bytes(model, data):
    """Bytes of activations one training example keeps for the backward
    pass.

    Args:
        model: the model config (`keras_llm.config`).
        data: the `DataConfig` (its sequence lengths).
    """
    d = model.hidden_dim
    f = model.intermediate_dim * (
        1.5 if getattr(model, "use_gated_activation", False) else 1
    )
    h = model.num_heads
    layers = model.num_layers
    decoder_layers = getattr(model, "num_decoder_layers", None) or layers
    if model.kind == kinds.SEQ2SEQ:
        source, target = data.sequence_length, data.target_sequence_length
    else:
        source, target = 0, data.sequence_length

    def block(tokens, keys, cross=0):
        # Projections, norms, residuals and dropout masks ~16 D (24 D with
        # cross-attention), the feed-forward 3 F, scores + probabilities +
        # dropout 3 H per key.
        width = (16 + 8 * (cross > 0)) * d + 3 * f + 3 * h * (keys + cross)
        return tokens * width

    encoder = block(source, source)
    decoder = block(target, target, cross=source)
    kept = layers * encoder + decoder_layers * decoder
    kept += 2 * d * (source + target)
    # 4 bytes whatever the policy: under mixed precision the norms,
    # softmaxes, dropout masks and residual sums stay float32 (measured:
    # T5-small used as much memory in mixed_bfloat16 as in float32).
    compute = 4
    # Float32 logits, their softmax and its gradient for every target token.
    logits = 3 * model.vocabulary_size * target * 4
    return int(kept * compute + logits)


def fixed_bytes(parameters, optimizer, accumulation):
    """Weights, gradients, optimizer slots and the gradient accumulators."""
    per_parameter = 4 + 4 + _SLOT_BYTES.get(optimizer, 8)
    if accumulation > 1:
        per_parameter += 4
    return parameters * per_parameter + _OVERHEAD_BYTES


@dataclasses.dataclass(frozen=True)
class Plan:
    """The micro-batch a run uses and the memory it expects."""

    micro_batch_size: int  # examples per replica per forward/backward
    accumulation: int  # micro-batches per optimizer step
    peak_bytes: int  # estimated, per replica
    budget_bytes: int | None  # what the replica's device offers
    device: str

    def describe(self):
        budget = (
            f" of {self.budget_bytes / GB:.1f} GB ({self.device})"
            if self.budget_bytes
            else ""
        )
        return (
            f"micro-batch {self.micro_batch_size} x {self.accumulation} "
            f"accumulation steps per replica; estimated peak memory "
            f"{self.peak_bytes / GB:.1f} GB{budget}"
        )


def plan_micro_batch(cfg, parameters, per_replica, budget, device):
    """Picks `train.micro_batch_size` (auto: the largest that fits).

    Args:
        cfg: the `ExperimentConfig`.
        parameters: the model's parameter count.
        per_replica: examples per replica per optimizer step.
        budget: bytes one replica may use, or `None` if unknown.
        device: words for the device, for messages.

    Raises:
        ValueError: one example does not fit, or a set micro-batch does not
            divide the replica's share; with the fixes.
    """
    train = cfg.train
    example = activation_bytes(cfg.model, cfg.data)

    def peak(micro):
        return (
            fixed_bytes(parameters, train.optimizer, per_replica // micro)
            + micro * example
        )

    setting = train.micro_batch_size
    if setting == "global":
        micro = per_replica
    elif setting == "auto":
        divisors = [m for m in range(per_replica, 0, -1) if not per_replica % m]
        fitting = [m for m in divisors if budget is None or peak(m) <= budget]
        if not fitting:
            raise ValueError(
                f"Out of memory before the first step: one example needs "
                f"about {peak(1) / GB:.1f} GB ({example / GB:.2f} GB of "
                f"activations, {parameters:,} parameters with "
                f"{train.optimizer}); {device} has {budget / GB:.1f} GB. "
                "Shorten data.sequence_length / "
                "data.target_sequence_length, or pick a smaller zoo model."
            )
        micro = fitting[0]
    else:
        micro = setting
        if per_replica % micro:
            raise ValueError(
                f"train.micro_batch_size: {micro} does not divide the "
                f"{per_replica} examples of each replica "
                f"(train.global_batch_size / replicas); use a divisor of "
                f"{per_replica}, or auto."
            )
    return Plan(micro, per_replica // micro, peak(micro), budget, device)


def summary(cfg, parameters=None):
    """One line for `kllm validate`: activations per example, the fixed
    part when the parameter count is known, and the whole batch's need."""
    example = activation_bytes(cfg.model, cfg.data)
    batch = cfg.train.global_batch_size
    text = f"Memory estimate: {_size(example)} of activations per example"
    if parameters:
        fixed = fixed_bytes(parameters, cfg.train.optimizer, 1)
        whole = fixed + batch * example
        text += (
            f"; {parameters:,} parameters with {cfg.train.optimizer} "
            f"{_size(fixed - _OVERHEAD_BYTES)}; the batch of {batch} at "
            f"once {_size(whole)}"
        )
    return text + (
        " (kllm train picks the micro-batch that fits the device, "
        "train.micro_batch_size: auto)."
    )


def _size(num_bytes):
    if num_bytes < 0.1 * GB:
        return f"{num_bytes / 1024**2:.1f} MB"
    return f"{num_bytes / GB:.2f} GB"
