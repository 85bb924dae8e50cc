"""What a validation measures: the loss over the held-out batches
(`steps.make_evaluate`) and, with `train.eval_metrics`, generation metrics
of decoded validation pairs.

The decoding goes through `keras_llm.generation.generate` with the run's
input format (task prefix, truncation), greedy, batched and XLA-compiled
when `runtime.jit_compile` is on, as `kllm evaluate` decodes: one compiled
program per prompt-length bucket, reused at every validation. The training
step is not touched; the decoding runs in inference mode and draws no
random numbers, so a resumed run measures what an uninterrupted one does.
"""

import contextlib
import math

from keras_llm import kinds
from keras_llm.generation import driver


def max_new_tokens(cfg, model):
    """New tokens per example: the target length training uses
    (`data.target_sequence_length`), within a decoder-only model's
    positions."""
    limit = cfg.data.target_sequence_length
    positions = getattr(model, "max_positions", None)
    if model.kind == kinds.CAUSAL and positions is not None:
        limit = min(limit, positions - 1)
    return max(limit, 1)


def make_validate(cfg, state, evaluate):
    """`validate() -> (loss, metrics)`: the validation loss (`None` for an
    empty split) and `{name: value}` of `train.eval_metrics` (empty
    without them, or without validation pairs)."""
    from keras_llm import generation
    from keras_llm.evaluation import metrics as metrics_lib

    names = list(cfg.train.eval_metrics)
    pairs = state.eval_pairs or []
    config = generation.GenerationConfig(
        max_new_tokens=max_new_tokens(cfg, state.model)
    )
    batch_size = min(state.memory_plan.micro_batch_size, max(len(pairs), 1))
    calls = []

    def validate():
        loss = evaluate(state.validation_data)
        if not names or not pairs:
            return loss, {}
        inputs = [source for source, _ in pairs]
        references = [target for _, target in pairs]
        if state.model.kind == kinds.CLASSIFIER:
            predictions, _ = state.model.classify(
                inputs, batch_size, input_format=state.input_format
            )
            scores, _ = metrics_lib.text_metrics(names, predictions, references)
            return loss, {name: scores[name] for name in names}
        # The warning about inputs the format cuts: at the first
        # validation only, not at every one (the pairs do not change).
        quiet = (
            driver.quiet_cut_warnings() if calls else contextlib.nullcontext()
        )
        with quiet:
            predictions = generation.generate(
                state.model,
                state.input_format,
                inputs,
                config,
                jit_compile=cfg.runtime.jit_compile,
                batch_size=batch_size,
            )
        calls.append(1)
        scores, _ = metrics_lib.text_metrics(names, predictions, references)
        return loss, {name: scores[name] for name in names}

    return validate


def logged_values(loss, metrics):
    """The scalars a validation logs: `val_loss`, `val_ppl` and `val_<name>`
    of each metric (what `train.best_metric` names)."""
    values = {}
    if loss is not None:
        values["val_loss"] = loss
        values["val_ppl"] = math.exp(min(loss, 50.0))
    values.update({f"val_{name}": value for name, value in metrics.items()})
    return values
