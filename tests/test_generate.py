"""Generation: parity with Hugging Face `generate`, sampling, XLA, CLI."""

import contextlib
import json
import logging

import keras  # noqa: E402
import numpy as np
import pytest
import tensorflow as tf
import torch
import transformers
from click.testing import CliRunner  # noqa: E402

import keras_llm  # noqa: E402
from keras_llm.cli.main import cli  # noqa: E402
from keras_llm.convert.gpt2 import load_gpt2_weights  # noqa: E402
from keras_llm.convert.t5 import load_t5_weights  # noqa: E402
from keras_llm.data.formats import pad  # noqa: E402
from keras_llm.generation import GenerationConfig  # noqa: E402
from keras_llm.generation import decode  # noqa: E402
from keras_llm.generation import decoding_function  # noqa: E402
from keras_llm.generation import generate_ids  # noqa: E402
from keras_llm.generation import sampling  # noqa: E402
from keras_llm.models import GPT2Backbone  # noqa: E402
from keras_llm.models import GPT2CausalLM  # noqa: E402
from keras_llm.models import T5Backbone  # noqa: E402
from keras_llm.models import T5Seq2SeqLM  # noqa: E402
from keras_llm.models import TransformerBackbone  # noqa: E402
from keras_llm.models import TransformerSeq2SeqLM  # noqa: E402

VOCAB = 97
NEW_TOKENS = 12
LENGTHS = [3, 5, 7, 9, 11, 4, 13, 6]  # 8 prompts, one batch, all lengths
PAD = 0
# EOS ids picked among the tokens these random models emit mid-sequence, so
# some rows stop early (the tests check that they do) and others run out.
T5_EOS = 54
GPT2_EOS = 74
BEAM_CONFIGS = [
    dict(num_beams=5, early_stopping=True, length_penalty=1.0),
    dict(num_beams=5, early_stopping=True, length_penalty=0.6),
    dict(num_beams=5, early_stopping=False, length_penalty=0.6),
    dict(num_beams=4, early_stopping="never", length_penalty=2.0),
]


def _state_dict(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def _prompts(seed=0):
    rng = np.random.default_rng(seed)
    return [[int(i) for i in rng.integers(2, VOCAB, n)] for n in LENGTHS]


def _dense(rows, left):
    width = max(map(len, rows))
    ids = np.full((len(rows), width), PAD, np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for i, row in enumerate(rows):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, cols], mask[i, cols] = row, 1
    return torch.tensor(ids), torch.tensor(mask)


def _until_eos(ids, eos_id):
    """HF pads finished rows with pad (greedy) or EOS (beam, when pad is
    0): compare up to the first EOS, pad after it, as we do."""
    ids = np.array(ids[:, :NEW_TOKENS])
    out = np.full((len(ids), NEW_TOKENS), PAD, ids.dtype)
    out[:, : ids.shape[1]] = ids
    after = np.cumsum(out == eos_id, axis=1) - (out == eos_id) > 0
    return np.where(after, PAD, out)


@pytest.fixture(scope="module")
def t5():
    """A random HF T5 (v1.0) and ours. Larger weights than T5's init and
    embedding rows of equal norm keep greedy outputs from collapsing into
    one repeated token."""
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=12,
        d_ff=48,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        dropout_rate=0.0,
        feed_forward_proj="relu",
        decoder_start_token_id=PAD,
        pad_token_id=PAD,
        eos_token_id=T5_EOS,
    )
    reference = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if "layer_norm" in name:
                param.add_(0.2 * torch.randn_like(param))
            elif "shared" in name:
                rows = torch.randn_like(param)
                param.copy_(rows / rows.norm(dim=1, keepdim=True) * 32**0.5)
            elif "relative_attention_bias" in name:
                param.copy_(torch.randn_like(param))
            else:
                param.copy_(0.8 * torch.randn_like(param))
    backbone = T5Backbone(
        vocabulary_size=VOCAB,
        num_layers=2,
        num_heads=4,
        hidden_dim=32,
        intermediate_dim=48,
        key_value_dim=12,
        dropout=0.0,
        num_buckets=8,
        max_distance=20,
    )
    load_t5_weights(backbone, _state_dict(reference))
    model = T5Seq2SeqLM(backbone)

    def reference_ids(rows, **kwargs):
        ids, mask = _dense(rows, left=False)
        with torch.no_grad():
            out = reference.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                **kwargs,
            )
        return _until_eos(out.numpy()[:, 1:], T5_EOS)  # drop the start id

    return model, reference_ids, T5_EOS


@pytest.fixture(scope="module")
def gpt2():
    """A random HF GPT-2 and ours (larger weights, small biases: outputs
    vary)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_inner=48,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=GPT2_EOS,
        eos_token_id=GPT2_EOS,
        pad_token_id=PAD,
    )
    reference = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if "ln_" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            elif name.endswith(("wte.weight", "wpe.weight")):
                param.copy_(torch.randn_like(param))
            elif name.endswith("bias"):
                param.copy_(0.05 * torch.randn_like(param))
            else:
                param.copy_(0.5 * torch.randn_like(param))
    backbone = GPT2Backbone(
        vocabulary_size=VOCAB,
        num_layers=2,
        num_heads=4,
        hidden_dim=32,
        intermediate_dim=48,
        dropout=0.0,
        max_sequence_length=64,
    )
    load_gpt2_weights(backbone, _state_dict(reference))
    model = GPT2CausalLM(backbone)

    def reference_ids(rows, **kwargs):
        ids, mask = _dense(rows, left=True)
        with torch.no_grad():
            out = reference.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                **kwargs,
            )
        return _until_eos(out.numpy()[:, ids.shape[1] :], GPT2_EOS)

    return model, reference_ids, GPT2_EOS


@pytest.fixture(params=["t5", "gpt2"])
def pair(request):
    return request.getfixturevalue(request.param)


def _ours(model, eos_id, rows=None, jit_compile=False, **kwargs):
    return generate_ids(
        model,
        _prompts() if rows is None else rows,
        GenerationConfig(max_new_tokens=NEW_TOKENS, **kwargs),
        eos_id=eos_id,
        pad_id=PAD,
        jit_compile=jit_compile,
    )


def test_greedy_matches_hugging_face(pair):
    model, reference_ids, eos_id = pair
    expected = reference_ids(_prompts())
    np.testing.assert_array_equal(_ours(model, eos_id), expected)
    # Not degenerate: outputs vary, some rows stop at EOS and some run out.
    assert len(np.unique(expected)) > 8
    stopped = (expected == eos_id).any(axis=1)
    assert 0 < stopped.sum() < len(stopped)


@pytest.mark.parametrize("beam", BEAM_CONFIGS, ids=str)
def test_beam_search_matches_hugging_face(pair, beam):
    model, reference_ids, eos_id = pair
    expected = reference_ids(_prompts(), **beam)
    np.testing.assert_array_equal(_ours(model, eos_id, **beam), expected)
    if beam["length_penalty"] <= 1.0:  # 2.0 favours running on
        assert (expected == eos_id).any(axis=1).sum() > 0  # EOS reached


def test_length_penalty_changes_the_outcome(pair):
    # Guards the parity tests above: the settings they compare matter here.
    _, reference_ids, _ = pair
    outputs = [reference_ids(_prompts(), **beam) for beam in BEAM_CONFIGS]
    assert not np.array_equal(outputs[1], outputs[3])
    assert not np.array_equal(
        outputs[0], _until_eos(reference_ids(_prompts()), -1)
    )


def test_warpers_match_hugging_face():
    from transformers.generation import logits_process as hf

    logits = np.random.default_rng(0).normal(size=(6, 50)).astype("float32")
    logits[0, :5] = logits[0, 5]  # ties at the top-k boundary
    for kwargs, warpers in [
        (dict(temperature=0.7), [hf.TemperatureLogitsWarper(0.7)]),
        (dict(top_k=7), [hf.TopKLogitsWarper(7)]),
        (dict(top_p=0.8), [hf.TopPLogitsWarper(0.8)]),
        (
            dict(temperature=1.5, top_k=20, top_p=0.5),
            [
                hf.TemperatureLogitsWarper(1.5),
                hf.TopKLogitsWarper(20),
                hf.TopPLogitsWarper(0.5),
            ],
        ),
    ]:
        config = GenerationConfig(do_sample=True, **kwargs)
        expected = torch.tensor(logits)
        for warper in warpers:
            expected = warper(None, expected)
        ours = sampling.warp_logits(tf.constant(logits), config).numpy()
        np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-6)


def test_sampling_top_k_1_is_greedy_and_seeds_reproduce(pair):
    model, _, eos_id = pair
    greedy = _ours(model, eos_id)
    np.testing.assert_array_equal(
        _ours(model, eos_id, do_sample=True, top_k=1, seed=5), greedy
    )
    first = _ours(model, eos_id, do_sample=True, seed=1, temperature=1.5)
    again = _ours(model, eos_id, do_sample=True, seed=1, temperature=1.5)
    other = _ours(model, eos_id, do_sample=True, seed=2, temperature=1.5)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, greedy)
    # Beam sampling: seeded too.
    beams = dict(do_sample=True, num_beams=3, seed=3, top_p=0.9)
    np.testing.assert_array_equal(
        _ours(model, eos_id, **beams), _ours(model, eos_id, **beams)
    )


def test_sampled_tokens_follow_the_distribution():
    logits = np.log([[0.5, 0.25, 0.15, 0.07, 0.03]] * 20000).astype("float32")
    noise = sampling.gumbel((20000, 5), tf.constant([7, 1]), 3)
    tokens = tf.argmax(logits + noise, axis=-1).numpy()
    frequencies = np.bincount(tokens, minlength=5) / len(tokens)
    np.testing.assert_allclose(frequencies, np.exp(logits[0]), atol=0.015)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        dict(num_beams=3, early_stopping=True),
        dict(do_sample=True, top_k=10, top_p=0.9, temperature=0.8, seed=4),
    ],
    ids=["greedy", "beam", "sample"],
)
def test_xla_loop_equals_uncompiled(pair, kwargs):
    model, _, eos_id = pair
    np.testing.assert_array_equal(
        _ours(model, eos_id, jit_compile=True, **kwargs),
        _ours(model, eos_id, jit_compile=False, **kwargs),
    )


@pytest.mark.parametrize(
    "kwargs",
    [{}, dict(do_sample=True, top_k=10, seed=4)],
    ids=["greedy", "sample"],
)
def test_xla_single_prompt_equals_uncompiled(pair, kwargs):
    model, _, eos_id = pair
    rows = _prompts()[6:7]
    compiled = _ours(model, eos_id, rows, jit_compile=True, **kwargs)
    assert compiled.shape == (1, NEW_TOKENS)
    np.testing.assert_array_equal(
        compiled, _ours(model, eos_id, rows, jit_compile=False, **kwargs)
    )
    if not kwargs:  # greedy: as it decodes within the batch
        batch = _ours(model, eos_id, jit_compile=False)
        np.testing.assert_array_equal(compiled, batch[6:7])


def test_prompt_lengths_in_one_bucket_compile_once(t5):
    model, _, eos_id = t5
    config = GenerationConfig(max_new_tokens=4)
    run = decoding_function(model, config, eos_id=eos_id, pad_id=PAD)
    before = run.experimental_get_tracing_count()
    for rows in ([[5, 6, 7]], [[5, 6, 7, 8, 9, 10, 11, 12, 13]], [[9] * 16]):
        generate_ids(model, rows, config, eos_id=eos_id, pad_id=PAD)
    assert run.experimental_get_tracing_count() == before + 1  # bucket 16
    generate_ids(model, [[9] * 17], config, eos_id=eos_id, pad_id=PAD)
    assert run.experimental_get_tracing_count() == before + 2  # bucket 32


@pytest.mark.parametrize(
    "kwargs", [{}, dict(num_beams=3)], ids=["greedy", "beam"]
)
def test_export_style_trace_with_dynamic_shapes(pair, kwargs):
    # What the export does: autograph off, unknown batch and length, no XLA.
    model, _, eos_id = pair
    left = isinstance(model, GPT2CausalLM)
    config = GenerationConfig(max_new_tokens=NEW_TOKENS, **kwargs)

    @tf.function(
        autograph=False,
        input_signature=[tf.RaggedTensorSpec([None, None], tf.int32, 1)],
    )
    def serve(ragged):
        ids, mask = pad(ragged, PAD, left=left)
        return decode(model, ids, mask, config, eos_id=eos_id, pad_id=PAD)

    rows = _prompts()
    served = serve(tf.ragged.constant(rows, dtype=tf.int32)).numpy()
    np.testing.assert_array_equal(served, _ours(model, eos_id, **kwargs))


@pytest.mark.large
def test_transformer_cached_decoding_matches_full_forward():
    keras.utils.set_random_seed(0)
    model = TransformerSeq2SeqLM(
        TransformerBackbone(
            vocabulary_size=VOCAB,
            num_layers=2,
            num_heads=4,
            hidden_dim=32,
            intermediate_dim=48,
            dropout=0.0,
        )
    )
    rows = _prompts()[:4]
    ids = generate_ids(
        model, rows, GenerationConfig(max_new_tokens=6), eos_id=None, pad_id=PAD
    )
    assert ids.shape == (4, 6)
    # Greedy by hand without a cache: the whole decoder input every step.
    encoder_ids, encoder_mask = (
        t.numpy() for t in pad(tf.ragged.constant(rows, dtype=tf.int32), PAD)
    )
    decoder_ids = np.full((4, 1), PAD, np.int32)
    for _ in range(6):
        logits = model(
            {
                "encoder_token_ids": encoder_ids,
                "encoder_padding_mask": encoder_mask,
                "decoder_token_ids": decoder_ids,
                "decoder_padding_mask": np.ones_like(decoder_ids),
            }
        )
        best = np.argmax(keras.ops.convert_to_numpy(logits)[:, -1], axis=-1)
        decoder_ids = np.concatenate([decoder_ids, best[:, None]], axis=1)
    np.testing.assert_array_equal(ids, decoder_ids[:, 1:])
    beam = GenerationConfig(max_new_tokens=6, num_beams=3)
    first = generate_ids(model, rows, beam, eos_id=3, pad_id=PAD)
    np.testing.assert_array_equal(
        first, generate_ids(model, rows, beam, eos_id=3, pad_id=PAD)
    )


def test_generation_config_rejects_bad_values():
    for kwargs, message in [
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(num_beams=True), "num_beams"),
        (dict(early_stopping="sometimes"), "early_stopping"),
        (dict(do_sample=True, temperature=0.0), "temperature"),
        (dict(do_sample=True, top_p=1.5), "top_p"),
        (dict(do_sample=True, top_k=-1), "top_k"),
        (dict(top_k=5), r"^Invalid generation config: top_k=5 only applies "),
        (dict(top_k=5, seed=1), "top_k=5, seed=1 only apply when sampling"),
        (dict(length_penalty=0.6), "only applies to beam search"),
    ]:
        with pytest.raises(ValueError, match=message):
            GenerationConfig(**kwargs)


def test_generation_config_problems_name_the_fields():
    # What the CLI words in its option names (`--top-k`).
    from keras_llm.generation.config import GenerationConfigError

    with pytest.raises(GenerationConfigError) as error:
        GenerationConfig(max_new_tokens=0, top_k=5, seed=1, length_penalty=2.0)
    assert [(p.fields, p.rule, p.needs) for p in error.value.problems] == [
        (("max_new_tokens",), "an int >= 1", None),
        (("top_k", "seed"), None, "do_sample"),
        (("length_penalty",), None, "num_beams"),
    ]
    assert str(error.value) == (
        "Invalid generation config: `max_new_tokens` must be an int >= 1. "
        "Received: max_new_tokens=0; top_k=5, seed=1 only apply when "
        "sampling: set do_sample=True; length_penalty=2.0 only applies to "
        "beam search: set num_beams > 1"
    )


def test_generate_ids_rejects_what_it_cannot_decode(gpt2):
    model, _, eos_id = gpt2
    config = GenerationConfig(max_new_tokens=NEW_TOKENS)
    with pytest.raises(ValueError, match="Prompt 1 is empty"):
        generate_ids(model, [[3], []], config, eos_id=eos_id, pad_id=PAD)
    with pytest.raises(ValueError, match="allow at most 53"):
        generate_ids(model, [[3] * 54], config, eos_id=eos_id, pad_id=PAD)


# === Run dirs, texts and the CLI ===


@pytest.fixture
def t5_run_dir(tiny_run_dir):
    return tiny_run_dir("t5_tiny")


def _kllm(*args, input=None):
    return CliRunner().invoke(cli, ["generate", *map(str, args)], input=input)


@pytest.mark.large
def test_cli_equals_library_generate(t5_run_dir, tmp_path):
    prompts = ["some text", "The for loop", "x"]
    lm = keras_llm.load(t5_run_dir)
    expected = lm.generate(prompts, max_new_tokens=5)
    assert all(expected)  # something to compare
    result = _kllm(t5_run_dir, *prompts, "--max-new-tokens", 5)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == expected

    # stdin, --file, --jsonl: the same outputs. A blank line is a prompt
    # too (an empty one), so the outputs line up with the input lines.
    result = _kllm(
        t5_run_dir,
        "--max-new-tokens",
        5,
        "--no-xla",
        input="\n".join(prompts[:2]) + "\n\n" + prompts[2] + "\n",
    )
    assert result.exit_code == 0, result.output
    (blank,) = lm.generate([""], max_new_tokens=5, jit_compile=False)
    assert result.output.splitlines() == [*expected[:2], blank, expected[2]]
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(prompts) + "\n")
    result = _kllm(
        t5_run_dir, "--file", path, "--max-new-tokens", 5, "--jsonl", "--no-xla"
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines == [
        {"prompt": p, "output": o} for p, o in zip(prompts, expected)
    ]

    # Beam search and sampling options reach the library.
    beam = GenerationConfig(
        max_new_tokens=5, num_beams=3, length_penalty=0.6, early_stopping=True
    )
    result = _kllm(
        t5_run_dir,
        *prompts,
        "--max-new-tokens",
        5,
        "--num-beams",
        3,
        "--length-penalty",
        0.6,
        "--early-stopping",
        "--no-xla",
    )
    assert result.output.splitlines() == lm.generate(
        prompts, beam, jit_compile=False
    )
    sample = GenerationConfig(
        max_new_tokens=5,
        do_sample=True,
        top_k=8,
        top_p=0.9,
        temperature=0.7,
        seed=11,
    )
    result = _kllm(
        t5_run_dir,
        *prompts,
        "--max-new-tokens",
        5,
        "--do-sample",
        "--top-k",
        8,
        "--top-p",
        0.9,
        "--temperature",
        0.7,
        "--seed",
        11,
        "--no-xla",
    )
    assert result.output.splitlines() == lm.generate(
        prompts, sample, jit_compile=False
    )


def test_cli_errors(t5_run_dir, tmp_path):
    result = _kllm(tmp_path / "missing", "hello")
    assert result.exit_code == 1
    assert "Run directory not found" in result.output
    assert len(result.output.strip().splitlines()) == 1

    result = _kllm(t5_run_dir, input="")
    assert result.exit_code == 2
    assert "No prompts: stdin is empty" in result.output

    # Option errors speak the options' names, not GenerationConfig's.
    for args, message in [
        (["--temperature", 0.5], "--temperature only applies with --do-sample"),
        (
            ["--top-p", 0.9, "--seed", 3],
            "--top-p and --seed only apply with --do-sample",
        ),
        (
            ["--do-sample", "--top-p", 1.5],
            "--top-p must be in (0, 1]. Received: 1.5",
        ),
        (["--num-beams", 0], "Invalid value for '--num-beams'"),
        (
            ["--length-penalty", 0.6],
            "--length-penalty only applies with --num-beams > 1",
        ),
        (
            ["--early-stopping"],
            "--early-stopping only applies with --num-beams > 1",
        ),
    ]:
        result = _kllm(t5_run_dir, "hello", *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Error: " + message in result.output
        assert "do_sample" not in result.output
        assert "num_beams" not in result.output

    result = _kllm(t5_run_dir, "hello", "--file", tmp_path / "none.txt")
    assert result.exit_code == 2


def test_gpt2_run_dir_continues_prompts(tiny_run_dir):
    run_dir = tiny_run_dir("gpt2_tiny")
    result = _kllm(
        run_dir,
        "The for loop",
        "",
        "--max-new-tokens",
        4,
        "--no-xla",
        "--jsonl",
    )
    # An empty argument is a prompt too (it starts from EOS/BOS).
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["prompt"] for line in lines] == ["The for loop", ""]


def test_fill_mask_on_a_bert_run_dir(tiny_run_dir):
    run_dir = tiny_run_dir("bert_tiny")
    lm = keras_llm.load(run_dir)
    texts = ["the [MASK] statement", "a [MASK] b [MASK]"]
    results = lm.fill_mask(texts, top_k=3)
    assert [len(r["candidates"]) for r in results] == [1, 2]
    for result in results:
        for candidates in result["candidates"]:
            scores = [c["score"] for c in candidates]
            assert scores == sorted(scores, reverse=True)
            assert 0 < sum(scores) <= 1.0 + 1e-6
    # The best candidate is the model's argmax at the mask.
    tokenizer = lm.tokenizer
    ids = [
        tokenizer.cls_id,
        *tokenizer.tokenize(tf.constant(texts[:1])).to_list()[0],
        tokenizer.sep_id,
    ]
    logits = lm(
        {
            "token_ids": np.array([ids]),
            "padding_mask": np.ones((1, len(ids))),
            "segment_ids": np.zeros((1, len(ids))),
        }
    )
    position = ids.index(tokenizer.mask_id)
    best = int(np.argmax(keras.ops.convert_to_numpy(logits)[0, position]))
    assert results[0]["candidates"][0][0]["token_id"] == best
    with pytest.raises(ValueError, match="has no \\[MASK\\]"):
        lm.fill_mask(["no mask"])
    with pytest.raises(ValueError, match="masked language model"):
        lm.generate(["x"])

    result = _kllm(run_dir, *texts, "--top-k", 2, "--jsonl")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["output"] for line in lines] == [r["output"] for r in results]
    assert len(lines[1]["candidates"][1]) == 2


def test_cli_keeps_every_line_and_replaces_bad_bytes(t5_run_dir, tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes(b"The for loop\r\n\ncaf\xe9 au lait\n")
    args = ["--max-new-tokens", 3, "--no-xla", "--jsonl"]
    result = _kllm(t5_run_dir, "--file", path, *args)
    assert result.exit_code == 1
    assert "line 3 is not valid UTF-8" in result.stderr
    result = _kllm(t5_run_dir, "--file", path, "--errors", "replace", *args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    prompts = ["The for loop", "", "caf\ufffd au lait"]
    assert [line["prompt"] for line in lines] == prompts
    lm = keras_llm.load(t5_run_dir)
    assert [line["output"] for line in lines] == lm.generate(
        prompts, max_new_tokens=3, jit_compile=False
    )


@contextlib.contextmanager
def _warnings_logged():
    """The messages keras_llm logs in the block (kllm's own handler stops
    them from reaching pytest's, once a command has run)."""
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("keras_llm")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    "zoo_name, kept", [("t5_tiny", "start"), ("gpt2_tiny", "end")]
)
def test_one_warning_for_prompts_the_model_cuts(tiny_run_dir, zoo_name, kept):
    run_dir = tiny_run_dir(zoo_name)
    prompts = ["word " * 300, "short", "word " * 400]
    lm = keras_llm.load(run_dir)
    # data.sequence_length of both; GPT-2's positions (128) leave room.
    warning = (
        "2 of 3 prompts were longer than the model's input (64 tokens) "
        f"and were cut, keeping the {kept}."
    )
    with _warnings_logged() as messages:
        outputs = lm.generate(prompts, max_new_tokens=2, jit_compile=False)
        assert len(outputs) == 3
        lm.generate(["short"], max_new_tokens=2, jit_compile=False)
    assert messages == [warning]
    result = _kllm(run_dir, *prompts, "--max-new-tokens", 2, "--no-xla")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [warning]
    assert len(result.stdout.splitlines()) == 3


def test_max_new_tokens_is_bounded_by_the_model(tiny_run_dir, gpt2, t5):
    # A position table (GPT-2, 64 rows here): all of it, not one more.
    model, _, eos_id = gpt2
    config = GenerationConfig(max_new_tokens=64)
    ids = generate_ids(
        model, [[3]], config, eos_id=None, pad_id=PAD, jit_compile=False
    )
    assert ids.shape == (1, 64)
    with pytest.raises(ValueError, match="the model has 64 positions"):
        generate_ids(
            model,
            [[3]],
            GenerationConfig(max_new_tokens=65),
            eos_id=eos_id,
            pad_id=PAD,
        )
    # No position table (T5): MAX_NEW_TOKENS, as --max-new-tokens says.
    from keras_llm.cli import options
    from keras_llm.generation.config import MAX_NEW_TOKENS

    model, _, eos_id = t5
    with pytest.raises(ValueError, match=f"more than {MAX_NEW_TOKENS}"):
        generate_ids(
            model,
            [[3]],
            GenerationConfig(max_new_tokens=MAX_NEW_TOKENS + 1),
            eos_id=eos_id,
            pad_id=PAD,
        )
    params = options.generation_options(lambda **_: None).__click_params__
    (option,) = [p for p in params if p.name == "max_new_tokens"]
    assert f"or {MAX_NEW_TOKENS} for models" in option.help
