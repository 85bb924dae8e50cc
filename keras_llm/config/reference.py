"""docs/config.md: the config reference, generated from the schema.

```bash
python -m keras_llm.config.reference          # writes docs/config.md
python -m keras_llm.config.reference --check  # exit 1 if it is out of date
```

Everything after the opening comes from `keras_llm/config/schema.py`: the
keys and types from the dataclass fields, the defaults, each key's meaning
from the comment on its field (the lines above it, or the end of its line),
the allowed values from the checks themselves (`checks.recording_rules`),
and each section's introduction from its docstring. A field without a
comment is an error, so a new key cannot go undocumented. Only the opening
(how values resolve, the YAML traps) is written here. No TensorFlow.
"""

import argparse
import dataclasses
import inspect
import io
import pathlib
import sys
import textwrap
import tokenize
import types
import typing
from typing import Any

import yaml

from keras_llm import kinds
from keras_llm.config import checks
from keras_llm.config import schema
from keras_llm.config import zoo

DOC_PATH = pathlib.Path(__file__).resolve().parents[2] / "docs" / "config.md"
COMMAND = "python -m keras_llm.config.reference"

_TYPE_NAMES = {
    int: "int",
    float: "float",
    str: "string",
    bool: "bool",
    type(None): "null",
}

_OPENING = """\
# Config reference

<!-- Generated from keras_llm/config/schema.py by `{command}`:
edit the schema's comments and docstrings, not this file. -->

A config is a YAML file with up to four sections: `model` (required),
`data`, `train` and `runtime`. `kllm validate CONFIG` checks one without
building anything; `kllm train CONFIG` trains it. Each table below gives
every key of a section: its type, its default, the values the checks allow
and what it means.

## How values resolve

Each key takes the last of:

1. its default (below);
2. its value in the YAML file;
3. `--set section.key=value` on the command line (repeatable). The value
   is read as YAML, so `--set data.tokenizer=null` gives null and
   `--set model.dropout=0` the number 0.

Unknown keys, wrong types and values out of range are all reported at
once, each with the file (or `--set`) and the dotted key, before anything
is built or written. The resolved config is written to the run dir as
`config.yaml`; `kllm train RUN_DIR/config.yaml` resumes that run.

A zoo name works wherever a config path does: `kllm train t5_tiny`,
`kllm validate t5_small`, `keras_llm.config.load_config("gpt2_small")`. An
existing file of that name wins. `kllm zoo list` lists the zoo,
`kllm zoo show NAME` prints a config in full.

{zoo}

## YAML traps

Configs are read by PyYAML, which follows YAML 1.1:

- A float needs a dot, and an exponent needs its sign: `1e-6` and
  `1.0e6` are strings, refused for a float key. Write `1.0e-6`,
  `1.0e+6` (or `0.000001`).
- Unquoted `on`, `off`, `yes` and `no` (also `On`, `NO`, ...) are
  booleans, like `true` and `false`: a string key given `no` is refused.
  Quote text that reads as one: `task_prefix: "no"`.
- A quoted number is a string: `sequence_length: "512"` is refused.
- `null`, `~` or nothing after the colon is null; an empty section
  (`runtime:`) means no keys, so the defaults.
- A key written twice is refused (YAML alone would keep the last one).
"""


def field_comments(cls: type) -> dict[str, str]:
    """The comment on each dataclass field of `cls`: the full-line comments
    right above it (no blank line between) and the one ending its line,
    joined into one text.

    Returns:
        Field name -> comment, for the fields that have one.
    """
    source = textwrap.dedent(inspect.getsource(cls))
    fields = {field.name for field in dataclasses.fields(cls)}
    comments: dict[str, str] = {}
    above: list[str] = []  # the comment lines just read, in the class body
    depth = 0  # 1: the class body
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, token in enumerate(tokens):
        if token.type == tokenize.INDENT:
            depth += 1
        elif token.type == tokenize.DEDENT:
            depth -= 1
        elif depth != 1:
            continue
        elif token.type == tokenize.COMMENT and _starts_line(token):
            above.append(_comment_text(token.string))
        elif token.type == tokenize.NL and not token.line.strip():
            above = []  # a blank line: the comments above were not its
        elif (
            token.type == tokenize.NAME
            and _starts_line(token)
            and tokens[i + 1].string == ":"
        ):
            lines, above = above, []
            for later in tokens[i + 1 :]:  # the comment ending its line
                if later.type == tokenize.NEWLINE:
                    break
                if later.type == tokenize.COMMENT:
                    lines.append(_comment_text(later.string))
            if token.string in fields and lines:
                comments[token.string] = _sentence(" ".join(lines))
        elif token.type == tokenize.NAME and _starts_line(token):
            above = []  # a statement (a method): the comments were its
    return comments


def _starts_line(token: tokenize.TokenInfo) -> bool:
    return not token.line[: token.start[1]].strip()


def _comment_text(comment: str) -> str:
    return comment.removeprefix("#").strip()


def _sentence(text: str) -> str:
    """A comment as a sentence: capitalized, ending with a stop."""
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def field_rules(cls: type, **required: Any) -> dict[str, list[checks.Rule]]:
    """The rules the value checks of `cls` apply, per field: recorded while
    they check an instance of the defaults (and `required`)."""
    with checks.recording_rules() as rules:
        cls(**required)
    return rules


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        return f"list of {_TYPE_NAMES[typing.get_args(tp)[0]]}s"
    args = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    return " or ".join(_TYPE_NAMES[arg] for arg in args)


def _yaml(value: Any) -> str:
    """`value` as PyYAML writes it (floats as `1.0e-06`), which reads back
    as the same value."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000)
    return text.removesuffix("\n...\n").strip()


def _bound(limit: int) -> str:
    if limit & (limit - 1) == 0:  # a power of two, as the error shows it
        return f"2**{limit.bit_length() - 1} = {limit}"
    return str(limit)


def _allowed(tp: Any, rules: list[checks.Rule]) -> str:
    """The values the checks allow, in words: the choices, or the range."""
    args = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    base = next(arg for arg in args if arg is not type(None))
    by_kind = {rule.kind: rule for rule in rules}
    if "one_of" in by_kind and typing.get_origin(base) is list:
        return "any of " + ", ".join(
            f"`{c}`" for c in by_kind["one_of"].choices
        )
    if "one_of" in by_kind:
        text = ", ".join(f"`{c}`" for c in by_kind["one_of"].choices)
        others = [
            _TYPE_NAMES[arg] for arg in args if arg not in (str, type(None))
        ]
        return text + "".join(f", or an {name}" for name in others)
    if "fraction" in by_kind:
        return "`[0, 1)`"
    positive, at_most = by_kind.get("positive"), by_kind.get("at_most")
    if positive is None and at_most is None:
        return "`true`, `false`" if base is bool else "any"
    low = None if positive is None else positive.low
    if at_most is not None:
        low = at_most.low if low is None else low
        return f"`[{low}, {_bound(at_most.high)}]`"
    if low is not None:
        return f"`>= {low}`"
    return "`>= 1`" if base is int else "`> 0`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(cls: type, **required: Any) -> str:
    comments = field_comments(cls)
    rules = field_rules(cls, **required)
    missing = [
        field.name
        for field in dataclasses.fields(cls)
        if field.name not in comments
    ]
    if missing:
        raise ValueError(
            f"{cls.__name__}: no comment on the field(s) "
            f"{', '.join(missing)}; say what each means in a comment above "
            f"it or at the end of its line (keras_llm/config/schema.py)"
        )
    rows = [
        "| key | type | default | allowed | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for field in dataclasses.fields(cls):
        if field.default_factory is not dataclasses.MISSING:
            default = f"`{_yaml(field.default_factory())}`"
        elif field.default is dataclasses.MISSING:
            default = "required"
        else:
            default = f"`{_yaml(field.default)}`"
        cells = (
            f"`{cls.section}.{field.name}`",
            _type_name(field.type),
            default,
            _allowed(field.type, rules.get(field.name, [])),
            comments[field.name],
        )
        rows.append("| " + " | ".join(map(_cell, cells)) + " |")
    return "\n".join(rows) + "\n"


def _docstring(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "") + "\n"


def _paragraph(text: str) -> str:
    return textwrap.fill(text, 76, break_on_hyphens=False) + "\n"


def _model_section() -> str:
    archs = ", ".join(f"`{arch}`" for arch in schema.MODEL_CONFIGS)
    parts = [
        "## model\n",
        _paragraph(
            f"`model.arch` (required) picks the architecture, one of "
            f"{archs}, and with it the other keys of the section, below. "
            "They are the arguments of the model's backbone."
        ),
    ]
    pairs = kinds.PAIR_OBJECTIVES[0]
    for arch, cls in schema.MODEL_CONFIGS.items():
        objectives = kinds.OBJECTIVES[cls.kind]
        auto = cls.default_objective or pairs
        takes = ", ".join(f"`{o}`" for o in objectives)
        line = (
            f"Kind `{cls.kind}`. `data.objective` takes `auto` or {takes}; "
            f"`auto` trains `{auto}`"
        )
        if cls.default_objective and pairs in objectives and auto != pairs:
            line += f", or `{pairs}` when the data gives input/target pairs"
        if auto in kinds.EITHER_OBJECTIVES:
            line += ", on single texts or on prompt/completion pairs"
        for other in getattr(cls, "other_kinds", ()):
            named = ", ".join(f"`{o}`" for o in kinds.OBJECTIVES[other])
            line += f"; it trains as kind `{other}` with {named}"
        parts += [
            f"### model.arch: {arch}\n",
            _docstring(cls),
            _paragraph(line + "."),
            _table(cls, vocabulary_size=1),
        ]
    return "\n".join(parts)


def render() -> str:
    """The text of docs/config.md."""
    names = ", ".join(f"`{name}`" for name in zoo.zoo_names())
    names = _paragraph(f"The zoo: {names}.").rstrip("\n")
    parts = [_OPENING.format(command=COMMAND, zoo=names), _model_section()]
    for cls in (schema.DataConfig, schema.TrainConfig, schema.RuntimeConfig):
        parts += [f"## {cls.section}\n", _docstring(cls), _table(cls)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Writes docs/config.md from the schema."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the file is out of date",
    )
    parser.add_argument(
        "--path", type=pathlib.Path, default=DOC_PATH, help="the file"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        try:
            current = args.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            state = "missing" if current is None else "out of date"
            print(
                f"{args.path} is {state}: run `{COMMAND}` to regenerate it",
                file=sys.stderr,
            )
            return 1
        return 0
    args.path.write_text(text, encoding="utf-8")
    print(f"Wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
