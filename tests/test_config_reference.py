"""docs/config.md: generated from the schema, up to date, and true to the
checks it describes."""

import dataclasses
import subprocess
import sys

import pytest
import yaml

from keras_llm import config
from keras_llm.config import reference
from keras_llm.config import schema

SECTIONS = [
    *schema.MODEL_CONFIGS.values(),
    schema.DataConfig,
    schema.TrainConfig,
    schema.RuntimeConfig,
]
# The value every model config needs (it has no default).
REQUIRED = {"vocabulary_size": 1}


def _required(cls):
    return REQUIRED if cls.section == "model" else {}


def test_docs_config_md_is_up_to_date():
    current = reference.DOC_PATH.read_text(encoding="utf-8")
    assert current == reference.render(), (
        f"{reference.DOC_PATH} is out of date: run "
        f"`{reference.COMMAND}` to regenerate it"
    )


def test_check_says_in_one_line_what_to_run(tmp_path, capsys):
    path = tmp_path / "config.md"
    assert reference.main(["--check", "--path", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"{path} is missing: run `{reference.COMMAND}` to regenerate it\n"
    )
    path.write_text("# Config reference\n")
    assert reference.main(["--check", "--path", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of date" in err
    assert reference.main(["--path", str(path)]) == 0
    assert reference.main(["--check", "--path", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == reference.render()


@pytest.mark.parametrize("cls", SECTIONS, ids=lambda cls: cls.__name__)
def test_every_field_says_what_it_means(cls):
    comments = reference.field_comments(cls)
    for field in dataclasses.fields(cls):
        assert comments.get(field.name, "").endswith("."), field.name
    # The ClassVars (`section`, `kind`, ...) are no keys.
    assert set(comments) <= {field.name for field in dataclasses.fields(cls)}


def test_comments_above_and_after_a_field_join():
    comments = reference.field_comments(schema.T5Config)
    assert comments["num_layers"] == (
        "Encoder blocks, and decoder blocks by default."
    )
    assert comments["key_value_dim"].startswith("Size of each attention head")
    assert "divide evenly" in comments["key_value_dim"]
    micro = reference.field_comments(schema.TrainConfig)["micro_batch_size"]
    assert micro.startswith("Examples per replica") and "auto:" in micro


def test_allowed_values_are_the_checks_own():
    rules = reference.field_rules(schema.T5Config, **REQUIRED)
    assert [r.choices for r in rules["activation"]] == [schema.ACTIVATIONS]
    train = reference.field_rules(schema.TrainConfig)
    assert train["optimizer"][0].choices == schema.OPTIMIZERS
    assert train["micro_batch_size"][0].choices == schema.MICRO_BATCH_SIZES
    text = reference.render()
    assert "| `train.micro_batch_size` | int or string | `auto` | " in text
    assert "`auto`, `global`, or an int |" in text


def _cases():
    for cls in SECTIONS:
        for name, rules in reference.field_rules(cls, **_required(cls)).items():
            for rule in rules:
                yield pytest.param(cls, name, rule, id=f"{cls.__name__}.{name}")


def _outside(field_type, rule):
    """A value of the right type that `rule` refuses."""
    if rule.kind == "one_of":
        return "no_such_value"
    if rule.kind == "fraction":
        return 1.0
    if rule.kind == "at_most":
        return rule.high + 1
    is_float = field_type is float or float in getattr(
        field_type, "__args__", ()
    )
    if rule.low == 0:
        return -1.0 if is_float else -1
    return 0.0 if is_float else 0


@pytest.mark.parametrize("cls, name, rule", _cases())
def test_what_the_reference_says_is_refused_is_refused(cls, name, rule):
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = _outside(field.type, rule)
    with pytest.raises(config.ConfigError) as error:
        cls(**{**_required(cls), name: value})
    assert f"{cls.section}.{name}" in str(error.value)


def test_defaults_as_written_read_back_as_the_defaults():
    # e.g. 1e-6 is written 1.0e-06: YAML 1.1 reads `1e-06` as a string.
    for cls in SECTIONS:
        for field in dataclasses.fields(cls):
            if field.default is dataclasses.MISSING:
                continue
            text = reference._yaml(field.default)
            assert yaml.safe_load(text) == field.default, (cls, field.name)
            assert type(yaml.safe_load(text)) is type(field.default)


def test_the_reference_names_every_arch_and_its_kind():
    text = reference.render()
    for arch, cls in schema.MODEL_CONFIGS.items():
        assert f"### model.arch: {arch}\n" in text
    assert (
        "Kind `seq2seq`." in text and "`auto` trains `span_corruption`" in text
    )
    for trap in ("`1.0e-6`", "`on`, `off`, `yes` and `no`", "t5_tiny"):
        assert trap in text


def test_rendering_does_not_import_tensorflow():
    # conftest.py imports TensorFlow, so check in a fresh interpreter.
    code = (
        "import sys; from keras_llm.config import reference; "
        "reference.render(); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
