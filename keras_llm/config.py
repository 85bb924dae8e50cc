"""Typed, validated experiment configuration: dataclasses and the YAML loader.

One YAML file describes an experiment: `model` (whose `arch` picks the
dataclass), `data`, `train` and `runtime`. Values resolve as dataclass
defaults <- YAML <- `--set section.key=value`. Every problem is reported in
one `ConfigError`, one per line, shaped
`<file>: <dotted.key>: <problem>. Received: <value> (hint)`.
No TensorFlow or Keras import: validating a config takes milliseconds.
"""

import dataclasses
import difflib
import importlib.resources
import os
import re
import types
import typing
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any
from typing import ClassVar

import yaml

SECTIONS = ("model", "data", "train", "runtime")
OBJECTIVES = ("span_corruption", "seq2seq", "causal_lm", "masked_lm")
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")

# Problem kinds in report order: unknown keys first, then missing ones, so one
# run shows the whole fix list (Model Garden's strict mode).
_UNKNOWN, _MISSING, _TYPE, _VALUE = range(4)
_NOTHING = object()  # "no value received", as distinct from None
_NAMES = {int: "an int", float: "a float", str: "a string", bool: "a bool"}
_NAMES[type(None)] = "null"
# PyYAML (YAML 1.1) reads a float only with a dot and a signed exponent.
_STRING_FLOAT = re.compile(r"^([-+]?[0-9]*\.?[0-9]*)[eE]([-+]?[0-9]+)$")


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


# --- Checks shared by the dataclasses ----------------------------------------


def _accepts(value: Any, tp: Any) -> bool:
    if isinstance(tp, types.UnionType):  # `int | None`
        return any(_accepts(value, arg) for arg in typing.get_args(tp))
    if tp is float:  # an int is a fine float; a bool is not (type() is exact)
        return type(value) in (int, float)
    return type(value) is tp


def _type_hint(value: Any, tp: Any) -> str:
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


def _check_type(key: str, value: Any, tp: Any) -> Problem | None:
    """Returns the `Problem` if `value` does not match annotation `tp`."""
    if _accepts(value, tp):
        return None
    expected = " or ".join(_NAMES[t] for t in typing.get_args(tp) or (tp,))
    got = _NAMES.get(type(value), f"a {type(value).__name__}")
    problem = f"expected {expected}, got {got}"
    return _problem(key, problem, value, _type_hint(value, tp), _TYPE)


def _positive(cfg: Any, *names: str, zero_ok: bool = False) -> Iterator:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and (value < 0 if zero_ok else value <= 0):
            problem = "must be >= 0" if zero_ok else "must be positive"
            yield _problem(f"{cfg.section}.{name}", problem, value)


def _fraction(cfg: Any, name: str) -> Iterator[Problem]:
    if not 0 <= getattr(cfg, name) < 1:
        key = f"{cfg.section}.{name}"
        yield _problem(key, "must be in [0, 1)", getattr(cfg, name))


def _one_of(cfg: Any, name: str, allowed: Iterable[str]) -> Iterator[Problem]:
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


# --- Model configs: field names equal the backbone's __init__ arguments ------


@dataclasses.dataclass(frozen=True)
class T5Config(_Section):
    """T5 encoder-decoder (Raffel et al., 2020); see `T5Backbone`."""

    section: ClassVar[str] = "model"

    vocabulary_size: int  # required: no default
    num_layers: int = 6  # encoder layers; the decoder has as many
    num_heads: int = 8
    hidden_dim: int = 512  # d_model
    intermediate_dim: int = 2048  # d_ff
    key_value_dim: int | None = None  # d_kv; None -> hidden_dim // num_heads
    dropout: float = 0.1
    activation: str = "relu"  # one of ACTIVATIONS
    use_gated_activation: bool = False  # True for T5 v1.1 (GEGLU)
    layer_norm_epsilon: float = 1e-6
    tie_embedding_weights: bool = True  # False for T5 v1.1
    num_buckets: int = 32  # relative-position buckets
    max_distance: int = 128  # distance at which buckets stop growing

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
            "intermediate_dim", "key_value_dim", "layer_norm_epsilon",
            "num_buckets", "max_distance",
        )  # fmt: skip
        yield from _fraction(self, "dropout")
        yield from _one_of(self, "activation", ACTIVATIONS)
        if self.key_value_dim is None:  # T5 v1.1 small: 6 heads of 64, D 512
            yield from _check_heads(self)


@dataclasses.dataclass(frozen=True)
class GPT2Config(_Section):
    """GPT-2 decoder-only LM (Radford et al., 2019); see `GPT2Backbone`.

    Pre-norm blocks, tanh-approximated GELU, learned positions, output layer
    tied to the token embedding.
    """

    section: ClassVar[str] = "model"

    vocabulary_size: int  # required: no default
    num_layers: int = 12  # n_layer
    num_heads: int = 12  # n_head
    hidden_dim: int = 768  # n_embd
    intermediate_dim: int = 3072  # n_inner; 4 * hidden_dim in GPT-2
    dropout: float = 0.1
    max_sequence_length: int = 1024  # n_positions: learned position rows
    layer_norm_epsilon: float = 1e-5

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
            "intermediate_dim", "max_sequence_length", "layer_norm_epsilon",
        )  # fmt: skip
        yield from _fraction(self, "dropout")
        yield from _check_heads(self)


@dataclasses.dataclass(frozen=True)
class BertConfig(_Section):
    """BERT encoder (Devlin et al., 2019); see `BertBackbone`.

    Post-norm blocks, exact GELU, learned positions and segment embeddings.
    """

    section: ClassVar[str] = "model"

    vocabulary_size: int  # required: no default
    num_layers: int = 12
    num_heads: int = 12
    hidden_dim: int = 768
    intermediate_dim: int = 3072
    dropout: float = 0.1
    max_sequence_length: int = 512  # learned position rows
    num_segments: int = 2  # token types (sentence A / B)
    layer_norm_epsilon: float = 1e-12

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
            "intermediate_dim", "max_sequence_length", "num_segments",
            "layer_norm_epsilon",
        )  # fmt: skip
        yield from _fraction(self, "dropout")
        yield from _check_heads(self)


@dataclasses.dataclass(frozen=True)
class TransformerConfig(_Section):
    """The original encoder-decoder Transformer (Vaswani et al., 2017); see
    `TransformerBackbone`.

    Post-norm blocks, relu, sinusoidal positions, one embedding shared by the
    source, the target and the output layer.
    """

    section: ClassVar[str] = "model"

    vocabulary_size: int  # required: shared source/target vocabulary
    num_layers: int = 6  # encoder layers; the decoder has as many
    num_heads: int = 8
    hidden_dim: int = 512  # d_model
    intermediate_dim: int = 2048  # d_ff
    dropout: float = 0.1  # P_drop
    layer_norm_epsilon: float = 1e-6

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
            "intermediate_dim", "layer_norm_epsilon",
        )  # fmt: skip
        yield from _fraction(self, "dropout")
        yield from _check_heads(self)


# Adding an architecture: write its dataclass, add it here and to ModelConfig.
MODEL_CONFIGS: dict[str, type] = {
    "t5": T5Config,
    "gpt2": GPT2Config,
    "bert": BertConfig,
    "transformer": TransformerConfig,
}
# The union of the MODEL_CONFIGS values.
ModelConfig = T5Config | GPT2Config | BertConfig | TransformerConfig


def arch_of(model_config: Any) -> str:
    """Returns the `arch` name of a model config, e.g. `"t5"`.

    Raises:
        ConfigError: if its type is not in `MODEL_CONFIGS`.
    """
    for arch, cls in MODEL_CONFIGS.items():
        if type(model_config) is cls:
            return arch
    name = type(model_config).__name__
    raise ConfigError(f"model: expected a model config. Received: {name}")


# --- The other sections ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
    """Where the text comes from and how it is cut into examples."""

    section: ClassVar[str] = "data"

    source: str = "pydoc"  # pydoc (Python's own docs), files, bible
    train_files: str | None = None  # glob; required when source is files
    validation_files: str | None = None  # glob; None -> split off train
    validation_fraction: float = 0.01  # used when validation_files is None
    # .txt: a document per line (or per file, see document_per); .jsonl:
    # text_field (and target_field for pairs); .tsv: input<TAB>target;
    # .tfrecord: tf.train.Example with bytes features named like the fields.
    document_per: str = "line"  # line, file (plain-text files only)
    text_field: str = "text"
    target_field: str | None = None  # pairs: the target text's field
    objective: str = "auto"  # auto (by arch and source), OBJECTIVES
    task_prefix: str = ""  # seq2seq, e.g. "translate English to Spanish: "
    sequence_length: int = 512  # encoder (input) tokens per example
    target_sequence_length: int = 114  # decoder tokens (T5 span corruption)
    noise_density: float = 0.15  # span corruption: fraction of noise tokens
    mean_noise_span_length: float = 3.0  # span corruption
    num_sentinels: int = 100  # T5 <extra_id_*> ids at the top of the vocab
    tokenizer: str | None = None  # path to a tokenizer; None -> train one
    shuffle_buffer_size: int = 10000

    def _check(self) -> Iterator[Problem]:
        yield from _one_of(self, "source", ("pydoc", "files", "bible"))
        yield from _positive(self, "sequence_length", "target_sequence_length")
        yield from _positive(
            self, "mean_noise_span_length", "shuffle_buffer_size"
        )
        yield from _positive(self, "num_sentinels", zero_ok=True)
        yield from _fraction(self, "validation_fraction")
        yield from _fraction(self, "noise_density")
        yield from _one_of(self, "document_per", ("line", "file"))
        yield from _one_of(self, "objective", ("auto", *OBJECTIVES))
        if self.source == "files" and self.train_files is None:
            problem = "required when data.source is 'files'"
            hint = "set it to a glob such as data/train-*.txt"
            yield _problem("data.train_files", problem, None, hint)
        for name in ("train_files", "validation_files"):
            if self.source != "files" and getattr(self, name) is not None:
                problem = "only read when data.source is 'files', not "
                problem += repr(self.source)
                hint = "set data.source: files, or remove the key"
                yield _problem(
                    f"data.{name}", problem, getattr(self, name), hint
                )


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Section):
    """Optimization: batch, optimizer, schedule, checkpoints."""

    section: ClassVar[str] = "train"

    global_batch_size: int = 128  # summed over all replicas
    learning_rate: float = 1e-2  # peak rate
    optimizer: str = "adafactor"  # adafactor, adamw, lamb
    schedule: str = "inverse_sqrt"  # constant, inverse_sqrt, cosine
    warmup_steps: int = 10000
    train_steps: int = 524288  # 2**19, T5's pre-training length
    eval_interval_steps: int = 1000
    checkpoint_interval_steps: int = 1000
    max_checkpoints_to_keep: int = 3
    gradient_clip_norm: float | None = 1.0  # global norm; None: no clipping
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    weight_decay: float = 0.0  # decoupled (AdamW, LAMB)
    eval_steps: int = 20  # validation batches per evaluation
    log_interval_steps: int = 10  # metrics.jsonl / TensorBoard cadence
    seed: int = 0

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "global_batch_size", "learning_rate", "train_steps",
            "eval_interval_steps", "checkpoint_interval_steps",
            "max_checkpoints_to_keep", "gradient_clip_norm",
            "gradient_accumulation_steps", "eval_steps", "log_interval_steps",
        )  # fmt: skip
        yield from _positive(
            self, "warmup_steps", "seed", "weight_decay", zero_ok=True
        )
        if self.global_batch_size % self.gradient_accumulation_steps:
            yield _problem(
                "train.global_batch_size",
                "must be divisible by train.gradient_accumulation_steps. "
                f"Received: global_batch_size={self.global_batch_size}, "
                f"gradient_accumulation_steps="
                f"{self.gradient_accumulation_steps}",
            )
        yield from _one_of(self, "optimizer", ("adafactor", "adamw", "lamb"))
        schedules = ("constant", "inverse_sqrt", "cosine")
        yield from _one_of(self, "schedule", schedules)
        if self.schedule == "inverse_sqrt" and self.warmup_steps == 0:
            problem = "must be positive for schedule inverse_sqrt"
            hint = "its rate is 1/sqrt(max(step, warmup_steps))"
            yield _problem("train.warmup_steps", problem, 0, hint)


@dataclasses.dataclass(frozen=True)
class RuntimeConfig(_Section):
    """Devices, distribution strategy and numerics."""

    section: ClassVar[str] = "runtime"

    # auto: mirrored over the local GPUs if there are any, else one device.
    strategy: str = "auto"  # auto, one_device, mirrored, multi_worker, tpu
    jit_compile: bool = True  # XLA for the per-replica step
    mixed_precision: str = "float32"  # float32, mixed_bfloat16, mixed_float16
    num_cpu_devices: int | None = None  # split the host CPU into N devices

    def _check(self) -> Iterator[Problem]:
        strategies = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
        yield from _one_of(self, "strategy", strategies)
        policies = ("float32", "mixed_bfloat16", "mixed_float16")
        yield from _one_of(self, "mixed_precision", policies)
        yield from _positive(self, "num_cpu_devices")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: what `kllm train` reads and writes to a run dir."""

    model: ModelConfig
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        arch_of(self.model)
        for field in dataclasses.fields(self)[1:]:
            value = getattr(self, field.name)
            if type(value) is not field.type:
                raise ConfigError(
                    f"{field.name}: expected a {field.type.__name__}. "
                    f"Received: {type(value).__name__}"
                )


# --- Loading and dumping -----------------------------------------------------


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
    path: str | os.PathLike, overrides: Iterable[str] = ()
) -> ExperimentConfig:
    """Loads, merges and validates an experiment config.

    Args:
        path: a YAML file with the sections `model`, `data`, `train` and
            `runtime` (only `model` is required).
        overrides: `"section.key=value"` strings (`--set`), applied last.

    Returns:
        The frozen `ExperimentConfig`.

    Raises:
        ConfigError: listing every problem, each naming the file (or
            `--set`) and the dotted key.
    """
    source = os.fspath(path)
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
        report(
            "model.arch", "required key is missing", hint=hint, kind=1, at=at
        )
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
    return ExperimentConfig(**built)


def _unknown(
    key: str, allowed: Iterable[str], value: Any, at: str, name: str = ""
) -> Problem:
    hint = _did_you_mean(name or key.rpartition(".")[2], allowed)
    return _problem(key, f"unknown key ({hint})", value, "", _UNKNOWN, at)


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


# --- The model zoo: zoo/*.yaml, installed as the package keras_llm.zoo -------


def zoo_names() -> list[str]:
    """Returns the names of the zoo configs, e.g. `["t5_base", ...]`."""
    files = importlib.resources.files("keras_llm.zoo").iterdir()
    return sorted(
        f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml")
    )


def zoo_path(name: str) -> str:
    """Returns the path of the zoo config `name`, e.g. `"t5_small"`.

    Raises:
        ConfigError: if there is none; the message lists the names.
    """
    names = zoo_names()
    if name not in names:
        available = ", ".join(names)
        raise ConfigError(
            f"zoo: no config named {name!r}. Available: {available}"
        )
    return os.fspath(
        importlib.resources.files("keras_llm.zoo") / f"{name}.yaml"
    )
