"""The checks shared by the config dataclasses, and their base `_Section`.

Each check can also say what it checks: inside `recording_rules()`, the
value checks of a config (`_Section._check`) record, per field, the rules
they apply, so the reference (`keras_llm.config.reference`, which writes
docs/config.md) shows the checks themselves rather than a copy of them.
"""

import contextlib
import contextvars
import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any
from typing import ClassVar
from typing import NamedTuple

from keras_llm.config.errors import _TYPE
from keras_llm.config.errors import ConfigError
from keras_llm.config.errors import Problem
from keras_llm.config.errors import _did_you_mean
from keras_llm.config.errors import _problem

_NAMES = {int: "an int", float: "a float", str: "a string", bool: "a bool"}
_NAMES[type(None)] = "null"
# PyYAML (YAML 1.1) reads a float only with a dot and a signed exponent.
_STRING_FLOAT = re.compile(r"^([-+]?[0-9]*\.?[0-9]*)[eE]([-+]?[0-9]+)$")


def _accepts(value: Any, tp: Any) -> bool:
    if isinstance(tp, types.UnionType):  # `int | None`
        return any(_accepts(value, arg) for arg in typing.get_args(tp))
    if typing.get_origin(tp) is list:  # `list[str]`: a YAML sequence
        (item,) = typing.get_args(tp)
        return type(value) is list and all(_accepts(v, item) for v in value)
    if tp is float:  # an int is a fine float; a bool is not (type() is exact)
        return type(value) in (int, float)
    return type(value) is tp


def _type_hint(value: Any, tp: Any) -> str:
    if typing.get_origin(tp) is list and isinstance(value, str):
        return f"write a YAML list: [{value}]"
    base = next(t for t in (*typing.get_args(tp), tp) if t is not type(None))
    if isinstance(value, bool) and base is str:
        return "YAML reads unquoted on/off/yes/no as booleans; quote the value"
    if isinstance(value, str) and base is bool:
        return "write true or false without quotes"
    if not isinstance(value, str) or base not in (int, float):
        return ""
    match = _STRING_FLOAT.match(value.strip())
    if match and match.group(1).strip("+-."):
        if base is int and float(value).is_integer():
            return f"write {int(float(value))}"
        mantissa, exponent = match.groups()
        mantissa += "" if "." in mantissa else "."
        mantissa += "0" if mantissa.endswith(".") else ""
        exponent = exponent if exponent[0] in "+-" else "+" + exponent
        fixed = f"{mantissa}e{exponent}"
        return f"YAML 1.1 reads {value} as a string; write {fixed}"
    if value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        return "a quoted number is a string; remove the quotes"
    return ""


class Rule(NamedTuple):
    """What one check allows for one field, as `recording_rules` gives it.

    `kind` is `"positive"` (`low` 0 with `zero_ok`, else None: above 0),
    `"at_most"` (`low` .. `high`), `"fraction"` ([0, 1)) or `"one_of"`
    (`choices`).
    """

    kind: str
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()


_RULES: contextvars.ContextVar[dict[str, list[Rule]] | None] = (
    contextvars.ContextVar("keras_llm_config_rules", default=None)
)


@contextlib.contextmanager
def recording_rules() -> Iterator[dict[str, list[Rule]]]:
    """Collects the rules of the value checks that run inside it.

    Yields:
        A dict, filled as checks run: field name -> its `Rule`s in order.
        Run a config's checks (build it, or call its `_check`) inside.
    """
    rules: dict[str, list[Rule]] = {}
    token = _RULES.set(rules)
    try:
        yield rules
    finally:
        _RULES.reset(token)


def _record(name: str, rule: Rule) -> None:
    rules = _RULES.get()
    if rules is not None:
        rules.setdefault(name, []).append(rule)


def _check_type(key: str, value: Any, tp: Any) -> Problem | None:
    """Returns the `Problem` if `value` does not match annotation `tp`."""
    if _accepts(value, tp):
        return None
    if typing.get_origin(tp) is list:
        item = _NAMES[typing.get_args(tp)[0]].split()[-1]
        expected = f"a list of {item}s"
    else:
        expected = " or ".join(_NAMES[t] for t in typing.get_args(tp) or (tp,))
    got = _NAMES.get(type(value), f"a {type(value).__name__}")
    problem = f"expected {expected}, got {got}"
    return _problem(key, problem, value, _type_hint(value, tp), _TYPE)


def _positive(cfg: Any, *names: str, zero_ok: bool = False) -> Iterator:
    for name in names:
        _record(name, Rule("positive", low=0 if zero_ok else None))
        value = getattr(cfg, name)
        if value is not None and (value < 0 if zero_ok else value <= 0):
            problem = "must be >= 0" if zero_ok else "must be positive"
            yield _problem(f"{cfg.section}.{name}", problem, value)


def _at_most(cfg: Any, limit: int, *names: str, low: int = 1) -> Iterator:
    """Sizes beyond any machine, refused before they allocate or hang;
    `low` is only shown (`_positive` checks it)."""
    shown = str(limit)
    if limit & (limit - 1) == 0:  # a power of two
        shown = f"2**{limit.bit_length() - 1} = {limit}"
    for name in names:
        _record(name, Rule("at_most", low=low, high=limit))
        value = getattr(cfg, name)
        if value is not None and value > limit:
            key = f"{cfg.section}.{name}"
            yield _problem(key, f"must be in [{low}, {shown}]", value)


def _fraction(cfg: Any, name: str) -> Iterator[Problem]:
    _record(name, Rule("fraction"))
    if not 0 <= getattr(cfg, name) < 1:
        key = f"{cfg.section}.{name}"
        yield _problem(key, "must be in [0, 1)", getattr(cfg, name))


def _one_of(cfg: Any, name: str, allowed: Iterable[str]) -> Iterator[Problem]:
    allowed = tuple(allowed)
    _record(name, Rule("one_of", choices=allowed))
    value = getattr(cfg, name)
    if value not in allowed:
        problem = f"unknown value ({_did_you_mean(value, allowed)})"
        yield _problem(f"{cfg.section}.{name}", problem, value)


def _check_heads(cfg: Any) -> Iterator[Problem]:
    if cfg.num_heads > 0 and cfg.hidden_dim % cfg.num_heads:
        yield _problem(
            "model.hidden_dim",
            "must be divisible by model.num_heads. Received: "
            f"hidden_dim={cfg.hidden_dim}, num_heads={cfg.num_heads}",
        )


class _Section:
    """Base of the config dataclasses: checks types, then values."""

    section: ClassVar[str]  # the YAML section, e.g. "model"

    def __post_init__(self) -> None:
        problems = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            key = f"{self.section}.{field.name}"
            if problem := _check_type(key, value, field.type):
                problems.append(problem)
            elif type(value) is float and not math.isfinite(value):
                problem = "must be a finite number"
                problems.append(_problem(key, problem, value))
            elif type(value) is int and _accepts(0.5, field.type):
                # An int given for a float: store 2.0, so dumps write floats.
                object.__setattr__(self, field.name, float(value))
        # Value checks assume the right types, so they run only then.
        problems = problems or list(self._check())
        if problems:
            raise ConfigError(problems)

    def _check(self) -> Iterator[Problem]:
        """Yields the value problems; subclasses override it."""
        return iter(())
