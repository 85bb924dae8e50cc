"""The registry: config fields == backbone arguments; zoo parameter counts."""

import dataclasses
import inspect

import pytest

import keras_llm
from keras_llm import config as config_lib
from keras_llm import models


@pytest.mark.parametrize("arch", sorted(config_lib.MODEL_CONFIGS))
def test_config_fields_equal_backbone_arguments(arch):
    backbone_cls, _ = models.ARCHITECTURES[arch]
    fields = [
        f.name for f in dataclasses.fields(config_lib.MODEL_CONFIGS[arch])
    ]
    params = [
        name
        for name in inspect.signature(backbone_cls.__init__).parameters
        if name not in ("self", "dtype", "kwargs")
    ]
    assert fields == params


def test_every_config_arch_is_registered():
    assert set(config_lib.MODEL_CONFIGS) == set(models.ARCHITECTURES)


def test_build_accepts_path_experiment_and_model_config():
    path = config_lib.zoo_path("t5_tiny")
    cfg = config_lib.load_config(path)
    counts = {
        keras_llm.build(source).count_params()
        for source in (path, cfg, cfg.model)
    }
    assert len(counts) == 1
    model = keras_llm.build(cfg, dtype="mixed_bfloat16")
    assert model.backbone.compute_dtype == "bfloat16"


def test_summarize_names_the_layers():
    text = models.summarize(config_lib.zoo_path("t5_tiny"))
    assert "encoder_block_1" in text and "decoder_relative_bias" in text
    assert "T5Seq2SeqLM" in text


def test_every_exported_model_class_is_registered():
    import keras

    for name in models.__all__:
        obj = getattr(models, name)
        if isinstance(obj, type) and obj not in (models.Backbone, models.Task):
            registered = keras.saving.get_registered_name(obj)
            assert registered == f"keras_llm>{name}", registered


@pytest.mark.parametrize("arch", sorted(config_lib.MODEL_CONFIGS))
def test_the_config_schema_states_the_task_models_kind(arch):
    from keras_llm import kinds

    schema = config_lib.MODEL_CONFIGS[arch]
    task_cls = models.ARCHITECTURES[arch][1]
    assert task_cls.kind == schema.kind
    assert task_cls.input_format.kind == task_cls.kind
    assert schema.default_objective in (*kinds.OBJECTIVES[schema.kind], None)


def test_arch_names_live_in_models_convert_and_the_schema_only():
    import pathlib
    import re

    root = pathlib.Path(keras_llm.__file__).parent
    allowed = {"models", "convert", "config"}
    pattern = re.compile(
        r"[\"'](" + "|".join(config_lib.MODEL_CONFIGS) + ")[\"']"
    )
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.relative_to(root).parts[0] not in allowed
        and pattern.search(path.read_text())
    ]
    assert offenders == []
