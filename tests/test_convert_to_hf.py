"""`kllm convert to-hf`: run dirs → Hugging Face folders that
`from_pretrained` opens, with the same logits and token ids as ours.

Two sources: Hugging Face checkpoints converted in (so a round trip
HF → keras_llm → HF must give back the same tensors), and the tiny zoo
models (random weights, tokenizers trained here).
"""

import numpy as np
import pytest
import transformers

import keras_llm
from keras_llm.convert import checkpoint
from tests.test_convert import NAMES
from tests.test_convert import TEXTS
from tests.test_convert import _compare
from tests.test_convert import _kllm
from tests.test_convert import converted  # noqa: F401 (fixture)
from tests.test_convert import hf_checkpoint  # noqa: F401 (fixture)
from tests.test_convert import spiece_model  # noqa: F401 (fixture)

_AUTO = {
    "t5": transformers.AutoModelForSeq2SeqLM,
    "gpt2": transformers.AutoModelForCausalLM,
    "bert": transformers.AutoModelForMaskedLM,
    "transformer": transformers.AutoModelForSeq2SeqLM,  # MarianMTModel
    "llama": transformers.AutoModelForCausalLM,
}


def _to_hf(run_dir, out):
    result = _kllm("convert", "to-hf", run_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    return out


def _from_pretrained(arch, directory):
    """The Hugging Face model of `directory`, asserting that every weight
    was found and used."""
    model, info = _AUTO[arch].from_pretrained(
        str(directory), output_loading_info=True
    )
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info[key], (key, info[key])
    return model.eval()


def _strip(name):
    for prefix in ("transformer.", "bert."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_gives_back_the_same_tensors(converted, tmp_path, name):  # noqa: F811
    reference, src, run_dir = converted(name)
    out = _to_hf(run_dir, tmp_path / "hf")
    original = {
        _strip(k): v for k, v in checkpoint.read_state_dict(src).items()
    }
    written = {_strip(k): v for k, v in checkpoint.read_state_dict(out).items()}
    if name == "bert_base":  # BertModel in, BertForMaskedLM out
        assert {k for k in original if not k.startswith("pooler.")} == {
            k for k in written if not k.startswith("cls.")
        }
    for key, value in written.items():
        if key in original:
            np.testing.assert_array_equal(value, original[key], err_msg=key)
    arch = name.split("_")[0]
    model = _from_pretrained(arch, out)
    compared = "bert_mlm" if arch == "bert" else name  # both masked LMs now
    for ours, expected in _compare(compared, model, keras_llm.load(run_dir)):
        np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "zoo_name",
    ["t5_tiny", "gpt2_tiny", "bert_tiny", "transformer_tiny", "llama_tiny"],
)
def test_zoo_models_open_in_hugging_face_with_the_same_outputs(
    tiny_run_dir, tmp_path, zoo_name
):
    run_dir = tiny_run_dir(zoo_name)
    out = _to_hf(run_dir, tmp_path / "hf")
    arch = zoo_name.split("_")[0]
    reference = _from_pretrained(arch, out)
    ours = keras_llm.load(run_dir)
    name = {  # how tests/test_convert.py compares each kind
        "t5": "t5_v1_0", "transformer": "t5_v1_0", "gpt2": "gpt2",
        "llama": "gpt2", "bert": "bert_mlm",
    }[arch]  # fmt: skip
    for mine, expected in _compare(name, reference, ours):
        np.testing.assert_allclose(mine, expected, atol=1e-4, rtol=0)
        assert np.ptp(expected) > 0.1  # not trivially flat
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    texts = TEXTS + ["  spaces  and\ttabs, accents: café, naïve"]
    expected_ids = [
        hf_tokenizer.encode(t, add_special_tokens=False) for t in texts
    ]
    assert ours.tokenizer.tokenize(texts).to_list() == expected_ids


def test_an_existing_folder_needs_overwrite(converted, tmp_path):  # noqa: F811
    _, _, run_dir = converted("gpt2")
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _kllm("convert", "to-hf", run_dir, "--out", out)
    assert result.exit_code == 1
    assert "already exists: pass --overwrite" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    _to_hf_overwrite = _kllm(
        "convert", "to-hf", run_dir, "--out", out, "--overwrite"
    )
    assert _to_hf_overwrite.exit_code == 0, _to_hf_overwrite.output
    assert not (out / "keep.txt").exists()
    assert (out / "model.safetensors").is_file()


def test_not_a_run_dir_is_named(tmp_path):
    result = _kllm("convert", "to-hf", tmp_path, "--out", tmp_path / "hf")
    assert result.exit_code == 1
    assert "is not a run directory" in result.output
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize(
    "zoo_name",
    ["t5_tiny", "gpt2_tiny", "bert_tiny", "transformer_tiny", "llama_tiny"],
)
def test_out_and_back_in_gives_the_same_model(tiny_run_dir, tmp_path, zoo_name):
    """keras_llm → Hugging Face → keras_llm: every weight and token id as
    it was (the Transformer passes through MarianMTModel, its channels
    permuted out and back)."""
    run_dir = tiny_run_dir(zoo_name)
    hf_dir = _to_hf(run_dir, tmp_path / "hf")
    back = tmp_path / "back"
    result = _kllm("convert", "hf", hf_dir, "--out", back)
    assert result.exit_code == 0, result.output
    ours, again = keras_llm.load(run_dir), keras_llm.load(str(back))
    if zoo_name == "bert_tiny":  # the pooler does not go out (no MLM use)
        skip = {v.path for v in ours.backbone.pooled_dense.weights}
    else:
        skip = set()
    pairs = [
        (a, b)
        for a, b in zip(ours.weights, again.weights, strict=True)
        if a.path not in skip
    ]
    for a, b in pairs:
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    texts = TEXTS + ["  spaces  and\ttabs, accents: café, naïve"]
    assert (
        again.tokenizer.tokenize(texts).to_list()
        == ours.tokenizer.tokenize(texts).to_list()
    )


@pytest.mark.parametrize("hidden_act", ["gelu_new", "gelu_pytorch_tanh"])
def test_a_tanh_gelu_bert_converts_both_ways(
    hf_checkpoint,  # noqa: F811
    tmp_path,
    hidden_act,
):
    """BERT with transformers' tanh-approximated GELU (keras-hub's encoder
    activation) converts in as `activation: gelu_tanh` and goes back out
    as `gelu_pytorch_tanh`, the logits Hugging Face's within 1e-4."""
    import json
    import shutil

    src = tmp_path / "src"
    shutil.copytree(hf_checkpoint("bert_mlm")[1], src)
    path = src / "config.json"
    path.write_text(
        json.dumps({**json.loads(path.read_text()), "hidden_act": hidden_act})
    )
    reference = _from_pretrained("bert", src)
    run_dir = tmp_path / "run"
    result = _kllm("convert", "hf", src, "--out", run_dir)
    assert result.exit_code == 0, result.output
    model = keras_llm.load(str(run_dir))
    m = model.config.model
    assert (m.activation, m.head_activation) == ("gelu_tanh", None)
    for ours, expected in _compare("bert_mlm", reference, model):
        np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    out = _to_hf(run_dir, tmp_path / "hf")
    written = json.loads((out / "config.json").read_text())
    assert written["hidden_act"] == "gelu_pytorch_tanh"
    for ours, expected in _compare("bert_mlm", _from_pretrained("bert", out),
                                   model):  # fmt: skip
        np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)


def test_head_settings_hugging_face_cannot_hold_are_warned_of():
    """keras-hub's head (exact GELU, epsilon 1e-5 under a tanh encoder):
    Hugging Face's BERT has one hidden_act and one layer_norm_eps."""
    from keras_llm import config as config_lib
    from keras_llm.convert import bert

    cfg = config_lib.BertConfig(
        vocabulary_size=100, activation="gelu_tanh", head_activation="gelu",
        head_layer_norm_epsilon=1e-5,
    )  # fmt: skip
    notes = bert.hf_notes(cfg)
    assert any("model.head_activation=gelu is not written" in n for n in notes)
    assert any("model.head_layer_norm_epsilon=1e-05" in n for n in notes)
    plain = config_lib.BertConfig(vocabulary_size=100)
    assert len(bert.hf_notes(plain)) == 1  # the pooler's only
