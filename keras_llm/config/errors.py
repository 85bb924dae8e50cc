"""Config problems: `Problem`, `ConfigError` and the message helpers.

Every problem is shown on one line, shaped
`<file>: <dotted.key>: <problem>. Received: <value> (hint)`.
"""

import dataclasses
import difflib
from collections.abc import Iterable
from typing import Any

# Problem kinds in report order: unknown keys first, then missing ones, so one
# run shows the whole fix list (Model Garden's strict mode).
_UNKNOWN, _MISSING, _TYPE, _VALUE = range(4)
_NOTHING = object()  # "no value received", as distinct from None


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, kept structured until it is shown."""

    key: str  # dotted key, e.g. "model.num_heads"; "" for the whole file
    message: str  # "<problem>. Received: <value> (hint)"
    source: str = ""  # the file, or "--set"
    kind: int = _VALUE

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.source, self.key) if part)
        return f"{where}: {self.message}" if where else self.message


class ConfigError(ValueError):
    """An invalid config; `str(error)` holds one problem per line."""

    def __init__(self, problems: str | Iterable[Problem]):
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        self.problems = tuple(sorted(problems, key=lambda p: p.kind))
        super().__init__("\n".join(map(str, self.problems)))


def _problem(
    key: str,
    problem: str,
    received: Any = _NOTHING,
    hint: str = "",
    kind: int = _VALUE,
    at: str = "",
) -> Problem:
    """Formats `<problem>. Received: <value> (hint)`; `at` is the source."""
    if received is not _NOTHING:
        text = repr(received)
        problem += (
            f". Received: {text if len(text) < 60 else text[:56] + '...'}"
        )
    return Problem(key, problem + (f" ({hint})" if hint else ""), at, kind)


def _did_you_mean(name: object, allowed: Iterable[str]) -> str:
    matches = difflib.get_close_matches(str(name), list(allowed), n=1)
    if matches:
        return f"did you mean '{matches[0]}'?"
    return "allowed: " + ", ".join(allowed)


def _unknown(
    key: str, allowed: Iterable[str], value: Any, at: str, name: str = ""
) -> Problem:
    """An unknown key, with the closest allowed one (or the list)."""
    hint = _did_you_mean(name or key.rpartition(".")[2], allowed)
    return _problem(key, f"unknown key ({hint})", value, "", _UNKNOWN, at)
