"""Loading and dumping experiment configs (YAML).

Values resolve as dataclass defaults <- YAML <- `--set section.key=value`.
Every problem is reported in one `ConfigError`, one per line, shaped
`<file>: <dotted.key>: <problem>. Received: <value> (hint)`.
"""

import dataclasses
import os
from collections.abc import Iterable
from collections.abc import Iterator
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
        return path, _safe_load(value, "--set", prefix=key)
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
            raw = _safe_load(f, source)
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


# More values than any config holds: a file whose aliases expand past this
# (a "billion laughs": 342 bytes, 10**9 strings) is refused before it is built.
MAX_YAML_VALUES = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _safe_load(stream: Any, source: str, prefix: str = "") -> Any:
    """`yaml.safe_load`, refusing what it would take silently.

    The node graph is checked before any Python value is built: duplicate
    keys (YAML keeps the last one without a word) and aliases that expand
    to more than `MAX_YAML_VALUES` values, or into themselves.

    Args:
        stream: the YAML text or an open file.
        source: the file, or `"--set"`, for the messages.
        prefix: the dotted key of the whole text (`--set KEY=VALUE`).

    Raises:
        yaml.YAMLError: the text is not YAML.
        ConfigError: duplicate keys (each naming both lines), a runaway
            expansion, or nesting too deep to parse.
    """
    loader = yaml.SafeLoader(stream)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(
                f"{source}: the YAML is nested too deeply to read; "
                "flatten it (a config is a mapping of sections)"
            ) from None
        if node is None:
            return None
        _check_expansion(node, source)
        duplicates = sorted(
            _duplicate_keys(node, source, prefix), key=lambda item: item[0]
        )
        if duplicates:
            raise ConfigError(problem for _, problem in duplicates)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Counts the values `root` expands to, each alias counted as the
    values it repeats, without expanding anything (nodes reached twice
    are counted once and reused)."""
    sizes: dict[int, int] = {}  # id(node) -> expanded size
    stack = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            sizes[key] = min(total, MAX_YAML_VALUES + 1)
            if total > MAX_YAML_VALUES:
                raise ConfigError(
                    f"{source}: the YAML expands to more than "
                    f"{MAX_YAML_VALUES:,} values (its aliases repeat anchors "
                    "over and over); write the values out instead"
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            line = node.start_mark.line + 1
            raise ConfigError(
                f"{source}: line {line}: an alias refers to the value that "
                "holds it, which would be infinite; write the values out "
                "instead"
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _duplicate_keys(
    root: yaml.Node, source: str, prefix: str = ""
) -> Iterator[tuple[tuple[int, int], Problem]]:
    """A problem per key given twice in one mapping, naming both lines
    (with its line and column, to sort by).

    Keys merged in with `<<` may be overridden (that is what merging is
    for); a key written twice may not."""
    seen: set[int] = set()
    stack = [(root, prefix)]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(
                (child, f"{path}.{i}" if path else str(i))
                for i, child in enumerate(node.value)
            )
            continue
        if not isinstance(node, yaml.MappingNode):
            continue
        lines: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            dotted = f"{path}.{key_node.value}" if path else key_node.value
            stack.append((value_node, dotted))
            if key_node.tag == _MERGE_TAG:
                continue
            line, name = key_node.start_mark.line + 1, key_node.value
            if (key_node.tag, name) not in lines:
                lines[key_node.tag, name] = line
            else:
                first = lines[key_node.tag, name]
                what = "key" if path else "section"
                where = f"lines {first} and {line}"
                where = f"line {line}" if first == line else where
                hint = (
                    "keep one" if path else "merge them into one"
                ) + ": YAML would silently use the last"
                mark = key_node.start_mark
                yield (
                    (mark.line, mark.column),
                    _problem(
                        dotted,
                        f"duplicate {what} on {where}",
                        hint=hint,
                        kind=_UNKNOWN,
                        at=source,
                    ),
                )


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
