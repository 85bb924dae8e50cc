"""The training step itself: 1 and 2 replicas (and micro-batches) take the
same step, the gradients cross replicas in one all-reduce, and the loop
reads the loss back only at log, validation and checkpoint steps."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_llm
from keras_llm import config as config_lib
from keras_llm.training import loop
from keras_llm.training import steps
from tests import train_utils


@pytest.fixture(scope="module")
def setup(sentencepiece_dir):
    """`(cfg, batches, initial weights)`: the tiny T5, two batches of 8."""
    from keras_llm.data import tokenizer as tokenizer_lib
    from keras_llm.models import build_model

    cfg = train_utils.tiny_config(
        sentencepiece_dir,
        train__global_batch_size=8,
        data__sequence_length=32,
        data__target_sequence_length=12,
        runtime__jit_compile=False,
    )
    tokenizer = tokenizer_lib.load_tokenizer(sentencepiece_dir)
    train, _, _ = train_utils.build_datasets(cfg, tokenizer)
    batches = list(train.take(2))
    keras.utils.set_random_seed(0)
    model = build_model(cfg.model, kind=config_lib.kind_of(cfg))
    model(batches[0][0])
    return cfg, batches, model.get_weights()


def _one_step(setup, strategy, accumulation):
    """`(loss, step_fn, dataset, weight change)` of one SGD step (learning
    rate 1: the change is minus the clipped, all-reduced gradient)."""
    from keras_llm.models import build_model

    cfg, batches, weights = setup
    with strategy.scope():
        model = build_model(cfg.model, kind=config_lib.kind_of(cfg))
        model(batches[0][0])
        model.set_weights(weights)
        optimizer = keras.optimizers.SGD(learning_rate=1.0)
        optimizer.build(model.trainable_variables)
    step_fn = steps.make_step_fn(
        cfg, strategy, model, optimizer, 1, accumulation
    )
    dataset = tf.data.Dataset.from_tensors(batches[0])
    loss, tokens = step_fn(iter(dataset))
    assert float(tokens) > 0
    change = [a - b for a, b in zip(model.get_weights(), weights)]
    return float(loss), step_fn, dataset, change


def _mirrored():
    return tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])


def test_one_and_two_replicas_and_micro_batches_take_the_same_step(setup):
    results = [
        _one_step(setup, tf.distribute.OneDeviceStrategy("CPU:0"), 1),
        _one_step(setup, _mirrored(), 1),
        _one_step(setup, _mirrored(), 2),  # 2 micro-batches per replica
    ]
    loss, _, _, change = results[0]
    assert sum(float(np.abs(c).sum()) for c in change) > 0
    for other_loss, _, _, other_change in results[1:]:
        np.testing.assert_allclose(other_loss, loss, rtol=1e-6)
        for a, b in zip(change, other_change):
            np.testing.assert_allclose(b, a, atol=1e-6, rtol=0)


def test_the_gradients_cross_replicas_in_one_all_reduce(setup):
    """Two collectives per replica and step: the count of target tokens
    (needed before the forward pass), then every gradient and the loss
    packed together (before: each of the 47 gradients summed on its own,
    on one device)."""
    _, step_fn, dataset, _ = _one_step(setup, _mirrored(), 1)
    graph = step_fn.get_concrete_function(iter(dataset)).graph
    per_device = collections.Counter(
        tf.DeviceSpec.from_string(op.device).device_index
        for op in graph.get_operations()
        if op.type.startswith("CollectiveReduce")
    )
    assert per_device == {0: 2, 1: 2}, per_device


def test_the_loss_is_read_back_at_log_validation_and_checkpoint_steps(
    sentencepiece_dir, tmp_path, monkeypatch
):
    reads = []
    real = loop._to_host

    def counted(tensors):
        reads.append(len(tensors[0]))  # the steps read at once
        return real(tensors)

    monkeypatch.setattr(loop, "_to_host", counted)
    cfg = train_utils.tiny_config(
        sentencepiece_dir,
        train__train_steps=12,
        train__log_interval_steps=5,
        train__eval_interval_steps=8,
        train__checkpoint_interval_steps=100,
        train__global_batch_size=8,
        data__sequence_length=32,
        data__target_sequence_length=12,
        runtime__jit_compile=False,
        runtime__strategy="mirrored",
        runtime__num_cpu_devices=2,
    )
    keras_llm.train(cfg, str(tmp_path / "run"))
    # Steps 1 and 2 (they time the ETA), 5 and 10 (log), 8 (validation),
    # 12 (the last: log, validation, checkpoint): each read once.
    assert reads == [1, 1, 3, 3, 2, 2], reads
    assert [s for s, _ in train_utils.read_metrics(str(tmp_path / "run"))] == [
        5,
        10,
        12,
    ]
