"""Weight-only int8 (`keras_llm.quantization`, `--quantize int8`): the
per-channel error bound, the int8 product in and out of XLA (and outside
XLA's loop hoisting), a tiny model's greedy agreement with float32, the
export's size and its TF Serving-style loading, and bad values."""

import glob
import json
import os
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import keras_llm
from keras_llm import quantization
from keras_llm.cli import options
from keras_llm.cli.main import cli
from keras_llm.generation import GenerationConfig
from keras_llm.generation import generate_ids
from keras_llm.layers import TokenEmbedding
from keras_llm.layers import int8
from keras_llm.serving import METADATA_FILE
from tests.test_export import session_run

PROMPTS = ["The for loop", "Python", "a", "while True: pass and more words"]


def test_per_channel_error_bound():
    rng = np.random.default_rng(0)
    # Output channels of very different sizes, and one of zeros.
    kernel = rng.normal(size=(48, 64)) * rng.uniform(1e-3, 10, size=(1, 64))
    kernel[:, 5] = 0.0
    values, scale = int8.quantize_kernel(kernel.T, 1)  # (N, D), (N,)
    assert values.dtype == np.int8 and values.shape == (64, 48)
    assert scale.dtype == np.float32 and scale.shape == (64,)
    assert np.abs(values).max() == 127
    error = np.abs(kernel.T - values * scale[:, None])
    # Round to nearest: at most half a step of the channel's own scale.
    assert np.all(error <= scale[:, None] * (0.5 + 1e-5))
    np.testing.assert_array_equal(values[5], 0)
    assert scale[5] == 1.0


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 48), (3, 48), (2, 7, 48)])
def test_int8_matmul_equals_the_dequantized_product(shape, jit_compile):
    # 1 and 3 rows: one-row products under XLA; 14 rows: one product.
    rng = np.random.default_rng(1)
    values, scale = int8.quantize_kernel(rng.normal(size=(3000, 48)), 1)
    inputs = rng.normal(size=shape).astype("float32")
    expected = inputs @ (values * scale[:, None]).T

    @tf.function(jit_compile=jit_compile, autograph=False)
    def product(x):
        return int8.int8_matmul(x, tf.constant(values), tf.constant(scale))

    np.testing.assert_allclose(product(inputs), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("rows", [1, 12])
def test_xla_keeps_the_conversion_inside_a_loop(rows):
    # XLA would convert the loop-invariant kernel once, before the loop,
    # and hold a float copy of it for the whole call.
    values = tf.Variable(np.ones((300, 16), np.int8))
    scale = tf.Variable(np.ones(300, np.float32))

    @tf.function(jit_compile=True, autograph=False)
    def loop(x):
        def body(i, x):
            y = int8.int8_matmul(x, values, scale)  # (R, 300)
            return i + 1, tf.tanh(y[:, :16])

        return tf.while_loop(lambda i, _: i < 4, body, (0, x))[1]

    x = tf.ones((rows, 16))
    hlo = loop.experimental_get_compiler_ir(x)(stage="optimized_hlo")
    entry = hlo[hlo.index("\nENTRY") :]
    entry = entry[: entry.index("\n}")]
    assert "s8[300,16]" in entry  # the kernel reaches the entry as int8
    assert "f32[300,16]" not in entry  # and is converted in the loop only


def test_without_xla_the_conversions_wait_for_the_activations(monkeypatch):
    # Else a tf.while_loop runs the next iterations' conversions ahead
    # (parallel_iterations), their float copies alive at once.
    monkeypatch.setattr(int8, "SLICE_BYTES", 16 * 100)
    kernel = tf.Variable(np.ones((300, 16), np.int8))
    scale = tf.Variable(np.ones(300, np.float32))
    product = tf.function(
        lambda x: int8.int8_matmul(x, kernel, scale), autograph=False
    )
    graph = product.get_concrete_function(tf.TensorSpec([None, 16])).graph
    reads = [  # one read of the kernel per slice
        op
        for op in graph.get_operations()
        if op.type == "ReadVariableOp" and op.outputs[0].dtype == tf.int8
    ]
    assert len(reads) == 3  # 100 + 100 + 100 rows
    assert all(op.control_inputs for op in reads)


@pytest.mark.parametrize(
    "layer, quantized",
    [
        (keras.layers.Dense(6, activation="relu"), True),
        (
            keras.layers.EinsumDense(
                "btd,de->bte", (None, 6), bias_axes="e", activation="gelu"
            ),
            True,
        ),
        (keras.layers.EinsumDense("...d,de->...e", (6,)), True),
        (keras.layers.EinsumDense("btd,dhk->bthk", (None, 2, 3)), False),
        (keras.layers.EinsumDense("btd,de->bed", (6, 5)), False),
    ],
)
def test_dense_layers_are_quantized_in_place(layer, quantized):
    inputs = np.random.default_rng(2).normal(size=(2, 4, 5)).astype("f")
    expected = layer(inputs).numpy()
    assert int8.is_projection(layer) is quantized
    if not quantized:
        with pytest.raises(ValueError, match="quantize_dense"):
            int8.quantize_dense(layer)
        return
    int8.quantize_dense(layer)
    assert isinstance(layer, int8.INT8_LAYERS)
    assert [v.dtype for v in layer.weights if "kernel" in v.path] == [
        "int8",
        "float32",
    ]
    np.testing.assert_allclose(layer(inputs), expected, atol=0.02)


@pytest.fixture(scope="module")
def tiny_t5():
    from keras_llm import config as config_lib

    keras.utils.set_random_seed(0)
    cfg = config_lib.load_config("t5_tiny")
    float_model = keras_llm.build(cfg)
    model = keras_llm.build(cfg)
    model.set_weights(float_model.get_weights())
    return float_model, quantization.quantize(model)


def test_every_kernel_and_table_is_int8(tiny_t5):
    float_model, model = tiny_t5
    layers = list(model._flatten_layers(include_self=False))
    assert not any(int8.is_projection(layer) for layer in layers)
    assert all(
        layer.int8 for layer in layers if isinstance(layer, TokenEmbedding)
    )
    assert quantization.quantization_mode(model) == "int8"
    assert quantization.quantization_mode(float_model) is None

    def size(m):
        return sum(v.numpy().nbytes for v in m.weights)

    # int8 kernels + a float32 scale per output; norms and the relative
    # position table stay float32.
    assert 0.25 < size(model) / size(float_model) < 0.3
    features = {
        "encoder_token_ids": np.arange(2, 22).reshape(2, 10),
        "encoder_padding_mask": np.ones((2, 10), "int32"),
        "decoder_token_ids": np.arange(3, 13).reshape(2, 5),
        "decoder_padding_mask": np.ones((2, 5), "int32"),
    }
    expected = float_model(features).numpy()
    logits = model(features).numpy()
    assert np.abs(logits - expected).max() < 0.05 * np.abs(expected).max()


def test_training_and_a_second_quantize_are_refused(tiny_t5):
    _, model = tiny_t5
    features = {
        "encoder_token_ids": np.ones((1, 4), "int32"),
        "encoder_padding_mask": np.ones((1, 4), "int32"),
        "decoder_token_ids": np.ones((1, 2), "int32"),
        "decoder_padding_mask": np.ones((1, 2), "int32"),
    }
    with pytest.raises(ValueError, match="for inference only"):
        model(features, training=True)
    with pytest.raises(ValueError, match="quantized already"):
        quantization.quantize(model)


def test_unknown_mode_is_one_line(tiny_run_dir):
    with pytest.raises(ValueError) as error:
        keras_llm.load(tiny_run_dir("t5_tiny"), quantize="int4")
    assert str(error.value) == (
        "`quantize` must be one of int8 (or None for float weights). "
        "Received: quantize='int4'"
    )


def test_cli_choices_are_the_library_modes():
    assert options.QUANTIZE_MODES == quantization.MODES


@pytest.mark.parametrize("command", ["generate", "evaluate", "export"])
def test_cli_refuses_int4_in_one_line(command, tmp_path):
    args = {
        "generate": ["generate", str(tmp_path), "hi"],
        "evaluate": ["evaluate", str(tmp_path), "--data", "x.tsv"],
        "export": ["export", str(tmp_path), "--out", str(tmp_path / "m")],
    }[command]
    result = CliRunner().invoke(cli, args + ["--quantize", "int4"])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if "int4" in line]
    assert errors == [
        "Error: Invalid value for '--quantize': 'int4' is not 'int8'."
    ]


def test_cli_generate_passes_quantize_to_load(tmp_path):
    lm = mock.Mock(kind="seq2seq")
    lm.generate.return_value = ["out"]
    with (
        mock.patch("keras_llm.loading.load", return_value=lm) as load,
        mock.patch("keras_llm.cli.options.check_max_new_tokens"),
        mock.patch("keras_llm.cli.options.announce_checkpoint"),
    ):
        result = CliRunner().invoke(
            cli, ["generate", str(tmp_path), "hi", "--quantize", "int8"]
        )
    assert result.exit_code == 0, result.output
    assert load.call_args.kwargs["quantize"] == "int8"


def _greedy_ids(lm, texts, new_tokens):
    ids = lm.make_format().prompt_ids(tf.constant(texts), new_tokens)
    return generate_ids(
        lm,
        ids,
        GenerationConfig(max_new_tokens=new_tokens),
        eos_id=None,  # every row makes `new_tokens`: positions line up
        pad_id=lm.tokenizer.pad_id,
    )


@pytest.mark.large
def test_greedy_agreement_with_float32(tiny_run_dir):
    # A random GPT-2 (seed 0): its flat logits flip more easily than a
    # trained model's, yet its continuations vary (47 distinct ones of 60
    # measured). Measured: 98.6% of the tokens at the same positions.
    from keras_llm.data import sources

    texts = [
        paragraph.split("\n")[0][:80]
        for paragraph in sources.pydoc_documents()[400:460]
    ]
    run_dir = tiny_run_dir("gpt2_tiny")
    expected = _greedy_ids(keras_llm.load(run_dir), texts, 16)
    ids = _greedy_ids(keras_llm.load(run_dir, quantize="int8"), texts, 16)
    assert len({tuple(row) for row in expected}) > 30  # not one answer
    assert (ids == expected).mean() >= 0.95


def _variables_bytes(export_dir):
    files = glob.glob(os.path.join(export_dir, "variables", "variables.*"))
    return sum(os.path.getsize(path) for path in files)


@pytest.mark.large
def test_int8_export_is_a_quarter_and_serves_like_the_library(
    tiny_run_dir, tmp_path
):
    run_dir = tiny_run_dir("t5_tiny")
    out = str(tmp_path / "models")
    config = GenerationConfig(max_new_tokens=6)
    default = keras_llm.export(run_dir, out, name="t5", config=config)
    result = CliRunner().invoke(
        cli,
        ["export", run_dir, "--out", out, "--name", "t5", "--quantize"]
        + ["int8", "--max-new-tokens", "6"],
    )
    assert result.exit_code == 0, result.output
    export_dir = os.path.join(out, "t5", "2")

    def metadata(path):
        with open(os.path.join(path, "assets.extra", METADATA_FILE)) as f:
            return json.load(f)

    assert metadata(default)["quantize"] is None
    assert metadata(export_dir)["quantize"] == "int8"
    ratio = _variables_bytes(export_dir) / _variables_bytes(default)
    assert 0.2 < ratio < 0.3, ratio
    # In a fresh process, through the TF1 session loader (as TF Serving).
    reply = session_run(
        export_dir,
        [{"signature": "serving_default", "inputs": {"inputs": PROMPTS}}],
        tmp_path,
    )
    lm = keras_llm.load(run_dir, quantize="int8")
    expected = lm.generate(PROMPTS, config, jit_compile=False)
    assert reply["results"][0]["outputs"] == expected
    ops = set(reply["ops"])
    assert ops <= set(reply["core_ops"]) | set(reply["text_ops"])
    assert not [op for op in ops if op.startswith("Xla")]
    assert reply["xla_functions"] == []
