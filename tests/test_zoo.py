"""zoo/*.yaml: every file loads and states every model field.

The tests at the end build the big models and check their parameter counts.
"""

import dataclasses
import pathlib
import re

import pytest
import yaml

from keras_llm import config

ZOO = sorted((pathlib.Path(__file__).parents[1] / "zoo").glob("*.yaml"))


def test_zoo_is_installed_as_package_data():
    assert config.zoo_names() == [path.stem for path in ZOO]
    assert {"t5_tiny", "t5_small", "t5_base"} <= set(config.zoo_names())


@pytest.mark.parametrize("path", ZOO, ids=lambda path: path.stem)
def test_zoo_file_loads(path):
    cfg = config.load_config(path)
    assert config.arch_of(cfg.model) == path.stem.split("_")[0]


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
EXPECTED_PARAMETERS = {
    "t5_small": 60_506_624,  # the released t5-small
    "t5_base": 222_903_552,  # the released t5-base
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_zoo_parameter_counts(name):
    from keras_llm import models

    count = models.count_parameters(config.load_config(config.zoo_path(name)))
    assert count == EXPECTED_PARAMETERS[name]


def test_kllm_zoo_show_end_to_end():
    """The real CLI path: config → build → summary, nothing patched."""
    from click.testing import CliRunner

    from keras_llm.cli.main import cli

    result = CliRunner().invoke(cli, ["zoo", "show", "t5_tiny"])
    assert result.exit_code == 0, result.output
    assert "vocabulary_size: 512" in result.output
    assert "encoder_block_0" in result.output
    assert "197,632 parameters" in result.output
