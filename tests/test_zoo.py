"""zoo/*.yaml: every file loads and states every model field.

The tests at the end build the big models and check their parameter counts,
and that zoo/parameters.json (what `kllm zoo list` shows) holds the same.
"""

import dataclasses
import pathlib
import re

import pytest
import yaml

from keras_llm import config
from keras_llm.config import parameters

LARGE = pytest.mark.large  # full-size models: seconds each to build
ZOO = sorted((pathlib.Path(__file__).parents[1] / "zoo").glob("*.yaml"))


def test_zoo_is_installed_as_package_data():
    assert config.zoo_names() == [path.stem for path in ZOO]
    assert {"t5_tiny", "t5_small", "t5_base"} <= set(config.zoo_names())


@pytest.mark.parametrize("path", ZOO, ids=lambda path: path.stem)
def test_zoo_file_loads(path):
    cfg = config.load_config(path)
    assert config.arch_of(cfg.model) == path.stem.split("_")[0]


@pytest.mark.parametrize("path", ZOO, ids=lambda path: path.stem)
def test_zoo_name_loads_the_same_config(path):
    assert config.load_config(path.stem) == config.load_config(path)


@pytest.mark.parametrize("path", ZOO, ids=lambda path: path.stem)
def test_zoo_file_states_every_model_field(path):
    # The file is the model card: its meaning must not change with a default.
    model = yaml.safe_load(path.read_text())["model"]
    fields = dataclasses.fields(config.MODEL_CONFIGS[model.pop("arch")])
    assert set(model) == {field.name for field in fields}


@pytest.mark.parametrize("path", ZOO, ids=lambda path: path.stem)
def test_zoo_file_names_its_paper(path):
    header = path.read_text().split("\nmodel:")[0]
    assert re.search(r"^# .*\(\w[\w .,&]*, \d{4}", header, re.MULTILINE), (
        f"{path.name}: the header comment must cite the paper, e.g. "
        "'(Raffel et al., 2020)'"
    )


# --- Parameter counts: built for real (a few seconds each) -----------------
# Task models (what `kllm zoo list` shows), checked against the Hugging Face
# twins' `num_parameters()` where there is one (tied weights counted once).
EXPECTED_PARAMETERS = {
    "t5_small": 60_506_624,  # the released t5-small
    "t5_base": 222_903_552,  # the released t5-base
    "t5_tiny": 181_248,  # toy size, for CPU runs and tests
    "t5_v1_1_small": 76_961_152,  # google/t5-v1_1-small (untied lm_head)
    "gpt2_small": 124_439_808,  # GPT2LMHeadModel (gpt2)
    "gpt2_tiny": 141_056,  # GPT2LMHeadModel of the same shape
    # BertModel 109,482,240 + MLM head 622,650 (transform 590,592, its
    # norm 1,536, output bias 30,522). HF's BertForMaskedLM (109,514,298)
    # drops the pooler; our BertMaskedLM keeps the backbone whole.
    "bert_base": 110_104_890,
    "bert_tiny": 150_144,  # BertModel 145,344 + head 4,800
    # BertModel 145,344 + a dense head over two labels (64 * 2 + 2).
    "bert_tiny_classifier": 145_474,
    "transformer_base": 63_082_496,  # by hand: tests/models/test_transformer.py
    "transformer_tiny": 200_192,
    # meta-llama/Llama-3.2-1B's published count (LlamaForCausalLM, tied).
    "llama_3_2_1b": 1_235_814_400,
    "llama_tiny": 125_248,  # LlamaForCausalLM of the same shape
}
# Backbones where they differ from the task model.
EXPECTED_BACKBONE_PARAMETERS = {
    "bert_base": 109_482_240,  # BertModel (bert-base-uncased), pooler included
    "bert_tiny": 145_344,  # BertModel of the same shape
    "bert_tiny_classifier": 145_344,
}


def test_parameter_cache_matches_every_zoo_file():
    """zoo/parameters.json must follow the zoo files (no model is built)."""
    cache = parameters.read_cache()
    stale = [
        name
        for name in config.zoo_names()
        if cache.get(name, {}).get("model") != parameters.model_section(name)
    ]
    assert not stale, (
        f"zoo/parameters.json is stale for {stale}: regenerate it with "
        f"`{parameters.REGENERATE}` (builds every model) and commit it"
    )
    assert set(cache) == set(config.zoo_names()), (
        f"zoo/parameters.json names a config that is gone: regenerate it "
        f"with `{parameters.REGENERATE}`"
    )
    assert parameters.parameter_counts() == {
        name: cache[name]["parameters"] for name in config.zoo_names()
    }


def test_parameter_cache_holds_the_expected_counts():
    assert parameters.parameter_counts() == EXPECTED_PARAMETERS


@pytest.mark.parametrize(
    "name",
    [
        name if name.endswith("_tiny") else pytest.param(name, marks=LARGE)
        for name in sorted(EXPECTED_PARAMETERS)
    ],
)
def test_zoo_parameter_counts(name):
    from keras_llm import models

    model = models.build(config.load_config(config.zoo_path(name)))
    assert model.count_params() == EXPECTED_PARAMETERS[name]
    # What `kllm zoo list` shows without building the model.
    cached = parameters.read_cache()[name]["parameters"]
    assert cached == model.count_params(), (
        f"zoo/parameters.json: {name} has {cached:,}, the model "
        f"{model.count_params():,}: regenerate it with "
        f"`{parameters.REGENERATE}`"
    )
    backbone_count = EXPECTED_BACKBONE_PARAMETERS.get(
        name, EXPECTED_PARAMETERS[name]
    )
    assert model.backbone.count_params() == backbone_count


def test_kllm_zoo_show_end_to_end():
    """The real CLI path: config → build → summary, nothing patched."""
    from click.testing import CliRunner

    from keras_llm.cli.main import cli

    result = CliRunner().invoke(cli, ["zoo", "show", "t5_tiny"])
    assert result.exit_code == 0, result.output
    assert "vocabulary_size: 256" in result.output
    assert "encoder_block_0" in result.output
    assert "181,248 parameters" in result.output


def test_every_zoo_file_has_its_parameter_count_checked():
    assert set(config.zoo_names()) == set(EXPECTED_PARAMETERS)
