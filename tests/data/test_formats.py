"""Input formats: training, `generate` and the export build the same ids.

The same strings go through the three paths — the training pipeline,
`Task.generate` (the ids it hands the decode loop) and the exported graph
(the SavedModel's `score` counts, run by the TF1 session loader) — and the
token ids must agree, truncation and special tokens included.
"""

import os
from unittest import mock

import pytest

import keras_llm
from keras_llm import config as config_lib
from keras_llm.generation import driver
from tests import train_utils

LONG = " ".join(f"word{i} and more" for i in range(80))  # over 64 tokens
INPUTS = ["good morning", "", LONG]
PAIRS = ["good morning", "x", LONG]  # (a pair's input is never empty)


def _generate_rows(lm, texts, **decoding):
    """The prompt ids `Task.generate` hands to the decode loop."""
    seen = []
    real = driver.generate_ids

    def spy(model, token_ids, *args, **kwargs):
        seen.extend(token_ids.to_list())
        return real(model, token_ids, *args, **kwargs)

    with mock.patch.object(driver, "generate_ids", spy):
        lm.generate(texts, max_new_tokens=2, jit_compile=False, **decoding)
    return seen


def test_seq2seq_training_generate_and_export_agree(tiny_run_dir, tmp_path):
    run_dir = tiny_run_dir("t5_tiny")
    prefix = "translate English to Spanish: "
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{text}\tdummy\n" for text in PAIRS) * 4)
    cfg = config_lib.load_config(
        "t5_tiny",
        overrides=[
            "data.source=files",
            f"data.train_files={path}",
            "data.validation_fraction=0.0",
            "data.shuffle_buffer_size=1",
            f"data.task_prefix='{prefix}'",
            "train.global_batch_size=3",
        ],
    )
    lm = keras_llm.load(run_dir)
    lm.config = cfg  # the run's data settings: prefix, lengths
    train, _, _ = train_utils.build_datasets(cfg, lm.tokenizer)
    features, _, _ = next(iter(train))
    ids = features["encoder_token_ids"].numpy()
    mask = features["encoder_padding_mask"].numpy().astype(bool)
    trained = {tuple(row[m]) for row, m in zip(ids, mask)}

    generated = _generate_rows(lm, PAIRS)
    assert set(map(tuple, generated)) == trained  # (order: shuffled)
    assert max(map(len, generated)) == cfg.data.sequence_length  # cut
    assert all(row[-1] == lm.tokenizer.eos_id for row in generated)
    # The first ids are the prefix's.
    prefix_ids = lm.tokenizer.tokenize([prefix]).to_list()[0]
    assert generated[0][: len(prefix_ids) - 1] == prefix_ids[:-1]


@pytest.mark.large
def test_causal_generate_and_export_agree(tiny_run_dir, tmp_path):
    from tests.test_export import session_run

    run_dir = tiny_run_dir("gpt2_tiny")
    lm = keras_llm.load(run_dir)
    rows = _generate_rows(lm, INPUTS)
    tok = lm.tokenizer
    start = tok.bos_id if tok.bos_id is not None else tok.eos_id
    assert rows[1] == [start]  # an empty prompt starts from BOS (or EOS)
    limit = lm.make_format().prompt_limit(max_new_tokens=2)
    full = tok.tokenize([LONG]).to_list()[0]
    assert len(full) > limit and rows[2] == full[-limit:]  # the end kept

    # The export's `score` runs prompt + target through the same format:
    # its token count and log-likelihood equal `lm.score`.
    out = tmp_path / "models"
    keras_llm.export(run_dir, str(out), name="g")
    reply = session_run(
        os.path.join(out, "g", "1"),
        [
            {
                "signature": "score",
                "inputs": {"inputs": INPUTS, "targets": ["a b", "c", "d"]},
            }
        ],
        tmp_path,
    )
    served = reply["results"][0]
    expected = lm.score(INPUTS, ["a b", "c", "d"])
    assert served["num_tokens"] == [
        len(tok.tokenize([t]).to_list()[0]) for t in ("a b", "c", "d")
    ]
    for served_value, value in zip(served["log_likelihood"], expected):
        assert abs(served_value - value) < 1e-3


def test_masked_format_wraps_and_cuts(tiny_run_dir):
    lm = keras_llm.load(tiny_run_dir("bert_tiny"))
    fmt = lm.make_format()
    rows = fmt.prompt_ids(["the [MASK] statement", LONG]).to_list()
    tok = lm.tokenizer
    assert rows[0][0] == tok.cls_id and rows[0][-1] == tok.sep_id
    assert tok.mask_id in rows[0]
    assert len(rows[1]) == fmt.sequence_length
    features = fmt.features(fmt.prompt_ids(["a", "b c d"]))
    assert features["padding_mask"].numpy().sum(1).tolist() == [3, 5]
    assert not features["segment_ids"].numpy().any()
