"""Hugging Face's `tokenizer.json` in and out, and decoding as Hugging Face.

Every tokenizer is built here: SentencePiece and WordPiece trained on
`pydoc_data.topics`, GPT-2's real vocabulary (the test extra), a tiny
Llama-3-style byte-level BPE trained with `tokenizers`; the Hugging Face
folders are written by transformers' own `save_pretrained` (which, in
transformers 5, writes `tokenizer.json` and no legacy files).
"""

import json
import os
import pydoc_data.topics
import shutil

import numpy as np
import pytest
import tensorflow as tf
import transformers

from keras_llm.convert import hf_tokenizer
from keras_llm.data import bpe_tokenizer
from keras_llm.data import tokenizer as tokenizer_lib
from tests import helpers
from tests.data.test_tokenizer import SENTINEL_TEXTS
from tests.data.test_tokenizer import TEXTS

CORPUS = list(pydoc_data.topics.topics.values())[:40]
NUM_SENTINELS = 100
# Whitespace runs, accents, CJK, emoji, and special tokens in the text.
VARIED = TEXTS + [
    "a\n\n\nb",
    "x  \n  y",
    "'s 's  'S",
    "end  ",
    "  \tword  12345678  !!\n\nnext",
    "Hello <|endoftext|> world<|end_of_text|>",
    "[MASK] [mask] x[SEP]y [CLS]",
]
T5_TEXTS = VARIED + SENTINEL_TEXTS
LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|reserved_special_token_0|>",
]


def _hf_ids(hf, texts):
    return [hf(text, add_special_tokens=False)["input_ids"] for text in texts]


def _ids(tokenizer, texts):
    return tokenizer.tokenize(tf.constant(texts)).to_list()


def _strings(texts):
    return [t.decode("utf-8") for t in np.asarray(texts).tolist()]


# Hugging Face's tokenizer classes of the legacy folders.
HF_CLASSES = {
    "t5": lambda d: transformers.T5Tokenizer.from_pretrained(
        d, extra_ids=NUM_SENTINELS
    ),
    "gpt2": transformers.GPT2Tokenizer.from_pretrained,
    "bert": transformers.BertTokenizer.from_pretrained,
}


def _json_only(directory, name):
    """Resaves a folder's tokenizer with transformers (tokenizer.json and
    tokenizer_config.json), and removes the legacy files."""
    hf = HF_CLASSES[name](str(directory))
    for name in ("spiece.model", "vocab.json", "merges.txt", "vocab.txt"):
        if (directory / name).exists():
            (directory / name).unlink()
    hf.save_pretrained(str(directory))
    assert sorted(os.listdir(directory)) == [
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    return directory


# --- Fixtures: our tokenizers and Hugging Face folders of them -----------


@pytest.fixture(scope="module")
def legacy_dirs(tmp_path_factory):
    """kind → a folder with our tokenizer in Hugging Face's legacy files."""
    root = tmp_path_factory.mktemp("legacy")
    tokenizer_lib.train_sentencepiece(
        CORPUS, 300, str(root / "t5"), num_sentinels=NUM_SENTINELS
    )
    tokenizer_lib.train_wordpiece(CORPUS, 300, str(root / "bert"))
    (root / "gpt2").mkdir()
    encoder, merges = helpers.gpt2_vocabulary_files()
    shutil.copy(encoder, root / "gpt2" / "vocab.json")
    shutil.copy(merges, root / "gpt2" / "merges.txt")
    return {name: root / name for name in ("t5", "bert", "gpt2")}


@pytest.fixture(scope="module")
def ours(legacy_dirs):
    return {
        "t5": tokenizer_lib.load_tokenizer(str(legacy_dirs["t5"])),
        "bert": tokenizer_lib.load_tokenizer(str(legacy_dirs["bert"])),
        "gpt2": tokenizer_lib.BytePairTokenizer(
            legacy_dirs["gpt2"] / "vocab.json",
            legacy_dirs["gpt2"] / "merges.txt",
        ),
    }


@pytest.fixture(scope="module")
def json_dirs(legacy_dirs, tmp_path_factory):
    """name → a folder holding only tokenizer.json + tokenizer_config.json,
    written by transformers from the legacy files."""
    root = tmp_path_factory.mktemp("json")
    dirs = {}
    for name, legacy in legacy_dirs.items():
        dirs[name] = root / name
        shutil.copytree(legacy, dirs[name])
        (dirs[name] / "keras_llm_tokenizer.json").unlink(missing_ok=True)
        _json_only(dirs[name], name)
    return dirs


@pytest.fixture(scope="module")
def llama3_dir(tmp_path_factory):
    """A tiny Llama-3-style tokenizer (byte-level BPE, Llama 3's split
    regex, ignore_merges, <|begin_of_text|> ...), saved by transformers."""
    from tokenizers import AddedToken
    from tokenizers import Regex
    from tokenizers import Tokenizer
    from tokenizers import decoders
    from tokenizers import models
    from tokenizers import pre_tokenizers
    from tokenizers import processors
    from tokenizers import trainers

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(bpe_tokenizer.LLAMA3_SPLIT_PATTERN), "isolated"
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in LLAMA3_SPECIALS]
    )
    # As Llama 3's tokenizer.json: every text starts with <|begin_of_text|>.
    bos = ("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos[0]} $A",
                pair=f"{bos[0]} $A {bos[0]}:1 $B:1",
                special_tokens=[bos],
            ),
        ]
    )
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
    )
    directory = tmp_path_factory.mktemp("llama3")
    hf.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def llama2_model_dir(tmp_path_factory):
    """A tiny Llama-2-style tokenizer (SentencePiece BPE with byte fallback,
    <unk> <s> </s>) as Meta ships it: `tokenizer.model` alone."""
    import io

    import sentencepiece

    lines = [line for text in CORPUS for line in text.splitlines()]
    writer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([line for line in lines if line.strip()]),
        model_writer=writer, vocab_size=600, model_type="bpe",
        byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, split_digits=True,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2,
        pad_id=-1, num_threads=1, minloglevel=2,
    )  # fmt: skip
    directory = tmp_path_factory.mktemp("llama2_model")
    (directory / "tokenizer.model").write_bytes(writer.getvalue())
    return directory


@pytest.fixture(scope="module")
def llama2_dir(tmp_path_factory, llama2_model_dir):
    """The same tokenizer as transformers 5 saves it: tokenizer.json
    only."""
    hf = transformers.LlamaTokenizer.from_pretrained(str(llama2_model_dir))
    directory = tmp_path_factory.mktemp("llama2")
    hf.save_pretrained(str(directory))
    return directory


# --- tokenizer.json in ----------------------------------------------------


@pytest.mark.parametrize("name", ["t5", "gpt2", "bert"])
def test_tokenizer_json_ids_equal_hugging_face(json_dirs, ours, name):
    directory = json_dirs[name]
    tokenizer = hf_tokenizer.load_hf_tokenizer(str(directory))
    hf = transformers.AutoTokenizer.from_pretrained(str(directory))
    texts = T5_TEXTS if name == "t5" else VARIED
    assert _ids(tokenizer, texts) == _hf_ids(hf, texts)
    # The same tokenizer as the legacy files give, settings and all.
    assert type(tokenizer) is type(ours[name])
    assert tokenizer.vocabulary_size == ours[name].vocabulary_size == len(hf)
    assert tokenizer.special_ids == ours[name].special_ids
    assert sorted(tokenizer.special_ids) == sorted(hf.all_special_ids)
    assert _ids(tokenizer, texts) == _ids(ours[name], texts)
    if name == "t5":
        assert tokenizer.num_sentinels == NUM_SENTINELS
        assert tokenizer.sentinel_id(0) == hf.convert_tokens_to_ids(
            "<extra_id_0>"
        )
        assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.unk_id) == (
            0,
            1,
            2,
        )


def test_t5_tokenizer_json_as_transformers_4_wrote_it(json_dirs, tmp_path):
    # Hub T5 files: Strip and Replace(" {2,}" → "▁") after the charsmap, a
    # Metaspace pre-tokenizer alone.
    shutil.copytree(json_dirs["t5"], tmp_path / "t5")
    path = tmp_path / "t5" / "tokenizer.json"
    data = json.loads(path.read_text())
    data["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            data["normalizer"],
            {"type": "Strip", "strip_left": False, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"},
        ],
    }
    data["pre_tokenizer"] = {
        "type": "Metaspace",
        "replacement": "▁",
        "add_prefix_space": True,
        "prepend_scheme": "always",
        "split": True,
    }
    path.write_text(json.dumps(data))
    tokenizer = hf_tokenizer.load_hf_tokenizer(str(tmp_path / "t5"))
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "t5"))
    assert _ids(tokenizer, T5_TEXTS) == _hf_ids(hf, T5_TEXTS)


def test_llama3_style_tokenizer_json_ids_equal_hugging_face(llama3_dir):
    tokenizer = hf_tokenizer.load_hf_tokenizer(str(llama3_dir))
    hf = transformers.AutoTokenizer.from_pretrained(str(llama3_dir))
    texts = VARIED + [f"a{t}b {t} c" for t in LLAMA3_SPECIALS]
    assert _ids(tokenizer, texts) == _hf_ids(hf, texts)
    assert tokenizer.split_pattern == bpe_tokenizer.LLAMA3_SPLIT_PATTERN
    assert tokenizer.ignore_merges
    assert tokenizer.bos_id == hf.bos_token_id
    assert tokenizer.eos_id == tokenizer.pad_id == hf.eos_token_id
    assert tokenizer.add_bos  # the file's template starts with BOS
    # What skip_special_tokens drops: every added token marked special.
    specials = [i for i, t in hf.added_tokens_decoder.items() if t.special]
    assert sorted(tokenizer.special_ids) == sorted(specials)


def test_llama3_split_equals_the_original_regex():
    # Random texts from the characters where RE2 and Llama 3's lookahead
    # regex could part: every kind of whitespace before letters, digits,
    # punctuation and newlines.
    from tokenizers import Regex
    from tokenizers import pre_tokenizers

    alphabet = list("ab Z9 1\t\n\r'sS!.,-é中 \xa0\u3000\x85")
    alphabet += ["  ", "\n\n", "'re", "'LL", "😀", "x\u0301"]
    rng = np.random.default_rng(0)
    texts = [
        "".join(rng.choice(alphabet, rng.integers(0, 14))) for _ in range(600)
    ]
    for pattern, split in (
        (bpe_tokenizer.LLAMA3_SPLIT_PATTERN, bpe_tokenizer.split_words_llama3),
        (bpe_tokenizer.GPT2_SPLIT_PATTERN, bpe_tokenizer.split_words),
    ):
        reference = pre_tokenizers.Split(Regex(pattern), "isolated")
        ours = [
            [w.decode("utf-8") for w in words]
            for words in split(tf.constant(texts)).to_list()
        ]
        expected = [
            [w for w, _ in reference.pre_tokenize_str(t)] for t in texts
        ]
        assert ours == expected


def test_a_lookaround_free_split_regex_runs_as_written(llama3_dir, tmp_path):
    shutil.copytree(llama3_dir, tmp_path / "tok")
    path = tmp_path / "tok" / "tokenizer.json"
    data = json.loads(path.read_text())
    split = data["pre_tokenizer"]["pretokenizers"][0]
    split["pattern"]["Regex"] = r"\p{L}+|\p{N}|[^\s\p{L}\p{N}]+|\s+"
    path.write_text(json.dumps(data))
    tokenizer = hf_tokenizer.load_hf_tokenizer(str(tmp_path / "tok"))
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert _ids(tokenizer, VARIED) == _hf_ids(hf, VARIED)

    split["pattern"]["Regex"] = r"\w+(?=\s)|\s+"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="lookaround"):
        hf_tokenizer.load_hf_tokenizer(str(tmp_path / "tok"))


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d: d["model"].update(type="WordLevel"),
            "tokenizer model type 'WordLevel' is not supported; keras_llm "
            "reads Unigram (T5), BPE (byte-level as GPT-2's and Llama 3's, "
            "or with byte_fallback as Llama 2's) and WordPiece (BERT).",
        ),
        (
            lambda d: d.update(pre_tokenizer={"type": "Whitespace"}),
            "a BPE that is neither byte-level (GPT-2, Llama 3) nor "
            "SentencePiece-style with byte_fallback as Llama 2's is not "
            "supported.",
        ),
    ],
)
def test_unsupported_tokenizer_json_is_one_line(
    llama3_dir, tmp_path, change, message
):
    shutil.copytree(llama3_dir, tmp_path / "tok")
    path = tmp_path / "tok" / "tokenizer.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as error:
        hf_tokenizer.load_hf_tokenizer(str(tmp_path / "tok"))
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


LLAMA2_TEXTS = VARIED + [
    "<s>Hello</s> world",
    " leading",
    "a <s> b",
    "a <s>b",
    "ünïcödé ✓ 😀 \x85",
]


@pytest.mark.parametrize(
    "config, scheme",
    [
        ({}, "first"),
        ({"legacy": True}, "always"),
        ({"add_prefix_space": False}, "never"),
        # Not LlamaTokenizer: the file's own Metaspace.
        ({"tokenizer_class": "PreTrainedTokenizerFast"}, "first"),
    ],
)
def test_llama2_style_tokenizer_json_in_and_out(
    llama2_dir, tmp_path, config, scheme
):
    shutil.copytree(llama2_dir, tmp_path / "in")
    path = tmp_path / "in" / "tokenizer_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    tokenizer = hf_tokenizer.load_hf_tokenizer(str(tmp_path / "in"))
    assert tokenizer.kind == "sentencepiece"
    assert tokenizer.prepend_scheme == scheme
    assert (tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2)
    assert tokenizer.pad_id == tokenizer.eos_id  # Llama has no pad
    # transformers 5 saved this file without a BOS template.
    assert not tokenizer.add_bos
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "in"))
    ids = _ids(tokenizer, LLAMA2_TEXTS)
    assert ids == _hf_ids(hf, LLAMA2_TEXTS)
    # Invalid byte runs decode as U+FFFD per byte piece, as ByteFallback.
    rows = _random_ids(tokenizer, 100) + ids
    assert _decode(tokenizer, rows) == hf.batch_decode(
        rows, skip_special_tokens=True
    )
    # Our metadata keeps the scheme; written back, transformers agrees.
    tokenizer.save(str(tmp_path / "ours"))
    loaded = tokenizer_lib.load_tokenizer(str(tmp_path / "ours"))
    assert _ids(loaded, LLAMA2_TEXTS) == ids
    hf_tokenizer.write_hf_tokenizer(loaded, tmp_path / "out", "llama")
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    assert _hf_ids(hf, LLAMA2_TEXTS) == ids
    assert hf(LLAMA2_TEXTS[0])["input_ids"] == ids[0]  # no BOS, as read
    # With add_bos, the written template adds BOS and reads back so.
    loaded.add_bos = True
    hf_tokenizer.write_hf_tokenizer(loaded, tmp_path / "bos", "llama")
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "bos"))
    assert hf(LLAMA2_TEXTS[0])["input_ids"] == [1, *ids[0]]
    assert hf_tokenizer.load_hf_tokenizer(str(tmp_path / "bos")).add_bos
    assert _decode(loaded, rows) == hf.batch_decode(
        rows, skip_special_tokens=True
    )


def test_llama2_tokenizer_model_alone(llama2_model_dir, llama2_dir):
    # A folder with Llama 2's tokenizer.model and no tokenizer.json.
    model_dir = llama2_model_dir
    assert os.listdir(model_dir) == ["tokenizer.model"]
    tokenizer = hf_tokenizer.load_hf_tokenizer(str(model_dir))
    assert tokenizer.prepend_scheme == "first"
    assert not tokenizer.add_bos  # no tokenizer_config add_bos_token
    hf = transformers.LlamaTokenizer.from_pretrained(str(model_dir))
    ids = _ids(tokenizer, LLAMA2_TEXTS)
    assert ids == _hf_ids(hf, LLAMA2_TEXTS)
    from_json = hf_tokenizer.load_hf_tokenizer(str(llama2_dir))
    hf_tokenizer.check_same_tokenizer(
        tokenizer, from_json, "tokenizer.model", "tokenizer.json"
    )


# --- tokenizer.json out ---------------------------------------------------


@pytest.mark.parametrize("name", ["t5", "gpt2", "bert"])
def test_written_files_load_in_transformers_with_our_ids(ours, name, tmp_path):
    tokenizer = ours[name]
    written = hf_tokenizer.write_hf_tokenizer(tokenizer, tmp_path, name)
    legacy = {
        "t5": ["spiece.model"],
        "gpt2": ["merges.txt", "vocab.json"],
        "bert": ["vocab.txt"],
    }[name]
    assert sorted(os.path.basename(p) for p in written) == sorted(
        [
            "special_tokens_map.json",
            "tokenizer.json",
            "tokenizer_config.json",
            *legacy,
        ]
    )
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    texts = T5_TEXTS if name == "t5" else VARIED
    assert _ids(tokenizer, texts) == _hf_ids(hf, texts)
    assert len(hf) == tokenizer.vocabulary_size
    ids = _random_ids(tokenizer, 60)
    assert _decode(tokenizer, ids) == hf.batch_decode(
        ids, skip_special_tokens=True
    )
    # tokenizer.json alone (transformers 5 reads nothing else) and our
    # reader give the same again.
    for path in written:
        if os.path.basename(path) in legacy:
            os.remove(path)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert _ids(tokenizer, texts) == _hf_ids(hf, texts)
    again = hf_tokenizer.load_hf_tokenizer(str(tmp_path))
    assert _ids(again, texts) == _ids(tokenizer, texts)
    if name == "t5":
        assert hf.convert_ids_to_tokens(tokenizer.sentinel_id(3)) == (
            "<extra_id_3>"
        )


def test_llama3_style_round_trip(llama3_dir, tmp_path):
    tokenizer = hf_tokenizer.load_hf_tokenizer(str(llama3_dir))
    tokenizer.save(str(tmp_path / "ours"))  # our metadata keeps it all
    loaded = tokenizer_lib.load_tokenizer(str(tmp_path / "ours"))
    assert loaded.add_bos
    assert loaded.split_pattern == bpe_tokenizer.LLAMA3_SPLIT_PATTERN
    hf_tokenizer.write_hf_tokenizer(loaded, tmp_path / "hf", "llama")
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert _ids(loaded, VARIED) == _hf_ids(hf, VARIED)
    assert hf(["x"])["input_ids"] == [
        [tokenizer.bos_id, *_ids(loaded, ["x"])[0]]
    ]
    ids = _random_ids(loaded, 40)
    assert _decode(loaded, ids) == hf.batch_decode(
        ids, skip_special_tokens=True
    )


# --- Decoding as Hugging Face ----------------------------------------------


def _random_ids(tokenizer, rows, seed=0):
    """Rows of random ids, each with a few special ids mixed in."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(rows):
        row = rng.integers(0, tokenizer.vocabulary_size, rng.integers(1, 12))
        row = row.tolist()
        for _ in range(rng.integers(0, 4)):
            special = int(rng.choice(tokenizer.special_ids))
            row.insert(int(rng.integers(0, len(row) + 1)), special)
        out.append(row)
    return out


def _decode(tokenizer, rows, skip=True):
    texts = tokenizer.detokenize(
        tf.ragged.constant(rows, dtype=tf.int32), skip_special_tokens=skip
    )
    return [t.decode("utf-8") for t in texts.numpy().tolist()]


@pytest.mark.parametrize(
    "name, cleanup",
    [("t5", False), ("gpt2", False), ("bert", False), ("bert_cased", True)],
)  # fmt: skip
def test_decode_skipping_specials_equals_hugging_face(
    legacy_dirs, ours, tmp_path, name, cleanup
):
    if name == "bert_cased":
        tokenizer = tokenizer_lib.WordPieceTokenizer(
            legacy_dirs["bert"] / "vocab.txt", lowercase=False
        )
    else:
        tokenizer = ours[name]
    if cleanup:  # as the checkpoint's tokenizer_config.json would set it
        tokenizer = type(tokenizer)(
            *_files(tokenizer, legacy_dirs),
            **{**tokenizer.get_config(), "clean_up_tokenization_spaces": True},
        )
    hf_tokenizer.write_hf_tokenizer(tokenizer, tmp_path, name.split("_")[0])
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    if name != "gpt2":  # transformers 5 never cleans up after a BPE
        assert hf.clean_up_tokenization_spaces == cleanup
    rows = _random_ids(tokenizer, 100, seed=1)
    # Punctuation and contractions, where the spacing rules bite.
    rows += [tokenizer.tokenize(t).numpy().tolist() for t in VARIED]
    rows += [tokenizer.tokenize("a , b . c ? don ' t it 's").numpy().tolist()]
    assert _decode(tokenizer, rows) == hf.batch_decode(
        rows, skip_special_tokens=True
    )
    # In a graph, dense and padded, as generation and the export call it.
    dense = tf.ragged.constant(rows).to_tensor(default_value=tokenizer.pad_id)
    decode = tf.function(
        lambda ids: tokenizer.detokenize(ids, skip_special_tokens=True)
    )
    assert _strings(decode(dense)) == _decode(tokenizer, rows)


def _files(tokenizer, legacy_dirs):
    if tokenizer.kind == "sentencepiece":
        return [tokenizer.model]
    if tokenizer.kind == "wordpiece":
        return [legacy_dirs["bert"] / "vocab.txt"]
    return [
        legacy_dirs["gpt2"] / "vocab.json",
        legacy_dirs["gpt2"] / "merges.txt",
    ]


def test_keeping_special_tokens_is_the_old_rendering(ours):
    t5 = ours["t5"]
    ids = [[t5.sentinel_id(0), *_ids(t5, ["Hello"])[0], t5.eos_id, 0]]
    assert _decode(t5, ids, skip=False) == ["<extra_id_0> Hello"]
    assert _decode(t5, ids) == ["Hello"]
    bert = ours["bert"]
    ids = [[bert.cls_id, *_ids(bert, ["a, b"])[0], bert.sep_id]]
    assert _decode(bert, ids, skip=False) == ["[CLS] a , b [SEP]"]
    assert _decode(bert, ids) == ["a, b"]


# --- kllm convert hf on folders with tokenizer.json only --------------------


@pytest.fixture(scope="module")
def json_checkpoints(tmp_path_factory):
    """name → a tiny checkpoint folder (tests/test_convert.py's) whose
    tokenizer is transformers 5's tokenizer.json, without legacy files."""
    from tests import test_convert

    spiece = tmp_path_factory.mktemp("spiece")
    tokenizer_lib.train_sentencepiece(CORPUS, 200, str(spiece))
    cache = {}

    def get(name):
        if name not in cache:
            directory = tmp_path_factory.mktemp(f"{name}_json")
            if name == "t5":
                test_convert._t5(directory, gated=False)
                shutil.copy(spiece / "spiece.model", directory)
            elif name == "gpt2":
                test_convert._gpt2(directory)
            else:
                test_convert._bert(
                    directory, transformers.BertForMaskedLM, lowercase=True
                )
            hf = transformers.AutoTokenizer.from_pretrained(str(directory))
            for legacy in ("spiece.model", "vocab.json", "merges.txt",
                           "vocab.txt", "tokenizer_config.json"):  # fmt: skip
                (directory / legacy).unlink(missing_ok=True)
            hf.save_pretrained(str(directory))
            cache[name] = directory
        return cache[name]

    return get


def _convert(src, out):
    from tests import test_convert

    result = test_convert._kllm("convert", "hf", src, "--out", out)
    assert result.exit_code == 0, result.output
    return str(out)


@pytest.mark.parametrize("name", ["t5", "gpt2", "bert"])
def test_convert_hf_reads_tokenizer_json(json_checkpoints, tmp_path, name):
    import keras_llm

    src = json_checkpoints(name)
    assert not {"spiece.model", "vocab.json", "vocab.txt"} & set(
        os.listdir(src)
    )
    run_dir = _convert(src, tmp_path / "run")
    lm = keras_llm.load(run_dir)
    hf = transformers.AutoTokenizer.from_pretrained(str(src))
    texts = T5_TEXTS if name == "t5" else VARIED
    assert _ids(lm.tokenizer, texts) == _hf_ids(hf, texts)
    if name == "t5":
        assert lm.tokenizer.num_sentinels == NUM_SENTINELS
        _check_generate_strings(lm, hf)
    if name == "bert":
        _check_fill_mask_strings(lm, run_dir)


def _check_generate_strings(lm, hf):
    """generate gives Hugging Face's batch_decode(skip_special_tokens=True)
    of the generated ids; keep_special_tokens the old rendering."""
    from keras_llm import generation

    prompts = ["The for statement", "x", "Hello world"]
    tokenizer = lm.tokenizer
    # Hot sampling from the random model: sentinels and EOS come out.
    config = generation.GenerationConfig(
        max_new_tokens=6, do_sample=True, temperature=5.0, seed=3
    )
    ids = generation.generate_ids(
        lm,
        lm.make_format().prompt_ids(tf.constant(prompts), 6),
        config,
        eos_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id,
        jit_compile=False,
    )
    assert np.isin(ids, tokenizer.special_ids[3:]).any(), ids  # sentinels
    outputs = lm.generate(prompts, config, jit_compile=False)
    assert outputs == hf.batch_decode(ids, skip_special_tokens=True)
    kept = lm.generate(
        prompts, config, jit_compile=False, keep_special_tokens=True
    )
    assert kept == _decode(tokenizer, ids.tolist(), skip=False)
    assert kept != outputs and "<extra_id_" in "".join(kept)


def _check_fill_mask_strings(lm, run_dir):
    """kllm generate (fill-mask on BERT) prints Hugging Face's spacing, and
    --keep-special-tokens the tokenizer's own."""
    from tests import test_convert

    texts = ["a, [MASK] b. don't"]
    for flags, keep in (([], False), (["--keep-special-tokens"], True)):
        result = test_convert._kllm(
            "generate", run_dir, *texts, "--jsonl", *flags
        )
        assert result.exit_code == 0, result.output
        (line,) = result.stdout.splitlines()
        expected = lm.fill_mask(texts, keep_special_tokens=keep)[0]
        assert json.loads(line)["output"] == expected["output"]
        assert (" ," in expected["output"]) == keep


def test_legacy_files_and_tokenizer_json_must_agree(json_checkpoints, tmp_path):
    from tests import test_convert

    src = test_convert._copy(json_checkpoints("bert"), tmp_path)
    # vocab.txt of another (cased) tokenizer of the same size.
    tokenizer_lib.train_wordpiece(
        CORPUS, 300, str(tmp_path / "cased"), lowercase=False
    )
    shutil.copy(tmp_path / "cased" / "vocab.txt", src)
    test_convert._fails(
        src,
        tmp_path / "runs" / "out",
        f"{src / 'vocab.txt'} and {src / 'tokenizer.json'} disagree: ",
        "keep the one that belongs to the checkpoint",
    )


def test_convert_refuses_an_unsupported_tokenizer_json(
    json_checkpoints, tmp_path
):
    from tests import test_convert

    src = test_convert._copy(json_checkpoints("bert"), tmp_path)
    path = src / "tokenizer.json"
    data = json.loads(path.read_text())
    data["model"]["type"] = "WordLevel"
    path.write_text(json.dumps(data))
    test_convert._fails(
        src,
        tmp_path / "runs" / "out",
        f"{path}: tokenizer model type 'WordLevel' is not supported",
        "Unigram (T5), BPE (byte-level as GPT-2's and Llama 3's, or with "
        "byte_fallback as Llama 2's) and WordPiece (BERT).",
    )


def test_no_tokenizer_at_all_names_both_choices(json_checkpoints, tmp_path):
    from tests import test_convert

    src = test_convert._copy(json_checkpoints("gpt2"), tmp_path)
    (src / "tokenizer.json").unlink()
    test_convert._fails(
        src,
        tmp_path / "runs" / "out",
        f"{src / 'vocab.json'} is missing: a gpt2 checkpoint needs its "
        "tokenizer files (vocab.json + merges.txt, or tokenizer.json).",
    )
