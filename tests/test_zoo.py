"""zoo/*.yaml: every file loads and states every model field.

The `large` tests at the end build each model and check its parameter count.
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


# --- Parameter counts: [large] tests build each model ------------------------
# Models engineer: add the `@pytest.mark.large` tests here, e.g. checking
# `keras_llm.models.count_parameters(config.load_config(path).model)` against
# EXPECTED_PARAMETERS (the Hugging Face checkpoints' counts, tied embeddings).
EXPECTED_PARAMETERS = {
    "t5_small": 60_506_624,
    "t5_base": 222_903_552,
}
