"""Shared helpers for the training tests: tiny configs and run readers."""

import json
import os

import numpy as np
import tensorflow as tf
import yaml

from keras_llm import config as config_lib

ZOO_TINY = config_lib.zoo_path("t5_tiny")


def tiny_config(tokenizer_dir=None, **overrides):
    """zoo/t5_tiny.yaml with `section.key=value` overrides (dotted kwargs
    written as section__key)."""
    sets = [
        f"{key.replace('__', '.')}={_yaml(value)}"
        for key, value in overrides.items()
    ]
    if tokenizer_dir:
        sets.append(f"data.tokenizer={tokenizer_dir}")
    return config_lib.load_config(ZOO_TINY, overrides=sets)


def _yaml(value):
    if isinstance(value, float):  # YAML 1.1 wants 1.0e+30, not 1e+30
        return yaml.safe_dump(value).split("\n")[0]
    return json.dumps(value)


def build_datasets(cfg, tokenizer, eval_batch_size=None):
    """`(train, validation, plan)` of a config, as training makes them."""
    from keras_llm import models
    from keras_llm.data import pipeline
    from keras_llm.data import sources

    splits = sources.load_splits(cfg.data)
    pairs = "inputs" in splits[0].element_spec
    plan = pipeline.resolve_plan(cfg.data, cfg.model, pairs)
    input_format = models.task_class(cfg.model).input_format.from_data_config(
        tokenizer, cfg.data
    )
    train, validation = pipeline.build_datasets(
        cfg.data,
        input_format,
        plan,
        batch_size=cfg.train.global_batch_size,
        seed=cfg.train.seed,
        splits=splits,
        eval_batch_size=eval_batch_size,
    )
    return train, validation, plan


def read_metrics(run_dir, key="loss"):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [(row["step"], row[key]) for row in rows if key in row]


def checkpoint_values(prefix):
    """{name: array} of every trainable model variable in a checkpoint (the
    object graph names them through the optimizer's variable list)."""
    reader = tf.train.load_checkpoint(prefix)
    names = [
        n
        for n in reader.get_variable_to_shape_map()
        if n.startswith(("model/", "optimizer/_trainable_variables/"))
        and "OPTIMIZER_SLOT" not in n
    ]
    return {n: reader.get_tensor(n) for n in sorted(names)}


def latest_values(run_dir, sub=""):
    directory = os.path.join(run_dir, "checkpoints", sub)
    return checkpoint_values(tf.train.latest_checkpoint(directory))


def assert_same_weights(a, b, atol):
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_allclose(
            a[name], b[name], atol=atol, rtol=0, err_msg=name
        )
