"""`GenerationConfig`: the decoding parameters, validated (no TensorFlow)."""

import dataclasses
import math

from keras_llm import kinds

# The most new tokens per prompt for a model without a position table (T5's
# relative positions, the Transformer's sinusoids): the KV cache holds this
# many slots per row, so the bound keeps a typo from allocating the machine.
MAX_NEW_TOKENS = 4096


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """How to decode; the names and meanings of Hugging Face's `generate`.

    Greedy by default. `num_beams > 1` selects beam search, `do_sample=True`
    sampling (with `num_beams > 1`: beam sampling, as in Hugging Face).

    Args:
        max_new_tokens: int. Tokens to generate per prompt, EOS included.
        num_beams: int. Beams per prompt; 1 means no beam search.
        length_penalty: float. Beam search: a finished hypothesis scores
            `sum(log p) / length ** length_penalty`, its length counting the
            generated tokens only. Above 0 favours longer outputs.
        early_stopping: bool or `"never"`. Beam search: `True` stops a
            prompt as soon as `num_beams` hypotheses are finished; `False`
            stops when no running beam can beat the worst finished one
            (judged at the current length); `"never"` judges it at
            `max_new_tokens` when `length_penalty > 0`.
        do_sample: bool. Sample instead of taking the most likely token.
        temperature: float. Sampling: divide the logits by it (> 0).
        top_k: int. Sampling: keep the `top_k` most likely tokens; 0 keeps
            all.
        top_p: float. Sampling: keep the smallest set of most likely tokens
            whose probability reaches `top_p` (nucleus); 1.0 keeps all.
        seed: int or `None`. Sampling: the same seed gives the same sample
            (stateless RNG); `None` draws a fresh one per call.
    """

    max_new_tokens: int = 32
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self):
        problems = list(self._problems())
        if problems:
            raise ValueError(
                "Invalid generation config: " + "; ".join(problems)
            )

    def _problems(self):
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            yield (
                "`max_new_tokens` must be an int >= 1. Received: "
                f"max_new_tokens={self.max_new_tokens!r}"
            )
        if not _is_int(self.num_beams) or self.num_beams < 1:
            yield (
                "`num_beams` must be an int >= 1. Received: "
                f"num_beams={self.num_beams!r}"
            )
        if not _is_number(self.length_penalty):
            yield (
                "`length_penalty` must be a finite number. Received: "
                f"length_penalty={self.length_penalty!r}"
            )
        if self.early_stopping not in (True, False, "never"):
            yield (
                "`early_stopping` must be True, False or 'never'. "
                f"Received: early_stopping={self.early_stopping!r}"
            )
        if not isinstance(self.do_sample, bool):
            yield (
                "`do_sample` must be a bool. Received: "
                f"do_sample={self.do_sample!r}"
            )
        if not _is_number(self.temperature) or self.temperature <= 0:
            yield (
                "`temperature` must be a number > 0. Received: "
                f"temperature={self.temperature!r}"
            )
        if not _is_int(self.top_k) or self.top_k < 0:
            yield f"`top_k` must be an int >= 0. Received: top_k={self.top_k!r}"
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
            yield (f"`top_p` must be in (0, 1]. Received: top_p={self.top_p!r}")
        if self.seed is not None and (
            not _is_int(self.seed) or not 0 <= self.seed < 2**31
        ):
            yield (
                "`seed` must be None or an int in [0, 2**31). Received: "
                f"seed={self.seed!r}"
            )
        # Parameters that would silently do nothing are mistakes.
        if not self.do_sample:
            unused = [
                f"{name}={getattr(self, name)!r}"
                for name, default in (
                    ("temperature", 1.0),
                    ("top_k", 0),
                    ("top_p", 1.0),
                    ("seed", None),
                )
                if getattr(self, name) != default
            ]
            if unused:
                yield (
                    f"{', '.join(unused)} only apply when sampling: set "
                    "do_sample=True"
                )
        if self.num_beams == 1:
            unused = [
                f"{name}={getattr(self, name)!r}"
                for name, default in (
                    ("length_penalty", 1.0),
                    ("early_stopping", False),
                )
                if getattr(self, name) != default
            ]
            if unused:
                yield (
                    f"{', '.join(unused)} only apply to beam search: set "
                    "num_beams > 1"
                )

    @property
    def is_beam_search(self):
        return self.num_beams > 1

    def replace(self, **changes):
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)


def max_new_tokens_problem(max_new_tokens, kind, max_positions=None):
    """What is wrong with `max_new_tokens` for a model, or `None`.

    A decoder-only model with a position table (`max_positions`, e.g.
    GPT-2's `model.max_sequence_length`) generates at most `max_positions`
    tokens, which leaves one position for the prompt; any other model at
    most `MAX_NEW_TOKENS`. A masked LM does not generate: no limit.

    Args:
        max_new_tokens: int.
        kind: the model's kind (`keras_llm.kinds`).
        max_positions: the model's position table length, or `None`.

    Returns:
        The problem as a phrase for the caller to prefix with the name the
        user wrote (`--max-new-tokens`, `max_new_tokens`), or `None`.
    """
    if kind == kinds.MASKED:
        return None
    if kind == kinds.CAUSAL and max_positions is not None:
        if max_new_tokens > max_positions:
            return (
                f"{max_new_tokens} leaves no position for the prompt: the "
                f"model has {max_positions} positions "
                f"(model.max_sequence_length); use at most {max_positions}"
            )
        return None
    if max_new_tokens > MAX_NEW_TOKENS:
        return (
            f"{max_new_tokens} is more than {MAX_NEW_TOKENS}, the most a "
            "model without a position table generates per prompt; use at "
            f"most {MAX_NEW_TOKENS}"
        )
    return None
