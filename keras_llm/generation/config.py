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


# Settings that do something only when sampling / in beam search, with the
# defaults that mean "not set".
_SAMPLING_DEFAULTS = {
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "seed": None,
}
_BEAM_DEFAULTS = {"length_penalty": 1.0, "early_stopping": False}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a `GenerationConfig`, kept by field name, so a
    caller can word it in its own names (`kllm` says `--top-k`).

    Attributes:
        fields: tuple of str. The fields at fault, e.g. `("temperature",)`.
        rule: str or `None`. For a bad value: what the field must be, e.g.
            `"an int >= 1"`.
        needs: str or `None`. For settings that would do nothing: the
            field that makes them count, `"do_sample"` (sampling) or
            `"num_beams"` (beam search, `num_beams > 1`).
    """

    fields: tuple
    rule: str | None = None
    needs: str | None = None

    def describe(self, config):
        """The problem in Python's terms, with the values of `config`."""
        if self.rule is not None:
            name = self.fields[0]
            value = getattr(config, name)
            return f"`{name}` must be {self.rule}. Received: {name}={value!r}"
        settings = ", ".join(
            f"{name}={getattr(config, name)!r}" for name in self.fields
        )
        verb = "applies" if len(self.fields) == 1 else "apply"
        if self.needs == "do_sample":
            return f"{settings} only {verb} when sampling: set do_sample=True"
        return f"{settings} only {verb} to beam search: set num_beams > 1"


class GenerationConfigError(ValueError):
    """An invalid `GenerationConfig`; the message in Python's terms.

    Attributes:
        problems: tuple of `Problem`, for callers that name the fields
            their own way.
    """

    def __init__(self, config, problems):
        self.problems = tuple(problems)
        super().__init__(
            "Invalid generation config: "
            + "; ".join(problem.describe(config) for problem in self.problems)
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
            raise GenerationConfigError(self, problems)

    def _problems(self):
        """The `Problem`s of this config, in field order."""
        rules = (
            (
                "max_new_tokens",
                "an int >= 1",
                _is_int(self.max_new_tokens) and self.max_new_tokens >= 1,
            ),
            (
                "num_beams",
                "an int >= 1",
                _is_int(self.num_beams) and self.num_beams >= 1,
            ),
            (
                "length_penalty",
                "a finite number",
                _is_number(self.length_penalty),
            ),
            (
                "early_stopping",
                "True, False or 'never'",
                self.early_stopping in (True, False, "never"),
            ),
            ("do_sample", "a bool", isinstance(self.do_sample, bool)),
            (
                "temperature",
                "a number > 0",
                _is_number(self.temperature) and self.temperature > 0,
            ),
            ("top_k", "an int >= 0", _is_int(self.top_k) and self.top_k >= 0),
            (
                "top_p",
                "in (0, 1]",
                _is_number(self.top_p) and 0 < self.top_p <= 1,
            ),
            (
                "seed",
                "None or an int in [0, 2**31)",
                self.seed is None
                or (_is_int(self.seed) and 0 <= self.seed < 2**31),
            ),
        )
        for name, rule, ok in rules:
            if not ok:
                yield Problem((name,), rule=rule)
        # Parameters that would silently do nothing are mistakes.
        for needs, active, defaults in (
            ("do_sample", bool(self.do_sample), _SAMPLING_DEFAULTS),
            ("num_beams", self.num_beams != 1, _BEAM_DEFAULTS),
        ):
            unused = tuple(
                name
                for name, default in defaults.items()
                if getattr(self, name) != default
            )
            if unused and not active:
                yield Problem(unused, needs=needs)

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
