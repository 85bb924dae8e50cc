"""Run directory: config + checkpoint → `keras_llm.load`."""

import keras
import numpy as np
import pytest

import keras_llm
from keras_llm import config as config_lib
from keras_llm import rundir


def test_load_restores_the_saved_weights(tmp_path):
    cfg = config_lib.load_config(config_lib.zoo_path("t5_tiny"))
    model = keras_llm.build(cfg)
    run_dir = str(tmp_path / "run")
    rundir.write_config(cfg, run_dir)
    rundir.save_model(model, run_dir, step=7)

    loaded = keras_llm.load(run_dir)
    assert type(loaded) is type(model)
    assert loaded.backbone.get_config() == model.backbone.get_config()
    for saved, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(saved),
            keras.ops.convert_to_numpy(restored),
        )
    assert rundir.read_config(run_dir) == cfg


def test_load_errors_name_the_missing_piece(tmp_path):
    with pytest.raises(FileNotFoundError, match="Run directory not found"):
        keras_llm.load(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="config.yaml is missing"):
        keras_llm.load(str(tmp_path))
    cfg = config_lib.load_config(config_lib.zoo_path("t5_tiny"))
    rundir.write_config(cfg, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="No checkpoint in"):
        keras_llm.load(str(tmp_path))


def test_load_attaches_the_tokenizer_and_config(tiny_run_dir, tmp_path):
    import shutil

    run_dir = tiny_run_dir("t5_tiny")
    lm = keras_llm.load(run_dir)
    assert lm.kind == "seq2seq"
    assert lm.tokenizer.vocabulary_size == lm.config.model.vocabulary_size
    assert lm.config == rundir.read_config(run_dir)
    # Not tracked: the model's checkpoint holds the model alone.
    assert not any("tokenizer" in v.path for v in lm.weights)
    outputs = lm.generate(["The for loop", "x"], max_new_tokens=3)
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)

    weights_only = str(tmp_path / "weights_only")
    shutil.copytree(run_dir, weights_only)
    shutil.rmtree(f"{weights_only}/{rundir.TOKENIZER_DIR}")
    lm = keras_llm.load(weights_only)
    assert lm.tokenizer is None
    with pytest.raises(ValueError, match="has no tokenizer"):
        lm.generate(["x"])
