"""Metrics during training, the best checkpoint, early stopping and
checkpoint averaging, through `kllm` (issue #10, items 2-4)."""

import collections
import json
import os
import random
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import keras_llm
from keras_llm.cli.main import cli

# A tiny translation task: a sentence and its words reversed.
WORDS = "the cat sat on mat a dog ran in park big small red blue".split()
SETS = [
    "data.source=files",
    "data.validation_fraction=0.1",
    "data.sequence_length=16",
    "data.target_sequence_length=12",
    "train.global_batch_size=8",
    "train.log_interval_steps=2",
    "train.eval_interval_steps=2",
    "train.eval_steps=1",
    "train.checkpoint_interval_steps=2",
    "train.eval_examples=8",
    "runtime.jit_compile=false",
]


def _kllm(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def _sets(*sets):
    return [f"--set={s}" for s in (*SETS, *sets)]


def _last_line(result):
    return result.output.strip().splitlines()[-1]


def _rows(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _weights(model):
    return [np.asarray(v) for v in model.weights]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    lines = []
    for _ in range(400):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 8))]
        lines.append(f"{' '.join(words)}\t{' '.join(reversed(words))}\n")
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, pairs, sentencepiece_dir):
    """6 steps of t5_tiny with BLEU and chrF at every validation (steps
    0, 2, 4, 6), the best by val_chrf; checkpoints 2, 4, 6."""
    run_dir = tmp_path_factory.mktemp("best") / "run"
    result = _kllm(
        "train",
        "t5_tiny",
        "--run-dir",
        run_dir,
        *_sets(
            f"data.train_files={pairs}",
            f"data.tokenizer={sentencepiece_dir}",
            "train.train_steps=6",
            "train.eval_metrics=[bleu,chrf]",
            "train.best_metric=val_chrf",
        ),
    )
    assert result.exit_code == 0, result.output
    return run_dir


# === Metrics during training ===============================================


@pytest.mark.large
def test_generation_metrics_are_logged_beside_val_loss(run):
    rows = [row for row in _rows(run) if "val_loss" in row]
    assert [row["step"] for row in rows] == [0, 2, 4, 6]
    for row in rows:
        assert 0.0 <= row["val_bleu"] <= 100.0
        assert 0.0 <= row["val_chrf"] <= 100.0
    tags = {tag for _, tag in _events(run)}
    assert {"val_loss", "val_bleu", "val_chrf"} <= tags


def _events(run_dir):
    import tensorflow as tf

    found = []
    logs = os.path.join(run_dir, "logs")
    for name in os.listdir(logs):
        for record in tf.data.TFRecordDataset(os.path.join(logs, name)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            found += [(event.step, v.tag) for v in event.summary.value]
    return found


@pytest.mark.large
def test_eval_metrics_score_what_the_model_generates(run, pairs):
    """val_chrf at step 6 equals chrF of the run's own decoding (the
    first eval_examples validation pairs, greedy) of ckpt-6."""
    from keras_llm import config as config_lib
    from keras_llm.data import sources
    from keras_llm.evaluation import metrics

    cfg = config_lib.load_config(run / "config.yaml")
    validation = sources.load_splits(cfg.data)[1]
    examples = [
        (row["inputs"].decode(), row["targets"].decode())
        for row in validation.take(8).as_numpy_iterator()
    ]
    lm = keras_llm.load(run, checkpoint=6)
    predictions = lm.generate(
        [source for source, _ in examples],
        max_new_tokens=cfg.data.target_sequence_length,
        jit_compile=False,
    )
    expected, _ = metrics.text_metrics(
        ["chrf"], predictions, [target for _, target in examples]
    )
    logged = [
        row for row in _rows(run) if row["step"] == 6 and "val_chrf" in row
    ]
    assert logged[0]["val_chrf"] == pytest.approx(expected["chrf"])


# === The best checkpoint ===================================================


@pytest.mark.large
def test_the_best_validation_is_kept_and_chosen(run):
    rows = [row for row in _rows(run) if "val_chrf" in row]
    best = max(rows, key=lambda row: row["val_chrf"])  # the first best
    with open(run / "checkpoints" / "best" / "best.json") as f:
        info = json.load(f)
    assert info["metric"] == "val_chrf" and info["higher_is_better"]
    assert (info["step"], info["value"]) == (best["step"], best["val_chrf"])
    assert not any("_temp" in name for name in os.listdir(run / "checkpoints"))
    # The best weights are that step's.
    by_default = keras_llm.load(run)
    assert by_default.checkpoint_path.endswith(f"best/ckpt-{best['step']}")
    if best["step"] in (2, 4, 6):
        same_step = keras_llm.load(run, checkpoint=best["step"])
        for a, b in zip(_weights(by_default), _weights(same_step)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.large
def test_commands_default_to_best_and_say_which(run, tmp_path):
    info = json.loads((run / "checkpoints" / "best" / "best.json").read_text())
    result = _kllm(
        "generate", run, "the cat", "--max-new-tokens", "3", "--no-xla"
    )
    assert result.exit_code == 0, result.output
    assert f"Checkpoint: best (step {info['step']}, val_chrf " in result.output
    data = tmp_path / "test.tsv"
    data.write_text("the cat\tcat the\n")
    out = tmp_path / "results.json"
    result = _kllm(
        "evaluate", run, "--data", data, "--checkpoint", "best",
        "--max-new-tokens", "4", "--no-xla", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    checkpoint = json.loads(out.read_text())["checkpoint"]
    assert checkpoint["step"] == info["step"]
    assert checkpoint["which"].startswith(f"best (step {info['step']}, ")
    # kllm export --checkpoint best serves the best weights: the
    # SavedModel's variables are the best checkpoint's, not the newest's.
    import tensorflow as tf

    result = _kllm(
        "export", run, "--out", tmp_path / "models", "--checkpoint", "best",
        "--max-new-tokens", "3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Checkpoint: best (step {info['step']}, " in result.output

    def sums(variables):  # the export may add variables (an untied copy)
        return collections.Counter(
            round(float(np.sum(v)), 4) for v in variables if len(v.shape) == 2
        )

    served = sums(
        tf.saved_model.load(str(tmp_path / "models" / run.name / "1")).variables
    )
    best = sums(keras_llm.load(run, checkpoint="best").weights)
    latest = sums(keras_llm.load(run, checkpoint="latest").weights)
    assert best - served == collections.Counter()  # all of them served
    assert info["step"] != 6  # the best is not the newest (6 steps)
    assert latest - served != collections.Counter()


def test_checkpoint_best_without_one_is_one_line(tiny_run_dir, tmp_path):
    run_dir = tiny_run_dir("t5_tiny")
    for command in (
        ["generate", run_dir, "x"],
        ["export", run_dir, "--out", tmp_path / "export"],
    ):
        result = _kllm(*command, "--checkpoint", "best")
        assert result.exit_code == 1, result.output
        line = _last_line(result)
        assert "No best checkpoint" in line and "train.best_metric" in line
        assert "Traceback" not in result.output
    assert not (tmp_path / "export").exists()
    # Without --checkpoint and without a best: latest, as before (only
    # kllm evaluate names it), so the outputs alone are on the screen.
    result = _kllm(
        "generate", run_dir, "x", "--max-new-tokens", "2", "--no-xla"
    )
    assert result.exit_code == 0, result.output
    assert "Checkpoint:" not in result.output


# === Early stopping ========================================================
# Through `kllm train`, with a resume in the middle:
# tests/test_train_trust.py::test_early_stopping_resumes_exactly (large).


def test_tracker_decides_by_the_metric_and_its_direction(tmp_path):
    import keras

    from keras_llm import config as config_lib
    from keras_llm.training import best as best_lib

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    cfg = config_lib.load_config("t5_tiny", ["train.early_stopping_patience=2"])
    tracker = best_lib.Tracker(
        cfg, model, best_lib.make_variables(), str(tmp_path)
    )
    assert tracker.summary() is None
    assert tracker.update(0, {"val_loss": 3.0, "val_ppl": 20.0}) is True
    assert tracker.update(2, {"val_loss": 3.0}) is False  # equal: no better
    assert tracker.update(4, {}) is None  # nothing measured: nothing counts
    assert not tracker.exhausted
    assert tracker.update(6, {"val_loss": 2.5}) is True
    assert tracker.update(8, {"val_loss": 2.6}) is False
    assert tracker.update(10, {"val_loss": float("nan")}) is None
    assert tracker.update(12, {"val_loss": 2.7}) is False
    assert tracker.exhausted
    assert tracker.stop_message(12).startswith(
        "Early stopping at step 12: val_loss has not improved on 2.5000 "
        "(step 6) for 2 validations (train.early_stopping_patience: 2)."
    )
    info = json.loads((tmp_path / "best" / "best.json").read_text())
    assert (info["step"], info["value"], info["checkpoint"]) == (
        6,
        2.5,
        "ckpt-6",
    )
    assert sorted(os.listdir(tmp_path)) == ["best"]  # no temp or old left

    cfg = config_lib.load_config(
        "t5_tiny",
        [
            "data.source=bible",
            "train.eval_metrics=[bleu]",
            "train.best_metric=val_bleu",
        ],
    )
    tracker = best_lib.Tracker(
        cfg, model, best_lib.make_variables(), str(tmp_path / "b")
    )
    assert tracker.update(0, {"val_loss": 3.0, "val_bleu": 1.0}) is True
    assert tracker.update(2, {"val_loss": 2.0, "val_bleu": 0.5}) is False
    assert tracker.update(4, {"val_loss": 4.0, "val_bleu": 2.0}) is True
    assert not tracker.exhausted  # no patience: never


def test_a_best_moved_aside_by_a_kill_is_put_back(tmp_path):
    from keras_llm.training import best as best_lib

    (tmp_path / "best_old").mkdir()
    (tmp_path / "best_old" / "best.json").write_text("{}")
    best_lib.recover(str(tmp_path), fresh=False)
    assert sorted(os.listdir(tmp_path)) == ["best"]
    best_lib.recover(str(tmp_path), fresh=True)  # a new run: none kept
    assert os.listdir(tmp_path) == []


# === Bad input: one line, nothing written ==================================


@pytest.mark.parametrize(
    "config, sets, message",
    [
        (
            "bert_tiny",
            ["train.eval_metrics=[bleu]"],
            "train.eval_metrics: bleu needs generated text; arch 'bert'",
        ),
        (
            "t5_tiny",
            ["train.eval_metrics=[perplexity]"],
            "'perplexity' is not a generation or label metric",
        ),
        (
            "t5_tiny",
            ["train.eval_metrics=[accuracy]", "data.source=bible"],
            "train.eval_metrics: accuracy needs a classifier (data.objective: "
            "classification) (use generation metrics such as [bleu, chrf])",
        ),
        (
            "bert_tiny_classifier",
            ["train.eval_metrics=[accuracy, bleu]"],
            "train.eval_metrics: bleu needs generated text; a classifier's "
            "metrics are accuracy and macro_f1 (use [accuracy] or "
            "[accuracy, macro_f1])",
        ),
        (
            "t5_tiny",
            ["train.eval_metrics=[bleu]"],
            "data.source 'pydoc' gives single texts",
        ),
        (
            "t5_tiny",
            ["train.best_metric=val_bleu"],
            "train.best_metric: is not a validation metric this run logs. "
            "Received: 'val_bleu' (add bleu to train.eval_metrics)",
        ),
        (
            "t5_tiny",
            ["train.early_stopping_patience=0"],
            "train.early_stopping_patience: must be positive",
        ),
    ],
)
def test_bad_training_settings_are_one_line(config, sets, message, tmp_path):
    run_dir = tmp_path / "run"
    result = _kllm(
        "train", config, "--run-dir", run_dir, *[f"--set={s}" for s in sets]
    )
    assert result.exit_code == 1, result.output
    assert message in _last_line(result)
    assert "Traceback" not in result.output
    assert not run_dir.exists()


def test_metrics_on_single_texts_are_refused_before_writing(
    sentencepiece_dir, tmp_path
):
    text = tmp_path / "text.txt"
    text.write_text("".join(f"line {i} of some text\n" for i in range(200)))
    run_dir = tmp_path / "run"
    result = _kllm(
        "train", "gpt2_tiny", "--run-dir", run_dir,
        *_sets(
            f"data.train_files={text}",
            f"data.tokenizer={sentencepiece_dir}",
            "train.eval_metrics=[bleu]",
        ),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    line = _last_line(result)
    assert "train.eval_metrics: bleu compare outputs with targets" in line
    assert not run_dir.exists()


# === Averaging =============================================================


@pytest.mark.large
def test_average_is_the_mean_of_the_weights(run, tmp_path):
    from keras_llm import averaging

    out = tmp_path / "avg"
    result = _kllm("average", run, "--steps", "2,4", "--out", out)
    assert result.exit_code == 0, result.output
    assert "steps 2, 4" in result.output
    assert sorted(os.listdir(out)) == [
        "averaged.json", "checkpoints", "config.yaml", "tokenizer",
    ]  # fmt: skip
    averaged = keras_llm.load(out)
    assert averaged.checkpoint_path.endswith("ckpt-4")
    two = _weights(keras_llm.load(run, checkpoint=2))
    four = _weights(keras_llm.load(run, checkpoint=4))
    for got, a, b in zip(_weights(averaged), two, four):
        np.testing.assert_allclose(got, (a + b) / 2, rtol=0, atol=1e-7)
    # The same, read straight from the files: model variables only.
    import tensorflow as tf

    sources = [str(run / "checkpoints" / f"ckpt-{s}") for s in (2, 4)]
    found = averaging.model_variables(averaged.checkpoint_path)
    assert not any("optimizer" in path for path in found)
    readers = [tf.train.load_checkpoint(p) for p in sources]
    keys = [averaging.model_variables(p) for p in sources]
    target = tf.train.load_checkpoint(averaged.checkpoint_path)
    assert set(found) == set(keys[0])
    for path, (key, _) in found.items():
        mean = np.mean(
            [r.get_tensor(k[path][0]) for r, k in zip(readers, keys)], axis=0
        )
        np.testing.assert_allclose(target.get_tensor(key), mean, atol=1e-7)
    result = _kllm(
        "generate", out, "the cat", "--max-new-tokens", "3", "--no-xla"
    )
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1  # one prompt, one output


@pytest.mark.large
def test_average_bad_input_is_one_line_and_writes_nothing(
    run, tiny_run_dir, tmp_path
):
    out = tmp_path / "avg"
    cases = [
        (["--steps", "2,5"], "no checkpoint of step 5", "steps kept: 2, 4, 6"),
        (["--last", "4"], "keeps 3 checkpoints", "steps kept: 2, 4, 6"),
        ([], "Pass one of --last N", "--steps"),
        (["--last", "2", "--steps", "2"], "Pass one of --last N", ""),
        (["--steps", "x"], "comma-separated step numbers", ""),
    ]
    for args, *messages in cases:
        result = _kllm("average", run, "--out", out, *args)
        assert result.exit_code in (1, 2), (args, result.output)
        for message in messages:
            assert message in _last_line(result), (args, result.output)
        assert "Traceback" not in result.output
        assert not out.exists(), args
    # --out exists: left as it is without --overwrite.
    out.mkdir()
    (out / "keep").write_text("x")
    result = _kllm("average", run, "--last", "2", "--out", out)
    assert result.exit_code == 1
    assert "exists: pass --overwrite" in _last_line(result)
    assert os.listdir(out) == ["keep"]
    # Checkpoints of different models.
    mixed = tmp_path / "mixed"
    shutil.copytree(run, mixed)
    other = tiny_run_dir("gpt2_tiny")
    prefix = _latest(other)
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(
            prefix + suffix, mixed / "checkpoints" / f"ckpt-4{suffix}"
        )
    result = _kllm("average", mixed, "--last", "2", "--out", tmp_path / "m")
    assert result.exit_code == 1, result.output
    line = _last_line(result)
    assert "hold different models" in line and "ckpt-4" in line
    assert not (tmp_path / "m").exists()
    assert [p for p in os.listdir(tmp_path) if ".tmp-" in p] == []


def _latest(run_dir):
    import tensorflow as tf

    return tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
