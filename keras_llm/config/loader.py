"""Loading and dumping experiment configs (YAML).

Values resolve as dataclass defaults <- YAML <- `--set section.key=value`.
Every problem is reported in one `ConfigError`, one per line, shaped
`<file>: <dotted.key>: <problem>. Received: <value> (hint)`.
"""

import dataclasses
import os
from collections.abc import Iterable
from typing import Any

import yaml

from keras_llm.config import zoo
from keras_llm.config.checks import _check_type
from keras_llm.config.errors import _MISSING
from keras_llm.config.errors import _NOTHING
from keras_llm.config.errors import _TYPE
from keras_llm.config.errors import _UNKNOWN
from keras_llm.config.errors import _VALUE
from keras_llm.config.errors import ConfigError
from keras_llm.config.errors import Problem
from keras_llm.config.errors import _did_you_mean
from keras_llm.config.errors import _problem
from keras_llm.config.errors import _unknown
from keras_llm.config.schema import MODEL_CONFIGS
from keras_llm.config.schema import SECTIONS
from keras_llm.config.schema import DataConfig
from keras_llm.config.schema import ExperimentConfig
from keras_llm.config.schema import RuntimeConfig
from keras_llm.config.schema import TrainConfig
from keras_llm.config.schema import arch_of


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """Parses one `--set` override.

    Args:
        text: `"section.key=value"`. The value is parsed as YAML, so
            `model.dropout=0.0` gives a float and `data.tokenizer=null` None.

    Returns:
        The key path, e.g. `("model", "dropout")`, and the parsed value.

    Raises:
        ConfigError: if `=` is missing, the key is empty, or the value is not
            valid YAML.
    """
    key, sep, value = text.partition("=")
    path = tuple(part.strip() for part in key.split("."))
    if not sep or not all(path):
        raise ConfigError(
            "--set: expected SECTION.KEY=VALUE, e.g. model.dropout=0.0. "
            f"Received: {text!r}"
        )
    try:
        return path, yaml.safe_load(value)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(
            [_problem(key, f"invalid YAML ({problem})", value, at="--set")]
        ) from None


def load_config(
    path_or_name: str | os.PathLike, overrides: Iterable[str] = ()
) -> ExperimentConfig:
    """Loads, merges and validates an experiment config.

    Args:
        path_or_name: a YAML file with the sections `model`, `data`,
            `train` and `runtime` (only `model` is required), or the name of
            a zoo config, e.g. `"t5_small"` (an existing file of that name
            wins; see `zoo.resolve`).
        overrides: `"section.key=value"` strings (`--set`), applied last.

    Returns:
        The frozen `ExperimentConfig`.

    Raises:
        ConfigError: listing every problem, each naming the file (or
            `--set`) and the dotted key; or, in one line, that `path` is
            neither a file nor a zoo name.
    """
    source = zoo.resolve(path_or_name)
    try:
        with open(source, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except OSError as error:
        raise ConfigError(f"{source}: cannot read ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = (
            f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        )
        problem = getattr(error, "problem", None) or "see the YAML spec"
        raise ConfigError(
            f"{source}: {where}invalid YAML ({problem})"
        ) from None
    return config_from_dict(raw, source=source, overrides=overrides)


def config_from_dict(
    raw: Any, source: str = "<dict>", overrides: Iterable[str] = ()
) -> ExperimentConfig:
    """Validates a parsed config mapping; see `load_config`.

    Args:
        raw: the parsed YAML, a mapping of sections.
        source: the name that errors show, usually the file path.
        overrides: `"section.key=value"` strings, applied over `raw`.

    Returns:
        The frozen `ExperimentConfig`.

    Raises:
        ConfigError: listing every problem found.
    """
    overrides = [parse_override(text) for text in overrides]
    expected = "a mapping with sections " + ", ".join(SECTIONS)
    if raw is None:
        raise ConfigError(f"{source}: the file is empty; expected {expected}")
    if not isinstance(raw, dict):
        raise ConfigError(
            [_problem("", f"expected {expected}", raw, at=source)]
        )
    problems: list[Problem] = []
    origin: dict[str, str] = {}  # dotted key -> the file or "--set"
    sections: dict[str, dict] = {}

    def report(
        key, problem, received=_NOTHING, hint="", kind=_VALUE, at=source
    ):
        problems.append(_problem(key, problem, received, hint, kind, at))

    for name, values in raw.items():
        if name not in SECTIONS:
            problems.append(_unknown(str(name), SECTIONS, values, source))
        elif values is not None and not isinstance(values, dict):
            report(name, "expected a mapping", values, kind=_TYPE)
        else:  # an empty section (`runtime:`) reads as None
            sections[name] = dict(values or {})
            origin.update({f"{name}.{key}": source for key in sections[name]})
    for path, value in overrides:
        key = ".".join(path)
        if path[0] not in SECTIONS:
            problems.append(_unknown(key, SECTIONS, value, "--set", path[0]))
        elif len(path) != 2:
            report(
                key, "expected SECTION.KEY", value, kind=_UNKNOWN, at="--set"
            )
        elif path[0] in sections or path[0] not in raw:
            sections.setdefault(path[0], {})[path[1]] = value
            origin[key] = "--set"
    classes = dict(data=DataConfig, train=TrainConfig, runtime=RuntimeConfig)
    arch = sections.get("model", {}).pop("arch", None)
    at = origin.get("model.arch", source)
    if "model" not in sections:
        if "model" not in raw:  # (else it was reported as not a mapping)
            report("model", "required section is missing", kind=_MISSING)
    elif isinstance(arch, str) and arch in MODEL_CONFIGS:
        classes["model"] = MODEL_CONFIGS[arch]
    elif arch is None:
        hint = "one of: " + ", ".join(MODEL_CONFIGS)
        problem = "required key is missing"
        report("model.arch", problem, hint=hint, kind=_MISSING, at=at)
    else:
        hint = _did_you_mean(arch, MODEL_CONFIGS)
        report("model.arch", f"unknown arch ({hint})", arch, at=at)
    built = {}
    for name, cls in classes.items():
        if name in sections:
            built[name] = _build(cls, sections[name], origin, source)
            if isinstance(built[name], list):
                problems.extend(built[name])
    if problems:
        raise ConfigError(problems)
    try:  # checks across sections, e.g. data.objective against model.arch
        return ExperimentConfig(**built)
    except ConfigError as error:  # name where each key came from
        raise ConfigError(
            dataclasses.replace(p, source=origin.get(p.key, source))
            for p in error.problems
        ) from None


def _build(cls: type, values: dict, origin: dict[str, str], source: str) -> Any:
    """Returns `cls(**values)`, or the list of problems that prevent it."""
    fields = {field.name: field for field in dataclasses.fields(cls)}
    problems = []
    for key, value in values.items():
        dotted = f"{cls.section}.{key}"
        if key not in fields:
            problems.append(_unknown(dotted, fields, value, origin[dotted]))
        elif problem := _check_type(dotted, value, fields[key].type):
            problems.append(dataclasses.replace(problem, source=origin[dotted]))
    for name, field in fields.items():
        required = field.default is field.default_factory is dataclasses.MISSING
        if required and name not in values:
            key, problem = f"{cls.section}.{name}", "required key is missing"
            problems.append(_problem(key, problem, kind=_MISSING, at=source))
    if problems:
        return problems
    try:
        return cls(**values)
    except ConfigError as error:  # value problems: name where each came from
        return [
            dataclasses.replace(p, source=origin.get(p.key, source))
            for p in error.problems
        ]


def to_dict(cfg: ExperimentConfig) -> dict[str, dict[str, Any]]:
    """Returns `cfg` as plain nested dicts; `model` starts with `arch`."""
    raw = {name: dataclasses.asdict(getattr(cfg, name)) for name in SECTIONS}
    raw["model"] = {"arch": arch_of(cfg.model), **raw["model"]}
    return raw


def to_yaml(cfg: ExperimentConfig) -> str:
    """Returns `cfg` as YAML that `load_config` reads back to an equal config.

    PyYAML writes floats as `1.0e-06`, which YAML 1.1 reads back as floats.
    """
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def dump_config(cfg: ExperimentConfig, path: str | os.PathLike) -> None:
    """Writes `cfg` to `path` as YAML (see `to_yaml`)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_yaml(cfg))
