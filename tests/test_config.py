"""keras_llm.config: strict keys, typo hints, type checks, overrides, dumps."""

import dataclasses
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
import yaml

from keras_llm import config
from keras_llm import kinds

ZOO = sorted((pathlib.Path(__file__).parents[1] / "zoo").glob("*.yaml"))
MINIMAL = "model:\n  arch: t5\n  vocabulary_size: 128\n"


def _write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _error(tmp_path, text, overrides=()):
    """Loads `text` as a config file and returns the ConfigError message."""
    path = _write(tmp_path, text)
    with pytest.raises(config.ConfigError) as info:
        config.load_config(path, overrides=overrides)
    return str(info.value)


# Each malformed config gives ONE message naming the file and the dotted key.
MALFORMED = {
    "unknown_key": (
        MINIMAL + "  num_head: 8\n",
        "model.num_head: unknown key (did you mean 'num_heads'?)",
    ),
    "wrong_type": (
        MINIMAL + "  num_layers: six\n",
        "model.num_layers: expected an int, got a string. Received: 'six'",
    ),
    "missing_required": (
        "model:\n  arch: t5\n",
        "model.vocabulary_size: required key is missing",
    ),
    "float_as_string": (
        MINIMAL + "  layer_norm_epsilon: 1e-6\n",
        "model.layer_norm_epsilon: expected a float, got a string. "
        "Received: '1e-6' (YAML 1.1 reads 1e-6 as a string; write 1.0e-6)",
    ),
    "negative_size": (
        MINIMAL + "  hidden_dim: -8\n",
        "model.hidden_dim: must be positive. Received: -8",
    ),
    "not_divisible": (
        MINIMAL + "  hidden_dim: 100\n  num_heads: 8\n",
        "model.hidden_dim: must be divisible by model.num_heads. "
        "Received: hidden_dim=100, num_heads=8",
    ),
    "unknown_arch": (
        "model:\n  arch: t6\n",
        "model.arch: unknown arch (allowed: t5, gpt2, bert, transformer, "
        "llama). Received: 't6'",
    ),
    "unknown_section": (
        MINIMAL + "trian:\n  seed: 1\n",
        "trian: unknown key (did you mean 'train'?)",
    ),
    "bool_for_int": (
        MINIMAL + "train:\n  global_batch_size: yes\n",
        "train.global_batch_size: expected an int, got a bool. Received: True",
    ),
    "on_for_string": (
        MINIMAL + "runtime:\n  strategy: on\n",
        "runtime.strategy: expected a string, got a bool. Received: True "
        "(YAML reads unquoted on/off/yes/no as booleans; quote the value)",
    ),
    "bad_choice": (
        MINIMAL + "train:\n  optimizer: adam\n",
        "train.optimizer: unknown value (did you mean 'adamw'?). "
        "Received: 'adam'",
    ),
    "impossible_combination": (
        MINIMAL + "data:\n  source: files\n",
        "data.train_files: required when data.source is 'files'",
    ),
    "section_not_mapping": (
        MINIMAL + "train: 3\n",
        "train: expected a mapping",
    ),
    "missing_model": ("train:\n  seed: 1\n", "model: required section is"),
    "missing_arch": ("model:\n  vocabulary_size: 8\n", "model.arch: required"),
    "dropout_range": (
        MINIMAL + "  dropout: 1.0\n",
        "model.dropout: must be in [0, 1). Received: 1.0",
    ),
    "huge_vocabulary": (
        "model:\n  arch: t5\n  vocabulary_size: 1000000000000\n",
        "model.vocabulary_size: must be in [1, 2**24 = 16777216]. "
        "Received: 1000000000000",
    ),
    "huge_batch": (
        MINIMAL + "train:\n  global_batch_size: 1000000000000\n",
        "train.global_batch_size: must be in [1, 2**20 = 1048576]. "
        "Received: 1000000000000",
    ),
    "not_finite": (
        MINIMAL + "train:\n  learning_rate: .inf\n",
        "train.learning_rate: must be a finite number. Received: inf",
    ),
    "duplicate_key": (
        MINIMAL + "  num_heads: 4\n  num_heads: 8\n",
        "model.num_heads: duplicate key on lines 4 and 5 (keep one: YAML "
        "would silently use the last)",
    ),
    "duplicate_section": (
        MINIMAL + "train:\n  seed: 1\ntrain:\n  seed: 2\n",
        "train: duplicate section on lines 4 and 6 (merge them into one: "
        "YAML would silently use the last)",
    ),
    # Across sections: what the data pipeline would refuse, caught before
    # any data is read (so `kllm validate` refuses what `kllm train` would).
    "objective_misfit": (
        MINIMAL + "data:\n  objective: masked_lm\n",
        "data.objective: 'masked_lm' does not fit arch 't5' (it needs one of "
        "['bert']; arch 't5' takes auto, span_corruption, seq2seq)",
    ),
    "longer_than_positions": (
        "model:\n  arch: gpt2\n  vocabulary_size: 8\n"
        "  max_sequence_length: 64\ndata:\n  sequence_length: 128\n",
        "data.sequence_length: 128 is longer than the model holds "
        "(model.max_sequence_length=64)",
    ),
    "sequence_too_short": (
        MINIMAL + "data:\n  sequence_length: 3\n",
        "data.sequence_length: too short for span_corruption. Received: 3 "
        "(at least 4)",
    ),
    "span_targets_too_short": (
        MINIMAL + "data:\n  sequence_length: 64\n  target_sequence_length: 5\n",
        "data.target_sequence_length: span corruption of 64 input tokens "
        "needs 14 target tokens. Received: 5 "
        "(set data.target_sequence_length: 14)",
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_config_gives_one_clear_message(tmp_path, name):
    text, expected = MALFORMED[name]
    message = _error(tmp_path, text)
    assert message == f"{tmp_path / 'c.yaml'}: {expected}" or (
        message.startswith(f"{tmp_path / 'c.yaml'}: {expected}")
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- a\n- b\n", "expected a mapping with sections model, data"),
        ("model: [1\n", "line 2, column 1: invalid YAML"),
        ("model:\n  arch: t5\n   bad: 1\n", "line 3, column 7: invalid YAML"),
    ],
)
def test_file_level_errors_name_the_file(tmp_path, text, expected):
    message = _error(tmp_path, text)
    assert message.startswith(str(tmp_path / "c.yaml") + ": ")
    assert expected in message


def test_missing_file_names_the_path_and_lists_the_zoo(tmp_path):
    with pytest.raises(config.ConfigError) as info:
        config.load_config(tmp_path / "nope.yaml")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'nope.yaml'}: no such file; ")
    assert "a zoo name also works: bert_base, bert_tiny, " in message
    assert "\n" not in message


def test_missing_relative_path_names_the_working_directory(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(config.ConfigError) as info:
        config.load_config("configs/nope.yaml")
    assert str(info.value).startswith(
        f"configs/nope.yaml: no such file (in {tmp_path}); a zoo name"
    )


def test_zoo_name_loads_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = config.load_config("t5_small", overrides=["train.seed=3"])
    assert cfg == config.load_config(
        config.zoo_path("t5_small"), overrides=["train.seed=3"]
    )
    assert config.resolve("t5_small") == config.zoo_path("t5_small")
    assert config.zoo.resolve("t5_small") == config.zoo_path("t5_small")


def test_unknown_name_lists_the_zoo_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(config.ConfigError) as info:
        config.load_config("t5_huge")
    assert str(info.value) == (
        "t5_huge: no such file, and no config named 't5_huge' in the zoo. "
        f"Available: {', '.join(config.zoo_names())}"
    )


@pytest.mark.parametrize("name", ["t5_small.yaml", "zoo/t5_small", "./t5_tiny"])
def test_a_path_is_never_taken_for_a_zoo_name(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load_config(name)


def test_an_existing_file_wins_over_a_zoo_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, MINIMAL, name="t5_small")
    cfg = config.load_config("t5_small")
    assert cfg.model.vocabulary_size == 128  # not the zoo's 32,128
    assert config.resolve("t5_small") == "t5_small"


def test_a_folder_is_reported_as_unreadable(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load_config(tmp_path)


def test_every_problem_reported_together_unknown_keys_first(tmp_path):
    message = _error(
        tmp_path,
        """\
        model:
          arch: t5
          hidden_dim: 512.5
          num_head: 8
        train:
          learning_rate: 1e-3
        runtime:
          jit_compile: maybe
        """,
    )
    lines = message.splitlines()
    assert len(lines) == 5
    assert "model.num_head: unknown key" in lines[0]
    assert "model.vocabulary_size: required key is missing" in lines[1]
    assert all(line.startswith(str(tmp_path / "c.yaml")) for line in lines)
    for key in ("hidden_dim", "learning_rate", "jit_compile"):
        assert key in message


def test_overrides_take_precedence_over_yaml_over_defaults(tmp_path):
    path = _write(tmp_path, MINIMAL + "  num_layers: 3\n  dropout: 0.2\n")
    cfg = config.load_config(path, overrides=["model.dropout=0.0"])
    assert cfg.model.num_layers == 3  # YAML over the default (6)
    assert cfg.model.dropout == 0.0  # --set over YAML
    assert cfg.model.num_heads == 8  # the default
    assert cfg.train == config.TrainConfig()


def test_override_values_are_parsed_as_yaml(tmp_path):
    cfg = config.load_config(
        _write(tmp_path, MINIMAL),
        overrides=[
            "train.train_steps=2",
            "train.gradient_clip_norm=null",
            "runtime.jit_compile=false",
            "data.tokenizer=runs/x/tokenizer",
            "model.arch=t5",
        ],
    )
    assert cfg.train.train_steps == 2
    assert cfg.train.gradient_clip_norm is None
    assert cfg.runtime.jit_compile is False
    assert cfg.data.tokenizer == "runs/x/tokenizer"
    assert config.parse_override("a.b=[1, 2]") == (("a", "b"), [1, 2])
    assert config.parse_override("a.b=x=y") == (("a", "b"), "x=y")


def test_unknown_override_key_names_set(tmp_path):
    message = _error(tmp_path, MINIMAL, overrides=["model.num_head=4"])
    assert message == (
        "--set: model.num_head: unknown key (did you mean 'num_heads'?). "
        "Received: 4"
    )
    message = _error(tmp_path, MINIMAL, overrides=["modle.dropout=0.0"])
    assert message.startswith("--set: modle.dropout: unknown key (did you")


def test_checks_across_sections_name_where_the_value_came_from(tmp_path):
    overrides = ["data.sequence_length=64", "data.target_sequence_length=5"]
    message = _error(tmp_path, MINIMAL, overrides=overrides)
    assert message == (
        "--set: data.target_sequence_length: span corruption of 64 input "
        "tokens needs 14 target tokens. Received: 5 "
        "(set data.target_sequence_length: 14)"
    )


def test_checks_across_sections_report_together(tmp_path):
    text = MINIMAL + "data:\n  objective: causal_lm\n  sequence_length: 2\n"
    lines = _error(tmp_path, text).splitlines()
    assert len(lines) == 2
    assert "data.objective: 'causal_lm' does not fit arch 't5'" in lines[0]
    assert (
        "data.sequence_length: too short for training. Received: 2"
        in (lines[1])
    )


def test_checks_across_sections_run_when_built_directly():
    with pytest.raises(config.ConfigError, match="does not fit arch 'gpt2'"):
        config.ExperimentConfig(
            model=config.GPT2Config(vocabulary_size=8),
            data=config.DataConfig(objective="span_corruption"),
        )


@pytest.mark.parametrize(
    "data",
    [
        {"objective": "seq2seq"},  # pairs: no span corruption
        {"source": "bible"},  # auto on pairs is seq2seq
        {"source": "files", "train_files": "pairs-*.tsv"},
        {"source": "files", "train_files": "*.jsonl", "target_field": "es"},
    ],
)
def test_span_target_length_is_not_checked_for_pairs(data):
    raw = yaml.safe_load(MINIMAL)
    raw["data"] = {**data, "sequence_length": 64, "target_sequence_length": 5}
    cfg = config.config_from_dict(raw)
    assert config.objective_of(cfg) == "seq2seq"


@pytest.mark.parametrize(
    "arch, data, objective",
    [
        ("t5", {}, "span_corruption"),
        ("t5", {"source": "files", "train_files": "a.txt"}, "span_corruption"),
        ("t5", {"source": "bible"}, "seq2seq"),
        ("gpt2", {}, "causal_lm"),
        ("bert", {}, "masked_lm"),
        ("transformer", {}, "seq2seq"),  # it trains on pairs
        ("t5", {"objective": "seq2seq"}, "seq2seq"),
    ],
)
def test_objective_of(arch, data, objective):
    raw = {"model": {"arch": arch, "vocabulary_size": 8}, "data": data}
    assert config.objective_of(config.config_from_dict(raw)) == objective


def test_model_configs_state_their_kind_and_default_objective():
    expected = {
        "t5": (kinds.SEQ2SEQ, "span_corruption"),
        "gpt2": (kinds.CAUSAL, "causal_lm"),
        "bert": (kinds.MASKED, "masked_lm"),
        "transformer": (kinds.SEQ2SEQ, None),
        "llama": (kinds.CAUSAL, "causal_lm"),
    }
    for arch, cls in config.MODEL_CONFIGS.items():
        assert (cls.kind, cls.default_objective) == expected[arch], arch
        if cls.default_objective is not None:
            assert cls.default_objective in kinds.OBJECTIVES[cls.kind]
        # ClassVars are no fields: the backbone never receives them.
        names = {field.name for field in dataclasses.fields(cls)}
        assert not names & {"kind", "default_objective", "section"}
    assert set(config.OBJECTIVES) == {
        o for kind in kinds.KINDS for o in kinds.OBJECTIVES[kind]
    }


@pytest.mark.parametrize(
    "length, expected", [(512, (568, 114)), (64, (70, 14)), (4, (4, 2))]
)
def test_span_corruption_lengths(length, expected):
    # T5's random_spans_helper: 512 inputs take 568 raw tokens, 114 targets.
    assert config.span_corruption_lengths(length) == expected


def test_override_value_type_errors_name_set(tmp_path):
    message = _error(tmp_path, MINIMAL, overrides=["model.dropout=1e-1"])
    assert message.startswith("--set: model.dropout: expected a float")
    assert "write 1.0e-1" in message


@pytest.mark.parametrize("text", ["model.dropout", "=1", "model..x=1", ".a=1"])
def test_malformed_override_syntax(text):
    with pytest.raises(config.ConfigError, match="expected SECTION.KEY=VALUE"):
        config.parse_override(text)


@pytest.mark.parametrize(
    "value, hint",
    [
        ("1e6", "write 1.0e+6"),  # YAML 1.1 also needs the exponent's sign
        ("1.0e6", "write 1.0e+6"),
        ("2.5E3", "write 2.5e+3"),
        ("'0.5'", "remove the quotes"),
    ],
)
def test_numeric_string_hints(tmp_path, value, hint):
    message = _error(tmp_path, MINIMAL + f"  dropout: {value}\n")
    assert hint in message


def test_int_is_accepted_and_stored_as_float():
    cfg = config.config_from_dict(
        {"model": {"arch": "t5", "vocabulary_size": 8, "dropout": 0}}
    )
    assert cfg.model.dropout == 0.0 and type(cfg.model.dropout) is float


def test_optional_fields_accept_null():
    raw = yaml.safe_load(MINIMAL + "  key_value_dim: null\n")
    assert config.config_from_dict(raw).model.key_value_dim is None


def test_dataclasses_validate_when_built_directly():
    with pytest.raises(config.ConfigError, match="model.hidden_dim: must be"):
        config.T5Config(vocabulary_size=8, hidden_dim=10, num_heads=4)
    with pytest.raises(config.ConfigError, match="train.seed: expected an int"):
        config.TrainConfig(seed="0")


def test_experiment_config_is_frozen():
    cfg = config.config_from_dict(yaml.safe_load(MINIMAL))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.learning_rate = 1.0


def test_to_dict_puts_arch_first():
    raw = config.to_dict(config.config_from_dict(yaml.safe_load(MINIMAL)))
    assert list(raw) == ["model", "data", "train", "runtime"]
    assert list(raw["model"])[:2] == ["arch", "vocabulary_size"]


@pytest.mark.parametrize("path", ZOO, ids=lambda path: path.stem)
def test_dump_load_round_trip(tmp_path, path):
    cfg = config.load_config(path)
    dumped = tmp_path / "config.yaml"
    config.dump_config(cfg, dumped)
    assert config.load_config(dumped) == cfg
    # Floats must be written so that YAML 1.1 reads them back as floats.
    # (1e-5, 1e-6 or 1e-12 by arch: each with its dot, e.g. 1.0e-06.)
    text = dumped.read_text()
    assert re.search(r"\n  layer_norm_epsilon: \d\.\d+e-\d+\n", text)


def test_arch_of():
    assert config.arch_of(config.T5Config(vocabulary_size=8)) == "t5"
    assert config.arch_of(config.GPT2Config(vocabulary_size=8)) == "gpt2"
    assert config.arch_of(config.BertConfig(vocabulary_size=8)) == "bert"
    transformer = config.TransformerConfig(vocabulary_size=8)
    assert config.arch_of(transformer) == "transformer"
    with pytest.raises(config.ConfigError):
        config.arch_of(object())


@pytest.mark.parametrize("arch", ["gpt2", "bert", "transformer", "llama"])
def test_new_archs_check_sizes_and_dropout(tmp_path, arch):
    message = _error(
        tmp_path,
        f"model:\n  arch: {arch}\n  vocabulary_size: 0\n  hidden_dim: 100\n"
        "  num_heads: 8\n  dropout: 1.5\n",
    )
    assert "model.vocabulary_size: must be positive. Received: 0" in message
    assert "model.dropout: must be in [0, 1). Received: 1.5" in message
    assert "model.hidden_dim: must be divisible by model.num_heads" in message


def test_t5_key_value_dim_lifts_the_divisibility_check():
    # T5 v1.1 small: 6 heads of 64 over d_model 512.
    cfg = config.T5Config(
        vocabulary_size=8, hidden_dim=512, num_heads=6, key_value_dim=64
    )
    assert cfg.num_heads * cfg.key_value_dim == 384


def test_loading_does_not_import_tensorflow():
    # conftest.py imports TensorFlow, so check in a fresh interpreter.
    code = (
        "import sys; from keras_llm import config; "
        "from keras_llm.config import parameters; "
        f"config.load_config({str(ZOO[0])!r}); config.load_config('t5_tiny'); "
        "parameters.parameter_counts(); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
        "assert 'keras' not in sys.modules, 'keras imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{','.join([previous] * 9)}]\n"
    for name, previous in zip(
        "abcdefghi", ['"lol"'] + [f"*{c}" for c in "abcdefgh"]
    )
)


def test_alias_expansion_is_bounded(tmp_path):
    # 10**9 strings from a few hundred bytes: refused before anything is
    # built (it used to run for half a minute and die of MemoryError).
    assert len(BILLION_LAUGHS) < 400
    message = _error(tmp_path, BILLION_LAUGHS)
    assert message == (
        f"{tmp_path / 'c.yaml'}: the YAML expands to more than 10,000 values "
        "(its aliases repeat anchors over and over); write the values out "
        "instead"
    )
    message = _error(tmp_path, "a: &a [*a]\n")
    assert "line 1: an alias refers to the value that holds it" in message
    message = _error(tmp_path, "model: " + "[" * 3000 + "]" * 3000 + "\n")
    assert "nested too deeply" in message


def test_aliases_and_merge_keys_still_load(tmp_path):
    # An alias used a few times and a `<<` merge whose keys are overridden.
    path = _write(
        tmp_path,
        """\
        model: &m
          arch: t5
          vocabulary_size: 128
        data:
          <<: {sequence_length: 32, target_sequence_length: 8}
          sequence_length: 64
          target_sequence_length: 16
        """,
    )
    cfg = config.load_config(path)
    assert cfg.data.sequence_length == 64 and cfg.model.vocabulary_size == 128


def test_duplicate_keys_are_reported_in_file_order(tmp_path):
    message = _error(
        tmp_path,
        MINIMAL + "  num_heads: 4\n  num_heads: 8\ntrain: {seed: 1, seed: 2}\n"
        "model:\n  arch: t5\n",
    )
    lines = message.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "model.num_heads",
        "train.seed",
        "model",
    ]
    assert "duplicate key on line 6 " in lines[1]  # both on one line
    assert "duplicate section on lines 1 and 7" in lines[2]


def test_duplicate_keys_in_an_override(tmp_path):
    with pytest.raises(config.ConfigError, match="--set: model.x.a: duplic"):
        config.parse_override("model.x={a: 1, a: 2}")


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.hidden_dim=262144", "model.hidden_dim"),
        ("model.num_layers=1025", "model.num_layers"),
        ("data.target_sequence_length=131073", "data.target_sequence_length"),
        ("train.train_steps=1099511627777", "train.train_steps"),
        ("train.seed=4294967296", "train.seed"),
    ],
)
def test_sizes_are_bounded(override, key):
    with pytest.raises(config.ConfigError) as info:
        config.load_config("t5_tiny", [override])
    assert str(info.value).startswith(f"--set: {key}: must be in [")
    assert "\n" not in str(info.value)


def test_every_zoo_config_is_within_the_bounds():
    for path in ZOO:
        config.load_config(path)
