"""`kllm train` refuses bad input with one clear line and writes nothing."""

import os

from click.testing import CliRunner

from keras_llm.cli.main import cli
from keras_llm.data import bible
from tests import train_utils


def run_train(run_dir, *sets, config=train_utils.ZOO_TINY):
    args = ["train", config, "--run-dir", str(run_dir)]
    args += [f"--set={s}" for s in sets]
    return CliRunner().invoke(cli, args)


def assert_refused(result, run_dir, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    message = result.output.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in message, message
    assert not os.path.exists(run_dir), os.listdir(run_dir)


def test_missing_data_path(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(
        run_dir, "data.source=files", f"data.train_files={tmp_path}/nope-*.txt"
    )
    assert_refused(result, run_dir, "data.train_files", "nope-*.txt")


def test_empty_corpus(tmp_path):
    (tmp_path / "empty.txt").write_text("\n   \n\n")
    run_dir = tmp_path / "run"
    result = run_train(
        run_dir, "data.source=files", f"data.train_files={tmp_path}/empty.txt"
    )
    assert_refused(result, run_dir, "training corpus is empty", "empty.txt")


def test_target_length_the_objective_cannot_fill(tmp_path):
    run_dir = tmp_path / "run"
    from keras_llm.config import span_corruption_lengths

    _, needed = span_corruption_lengths(64)  # t5_tiny's sequence_length
    result = run_train(run_dir, "data.target_sequence_length=5")
    assert_refused(
        result,
        run_dir,
        "data.target_sequence_length",
        f"needs {needed} target tokens",
    )


def test_global_batch_not_divisible_by_replicas(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(
        run_dir,
        "train.global_batch_size=15",
        "runtime.strategy=mirrored",
        "runtime.num_cpu_devices=2",
    )
    assert_refused(
        result,
        run_dir,
        "train.global_batch_size",
        "not divisible by 2 replicas",
    )


def test_missing_debian_corpus_package(tmp_path, monkeypatch):
    monkeypatch.setattr(bible, "SWORD_ROOT", str(tmp_path / "no-sword"))
    run_dir = tmp_path / "run"
    result = run_train(run_dir, "data.source=bible")
    assert_refused(
        result,
        run_dir,
        "sword-text-kjv",
        "apt-get install sword-text-kjv sword-text-sparv",
    )


def test_unwritable_run_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    run_dir = blocker / "run"
    result = run_train(run_dir)
    assert result.exit_code == 1, result.output
    assert "Cannot write the run directory" in result.output
    assert blocker.read_text() == "not a directory"


def test_other_model_in_existing_run_dir(tmp_path):
    from keras_llm import rundir

    run_dir = tmp_path / "run"
    cfg = train_utils.tiny_config(model__num_layers=1)
    rundir.write_config(cfg, str(run_dir))
    before = sorted(os.listdir(run_dir))
    result = run_train(run_dir)
    assert result.exit_code == 1
    assert "holds a run of another model" in result.output
    assert sorted(os.listdir(run_dir)) == before
