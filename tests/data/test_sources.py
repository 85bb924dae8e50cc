"""Text sources and the pipeline: every file format, the deterministic
split, the Bible pairs, and static-shape batches for every objective."""

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_llm import config as config_lib
from keras_llm.data import bible
from keras_llm.data import sources
from keras_llm.data import tokenizer as tokenizer_lib
from tests import train_utils

DOCS = [f"document number {i} says hello to the world" for i in range(400)]


def data_config(**kwargs):
    return config_lib.DataConfig(**kwargs)


def texts(dataset, key="text"):
    return [e[key].decode() for e in dataset.as_numpy_iterator()]


def test_text_lines_glob_and_split(tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(DOCS[:200]) + "\n\n")
    (tmp_path / "b.txt").write_text("\n".join(DOCS[200:]))
    data = data_config(
        source="files",
        train_files=str(tmp_path / "*.txt"),
        validation_fraction=0.1,
    )
    train, validation = sources.load_splits(data)
    train_texts, validation_texts = texts(train), texts(validation)
    assert sorted(train_texts + validation_texts) == sorted(DOCS)
    assert 20 <= len(validation_texts) <= 60  # about 10%
    # Deterministic: the same split every time.
    assert texts(sources.load_splits(data)[1]) == validation_texts


def test_document_per_file(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"line one {i}\nline two {i}")
    data = data_config(
        source="files",
        train_files=str(tmp_path / "*.txt"),
        document_per="file",
        validation_fraction=0.0,
    )
    assert texts(sources.load_splits(data)[0]) == [
        f"line one {i}\nline two {i}" for i in range(3)
    ]


def test_jsonl_fields_and_pairs(tmp_path):
    rows = [{"en": f"hello {i}", "es": f"hola {i}", "id": i} for i in range(5)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    data = data_config(
        source="files",
        train_files=str(path),
        text_field="en",
        target_field="es",
        validation_fraction=0.0,
    )
    train, _ = sources.load_splits(data)
    assert texts(train, "inputs") == [f"hello {i}" for i in range(5)]
    assert texts(train, "targets") == [f"hola {i}" for i in range(5)]
    bad = data_config(source="files", train_files=str(path), text_field="text")
    with pytest.raises(ValueError, match="pairs.jsonl:1: no field 'text'"):
        sources.load_splits(bad)


def test_tsv_pairs(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("good morning\tbuenos dias\nthank you\tgracias\n")
    data = data_config(
        source="files", train_files=str(path), validation_fraction=0.0
    )
    train, _ = sources.load_splits(data)
    assert texts(train, "targets") == ["buenos dias", "gracias"]


def test_tfrecord(tmp_path):
    path = str(tmp_path / "docs.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for doc in DOCS[:4]:
            feature = {
                "text": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[doc.encode()])
                )
            }
            writer.write(
                tf.train.Example(
                    features=tf.train.Features(feature=feature)
                ).SerializeToString()
            )
    data = data_config(
        source="files", train_files=path, validation_fraction=0.0
    )
    assert texts(sources.load_splits(data)[0]) == DOCS[:4]


def test_pydoc_is_builtin():
    documents = sources.pydoc_documents()
    assert len(documents) > 1000
    assert any("for" in d and "loop" in d for d in documents)


def test_bible_pairs_align():
    # Needs Debian's sword-text-kjv and sword-text-sparv (see README).
    pairs = bible.read_pairs()
    assert 30_000 < len(pairs) < 32_000
    by_english = dict(pairs)
    spanish = by_english[
        "In the beginning God created the heaven and the earth."
    ]
    assert spanish.startswith("EN el principio crió Dios")
    assert not any("<" in a or "<" in b for a, b in pairs[:2000])


def test_missing_bible_package_names_apt(tmp_path, monkeypatch):
    monkeypatch.setattr(bible, "SWORD_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install sword-text"):
        bible.read_pairs()


@pytest.mark.large
@pytest.mark.parametrize("zoo_name", ["t5_tiny", "gpt2_tiny", "bert_tiny"])
def test_pipeline_batches_have_static_shapes(
    zoo_name, sentencepiece_dir, tmp_path
):
    cfg = config_lib.load_config(
        config_lib.zoo_path(zoo_name),
        overrides=[
            "train.global_batch_size=4",
            "data.sequence_length=32",
            "data.target_sequence_length=12",
        ],
    )
    if zoo_name == "bert_tiny":
        tokenizer = tokenizer_lib.train_wordpiece(
            sources.pydoc_documents()[:400],
            cfg.model.vocabulary_size,
            str(tmp_path / "wp"),
        )
    else:
        tokenizer = tokenizer_lib.load_tokenizer(sentencepiece_dir)
    train, validation, plan = train_utils.build_datasets(cfg, tokenizer)
    features, labels, weights = next(iter(train))
    for value in (*features.values(), labels, weights):
        assert value.shape[0] == 4 and None not in value.shape
    labels, weights = labels.numpy(), weights.numpy()
    if plan.objective == "causal_lm":
        ids = features["token_ids"].numpy()
        np.testing.assert_array_equal(ids[:, 1:], labels[:, :-1])  # shifted
    elif plan.objective == "masked_lm":
        assert 0 < weights.mean() < 0.3
        ids = features["token_ids"].numpy()
        assert (ids[:, 0] == tokenizer.cls_id).all()
    else:
        dec = features["decoder_token_ids"].numpy()
        np.testing.assert_array_equal(
            dec[:, 1:] * weights[:, 1:], labels[:, :-1] * weights[:, 1:]
        )
        assert (labels[:, 0] == tokenizer.sentinel_id(0)).all()
    assert next(iter(validation))[1].shape == labels.shape


def test_seq2seq_prefix_and_eos(sentencepiece_dir, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("good morning\tbuenos dias\n" * 8)
    cfg = config_lib.load_config(
        config_lib.zoo_path("t5_tiny"),
        overrides=[
            "data.source=files",
            f"data.train_files={path}",
            "data.validation_fraction=0.0",
            "train.global_batch_size=2",
            "data.task_prefix='translate English to Spanish: '",
        ],
    )
    tokenizer = tokenizer_lib.load_tokenizer(sentencepiece_dir)
    train, _, plan = train_utils.build_datasets(cfg, tokenizer)
    assert plan.objective == "seq2seq"
    features, labels, weights = next(iter(train))
    text = tokenizer.detokenize(features["encoder_token_ids"][:1]).numpy()[0]
    assert text.decode() == "translate English to Spanish: good morning"
    n = int(weights[0].numpy().sum())
    assert labels[0, n - 1] == tokenizer.eos_id
    assert tokenizer.detokenize(labels[:1]).numpy()[0].decode() == (
        "buenos dias"
    )
