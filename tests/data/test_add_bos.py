"""A tokenizer's `add_bos` (Llama's): BOS before every causal prompt, pair
and training document; nothing changes without it; saved in the metadata,
absent (False) in tokenizer dirs saved before it was recorded.

tests/test_convert_llama.py checks the prompts and generations against
Hugging Face's Llama tokenizers; this checks the format's rows."""

import json
import os

import pytest
import tensorflow as tf

from keras_llm.data import formats
from keras_llm.data import pipeline
from keras_llm.data import tokenizer as tokenizer_lib
from keras_llm.data.tokenizer_base import METADATA_FILE
from tests import helpers

BOS, EOS, PAD = 1, 2, 0


class CodePoints:
    """A stand-in tokenizer: a text's ids are its code points."""

    def __init__(self, add_bos):
        self.add_bos = add_bos
        self.bos_id, self.eos_id, self.pad_id = BOS, EOS, PAD

    def tokenize(self, texts):
        return tf.strings.unicode_decode(texts, "UTF-8")


def _format(add_bos, sequence_length=8):
    return formats.CausalFormat(
        CodePoints(add_bos), sequence_length=sequence_length
    )


@pytest.mark.parametrize("add_bos", [False, True])
def test_prompts_start_with_bos_only_with_add_bos(add_bos):
    texts = tf.constant(["ab", "", "abcdefghijk"])
    rows = _format(add_bos).prompt_ids(texts).to_list()
    a, b = ord("a"), ord("b")
    tail = [ord(c) for c in "defghijk"]
    if add_bos:  # the one BOS for an empty prompt; a long one's end fits 8
        assert rows == [[BOS, a, b], [BOS], [BOS, *tail[1:]]]
    else:  # as before: the start id before an empty prompt only
        assert rows == [[a, b], [BOS], tail]


@pytest.mark.parametrize("add_bos", [False, True])
def test_pairs_start_with_bos_only_with_add_bos(add_bos):
    fmt = _format(add_bos, sequence_length=16)
    features, labels, weights = fmt.pair_examples(
        tf.constant(["ab", ""]), tf.constant(["c", "d"])
    )
    ids = features["token_ids"].numpy().tolist()
    a, b, c, d = map(ord, "abcd")
    if add_bos:
        assert ids[0][:3] == [BOS, a, b] and labels[0, 2] == c
        assert ids[1][:1] == [BOS] and labels[1, 0] == d
    else:
        assert ids[0][:2] == [a, b] and labels[0, 1] == c
        assert ids[1][:1] == [BOS] and labels[1, 0] == d
    # The loss is on the target only, wherever the prompt ends.
    assert weights.numpy().sum() == 2


@pytest.mark.parametrize("add_bos", [False, True])
def test_training_documents_start_with_bos_only_with_add_bos(add_bos):
    texts = tf.data.Dataset.from_tensor_slices({"text": ["ab", "cde", "f"]})
    chunks = pipeline._chunks(texts, CodePoints(add_bos), 3)
    flat = [i for chunk in chunks.as_numpy_iterator() for i in chunk]
    a, b, c, d, e, f = map(ord, "abcdef")
    if add_bos:
        assert flat == [BOS, a, b, BOS, c, d, e, BOS, f]
    else:
        assert flat == [a, b, c, d, e, f]


def test_add_bos_is_saved_and_old_dirs_load_without_it(tmp_path):
    vocabulary, merges = helpers.gpt2_vocabulary_files()
    tokenizer = tokenizer_lib.BytePairTokenizer(str(vocabulary), str(merges))
    tokenizer.save(str(tmp_path / "old"))
    path = tmp_path / "old" / METADATA_FILE
    metadata = json.loads(path.read_text())
    assert metadata.pop("add_bos") is False
    path.write_text(json.dumps(metadata))  # as saved before add_bos
    assert not tokenizer_lib.load_tokenizer(str(tmp_path / "old")).add_bos

    tokenizer.add_bos = True
    tokenizer.save(str(tmp_path / "new"))
    assert tokenizer_lib.load_tokenizer(str(tmp_path / "new")).add_bos
    assert os.path.isfile(tmp_path / "new" / METADATA_FILE)
