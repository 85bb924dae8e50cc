"""Runs you can trust: memory that fits, Ctrl-C that saves, resumes that
refuse without touching the run dir, logs equal after any kill, nothing
left behind."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from keras_llm import config as config_lib
from keras_llm.cli.main import cli
from keras_llm.config import memory
from tests import train_utils

GB = 1024**3
TINY = [
    "train.global_batch_size=8",
    "train.log_interval_steps=1",
    "train.eval_interval_steps=2",
    "train.eval_steps=1",
    "train.checkpoint_interval_steps=2",
    "data.sequence_length=32",
    "data.target_sequence_length=12",
]


def _sets(*sets):
    return [f"--set={s}" for s in (*TINY, *sets)]


def _kllm(*args, env=None):
    return CliRunner().invoke(cli, [*map(str, args)], env=env)


def _snapshot(directory):
    """{relative path: sha256} of every file under `directory`."""
    result = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            result[os.path.relpath(path, directory)] = digest
    return result


# === Memory ================================================================


def test_micro_batch_is_the_largest_divisor_that_fits():
    cfg = config_lib.load_config("t5_small")
    example = memory.activation_bytes(cfg.model, cfg.data)
    assert 0.3 * GB < example < 0.6 * GB  # XLA asked 0.32 GB (41 GB / 128)
    fixed = memory.fixed_bytes(60_506_624, "adafactor", 4)
    budget = fixed + 40 * example  # room for 40: the divisor is 32
    plan = memory.plan_micro_batch(cfg, 60_506_624, 128, budget, "host")
    assert (plan.micro_batch_size, plan.accumulation) == (32, 4)
    assert plan.peak_bytes <= budget
    plan = memory.plan_micro_batch(cfg, 60_506_624, 128, None, "host")
    assert plan.micro_batch_size == 128  # unknown budget: no split
    fixed_cfg = config_lib.load_config(
        "t5_small", ["train.micro_batch_size=16"]
    )
    plan = memory.plan_micro_batch(fixed_cfg, 60_506_624, 64, budget, "x")
    assert (plan.micro_batch_size, plan.accumulation) == (16, 4)
    with pytest.raises(ValueError, match="does not divide the 24 examples"):
        memory.plan_micro_batch(fixed_cfg, 60_506_624, 24, budget, "x")
    with pytest.raises(ValueError, match="Out of memory before the first"):
        memory.plan_micro_batch(cfg, 60_506_624, 128, 2 * GB, "host")


def test_validate_prints_the_estimate():
    result = _kllm("validate", "t5_small")
    assert result.exit_code == 0, result.output
    assert "0.43 GB of activations per example" in result.output
    assert "60,506,624 parameters" in result.output


def test_one_example_too_big_refuses_before_writing(
    sentencepiece_dir, tmp_path
):
    run_dir = tmp_path / "run"
    result = _kllm(
        "train",
        "t5_small",
        "--run-dir",
        run_dir,
        f"--set=data.tokenizer={sentencepiece_dir}",
        env={"KERAS_LLM_HOST_MEMORY_BYTES": str(2 * GB)},
    )
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert "Out of memory before the first step" in line
    assert "data.sequence_length" in line
    assert not run_dir.exists()


# === Resume ================================================================


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sentencepiece_dir):
    """A tiny run of 4 steps (checkpoints at 2 and 4)."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    result = _kllm(
        "train",
        "t5_tiny",
        "--run-dir",
        run_dir,
        *_sets("train.train_steps=4", f"data.tokenizer={sentencepiece_dir}"),
    )
    assert result.exit_code == 0, result.output
    assert "Starting at step 0 of 4." in result.output
    assert "micro-batch 8 x 1" in result.output
    return run_dir


@pytest.mark.large
@pytest.mark.parametrize(
    "sets,keys",
    [
        (["data.sequence_length=48"], "data.sequence_length"),
        (["train.global_batch_size=4"], "train.global_batch_size"),
        (
            ["train.optimizer=lamb", "train.seed=3"],
            "train.optimizer, train.seed",
        ),
    ],
)
def test_a_resume_that_cannot_be_exact_is_refused(trained, sets, keys):
    before = _snapshot(trained)
    cfg_path = trained / "config.yaml"
    result = _kllm("train", cfg_path, *[f"--set={s}" for s in sets])
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert f"cannot resume with changed {keys}" in line
    assert _snapshot(trained) == before


@pytest.mark.large
def test_damaged_or_missing_pieces_are_refused(trained, tmp_path):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(trained, run_dir)
    cfg_path = run_dir / "config.yaml"

    shutil.rmtree(run_dir / "tokenizer")
    before = _snapshot(run_dir)
    result = _kllm("train", cfg_path, "--set=train.train_steps=6")
    assert result.exit_code == 1, result.output
    assert "tokenizer is missing" in result.output.strip().splitlines()[-1]
    assert _snapshot(run_dir) == before
    shutil.copytree(trained / "tokenizer", run_dir / "tokenizer")

    (run_dir / "checkpoints" / "ckpt-4.data-00000-of-00001").write_bytes(
        b"garbage"
    )
    before = _snapshot(run_dir)
    result = _kllm("train", cfg_path, "--set=train.train_steps=6")
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert "Cannot resume from" in line and "ckpt-4" in line
    assert "Delete its files (ckpt-4.*)" in line
    assert _snapshot(run_dir) == before
    # As the message says: without them, the run resumes from ckpt-2.
    for name in os.listdir(run_dir / "checkpoints"):
        if name.startswith("ckpt-4."):
            os.remove(run_dir / "checkpoints" / name)
    result = _kllm("train", cfg_path, "--set=train.train_steps=6")
    assert result.exit_code == 0, result.output
    assert "(step 2 of 6)" in result.output


@pytest.mark.large
def test_allowed_changes_resume_and_are_recorded(trained, tmp_path):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(trained, run_dir)
    # What a killed run can leave behind: all cleared on the next start.
    leftovers = [
        run_dir / "checkpoints" / "ckpt-6_temp",
        run_dir / "tokenizer.tmp",
    ]
    for folder in leftovers:
        folder.mkdir()
        (folder / "part").write_text("x")
    (run_dir / "metrics.jsonl.tmp").write_text("{")
    (run_dir / "config.yaml.tmp").write_text("model:")
    result = _kllm(
        "train",
        run_dir / "config.yaml",
        "--set=train.train_steps=5",
        "--set=train.learning_rate=0.005",
    )
    assert result.exit_code == 0, result.output
    assert "Resumed from" in result.output and "(step 4 of 5)" in result.output
    assert "train.train_steps 4 -> 5" in result.output
    cfg = config_lib.load_config(run_dir / "config.yaml")
    assert (cfg.train.train_steps, cfg.train.learning_rate) == (5, 0.005)
    for path in [*leftovers, run_dir / "metrics.jsonl.tmp"]:
        assert not path.exists(), path
    assert not (run_dir / "config.yaml.tmp").exists()
    steps = [row[0] for row in train_utils.read_metrics(str(run_dir))]
    assert steps == [1, 2, 3, 4, 5]  # each step once


@pytest.mark.large
def test_early_stopping_resumes_exactly(sentencepiece_dir, tmp_path):
    """Early stopping decides on the best value and the patience count of
    the checkpoint it resumes from. At a learning rate too small to change
    the greedy outputs, val_bleu never beats step 0's: patience 2 stops at
    step 4, whether the run goes straight there or stops at step 2 and
    resumes; both end with the same logs, best checkpoint and weights, and
    a stopped run stays stopped."""
    pairs = tmp_path / "pairs.tsv"
    words = "the cat sat on a mat dog ran in park".split()
    pairs.write_text(
        "".join(
            f"{' '.join(words[i % 7 : i % 7 + 3])} {i}\t{words[i % 10]} {i}\n"
            for i in range(300)
        )
    )

    def train(run_dir, steps):
        return _kllm(
            "train", "t5_tiny", "--run-dir", run_dir,
            *_sets(
                "data.source=files",
                f"data.train_files={pairs}",
                "data.validation_fraction=0.1",
                f"data.tokenizer={sentencepiece_dir}",
                f"train.train_steps={steps}",
                "train.learning_rate=1.0e-9",
                "train.checkpoint_interval_steps=3",
                "train.eval_metrics=[bleu]",
                "train.eval_examples=4",
                "train.best_metric=val_bleu",
                "train.early_stopping_patience=2",
                "runtime.jit_compile=false",
            ),
        )  # fmt: skip

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    result = train(straight, 10)
    assert result.exit_code == 0, result.output
    stop = "Early stopping at step 4: val_bleu has not improved on"
    assert stop in result.output
    assert "(stopped early)" in result.output
    assert train(resumed, 2).exit_code == 0  # 1 validation without gain
    result = train(resumed, 10)
    assert result.exit_code == 0, result.output
    assert "(step 2 of 10)" in result.output and stop in result.output
    assert _logged(resumed) == _logged(straight)
    best = "checkpoints/best/best.json"
    assert (resumed / best).read_text() == (straight / best).read_text()
    assert json.loads((straight / best).read_text())["step"] == 0
    train_utils.assert_same_weights(
        train_utils.latest_values(str(resumed)),
        train_utils.latest_values(str(straight)),
        atol=0,
    )
    result = train(resumed, 10)  # stopped: no step taken
    assert result.exit_code == 0 and stop in result.output
    assert _logged(resumed) == _logged(straight)


# === The built-in data says what it is ======================================


@pytest.mark.large
def test_a_small_text_gives_fewer_tokenizer_ids_and_says_so(tmp_path):
    text = tmp_path / "small.txt"
    text.write_text("the cat sat on the mat\n" * 50 + "a dog ran\n" * 50)
    run_dir = tmp_path / "run"
    result = _kllm(
        "train",
        "gpt2_tiny",
        "--run-dir",
        run_dir,
        "--set=data.source=files",
        f"--set=data.train_files={text}",
        "--set=data.validation_fraction=0.0",
        "--set=data.sequence_length=8",
        "--set=train.global_batch_size=2",
        "--set=train.train_steps=1",
    )
    assert result.exit_code == 0, result.output
    assert "fewer than model.vocabulary_size 512" in result.output
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["tokenizer_ids"] < info["model_vocabulary_size"] == 512


def test_validation_split_holds_a_batch_at_t5_small_lengths(
    sentencepiece_dir,
):
    from keras_llm.data import tokenizer as tokenizer_lib

    cfg = config_lib.load_config(
        "t5_tiny",
        [
            "data.sequence_length=512",
            "data.target_sequence_length=114",
            "train.global_batch_size=128",
        ],
    )
    tokenizer = tokenizer_lib.load_tokenizer(sentencepiece_dir)
    _, validation, _ = train_utils.build_datasets(
        cfg, tokenizer, eval_batch_size=8
    )
    features, labels, _ = next(iter(validation))
    assert labels.shape[1] == 114 and 1 <= labels.shape[0] <= 8
    assert features["encoder_token_ids"].shape[1] == 512


# === Ctrl-C, SIGTERM and kill -9 ============================================


def _start(run_dir, tokenizer_dir, *sets):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keras_llm.cli",
            "train",
            "t5_tiny",
            "--run-dir",
            str(run_dir),
            *_sets(f"data.tokenizer={tokenizer_dir}", *sets),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_step(run_dir, step, process, timeout=240):
    path = os.path.join(run_dir, "metrics.jsonl")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read())
        if os.path.exists(path):
            rows = train_utils.read_metrics(str(run_dir))
            if rows and rows[-1][0] >= step:
                return
        time.sleep(0.2)
    process.kill()
    raise AssertionError("timed out")


@pytest.mark.large
@pytest.mark.parametrize(
    "signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
)
def test_a_signal_saves_a_checkpoint_and_the_run_resumes(
    signum, code, sentencepiece_dir, tmp_path
):
    run_dir = tmp_path / "run"
    process = _start(
        run_dir,
        sentencepiece_dir,
        "train.train_steps=100000000",
        "train.checkpoint_interval_steps=100000",
        "train.eval_interval_steps=100000",
    )
    _wait_for_step(run_dir, 6, process)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == code, output
    assert "This run would take" in output  # the ETA warning
    name = signal.Signals(signum).name
    line = next(line for line in output.splitlines() if line.startswith(name))
    step = int(line.split("stopped at step ")[1].split()[0])
    assert f"saved {run_dir}/checkpoints/ckpt-{step}" in line
    assert f"kllm train {run_dir}/config.yaml" in line
    result = _kllm(
        "train", run_dir / "config.yaml", f"--set=train.train_steps={step + 2}"
    )
    assert result.exit_code == 0, result.output
    assert f"(step {step} of {step + 2})" in result.output
    steps = [row[0] for row in train_utils.read_metrics(str(run_dir))]
    assert steps == list(range(1, step + 3))


# Kill points: a Python snippet run before `kllm train` patches the library
# so the process SIGKILLs itself there.
KILL_AT = {
    "after_step0_eval": (
        "from keras_llm.training import logs\n"
        "real = logs.Logger.log_validation\n"
        "def hook(self, step, *values):\n"
        "    real(self, step, *values)\n"
        "    if step == 0: os.kill(os.getpid(), signal.SIGKILL)\n"
        "logs.Logger.log_validation = hook\n"
    ),
    "before_first_checkpoint": (
        "from keras_llm.training import logs\n"
        "real = logs.Logger.log\n"
        "def hook(self, step, values):\n"
        "    real(self, step, values)\n"
        "    if step == 1 and 'loss' in values:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "logs.Logger.log = hook\n"
    ),
    "during_checkpoint_write": (
        # After ckpt-4's files, before the state file names it.
        "import tensorflow as tf\n"
        "real = tf.train.CheckpointManager._record_state\n"
        "def hook(self):\n"
        "    if (self._latest_checkpoint or '').endswith('-4'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    real(self)\n"
        "tf.train.CheckpointManager._record_state = hook\n"
    ),
    "mid_run": (
        "from keras_llm.training import logs\n"
        "real = logs.Logger.log\n"
        "def hook(self, step, values):\n"
        "    real(self, step, values)\n"
        "    if step == 5 and 'loss' in values:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "logs.Logger.log = hook\n"
    ),
    "during_resume": (
        "from keras_llm.training import state\n"
        "real = state.commit\n"
        "def hook(*args):\n"
        "    real(*args)\n"
        "    if int(args[3].step) > 0: os.kill(os.getpid(), signal.SIGKILL)\n"
        "state.commit = hook\n"
    ),
}


def _run_killed(run_dir, tokenizer_dir, patch, steps):
    code = (
        "import os, signal, sys\n"
        + patch
        + "from keras_llm.cli.main import cli\n"
        + "cli(sys.argv[1:])\n"
    )
    args = [
        "train",
        "t5_tiny",
        "--run-dir",
        str(run_dir),
        # No XLA: a dozen processes, each would compile the same step.
        *_sets(
            f"data.tokenizer={tokenizer_dir}",
            f"train.train_steps={steps}",
            "runtime.jit_compile=false",
        ),
    ]
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True
    )


def _events(run_dir):
    import tensorflow as tf

    rows = []
    logs = os.path.join(run_dir, "logs")
    for name in sorted(os.listdir(logs)):
        for record in tf.data.TFRecordDataset(os.path.join(logs, name)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag != "tokens/s":
                    rows.append((event.step, value.tag))
    return sorted(rows)


def _logged(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if k != "tokens/s"} for r in rows]


@pytest.mark.large
def test_logs_and_weights_equal_after_a_kill_at_every_point(
    sentencepiece_dir, tmp_path
):
    steps = 6
    reference = tmp_path / "reference"
    result = _run_killed(reference, sentencepiece_dir, "", steps)
    assert result.returncode == 0, result.stderr
    expected_weights = train_utils.latest_values(str(reference))
    for point, patch in KILL_AT.items():
        run_dir = tmp_path / point
        if point == "during_resume":  # killed once mid-run first
            _run_killed(run_dir, sentencepiece_dir, KILL_AT["mid_run"], steps)
        killed = _run_killed(run_dir, sentencepiece_dir, patch, steps)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        resumed = _run_killed(run_dir, sentencepiece_dir, "", steps)
        assert resumed.returncode == 0, (point, resumed.stderr)
        assert _logged(run_dir) == _logged(reference), point
        assert _events(run_dir) == _events(reference), point
        train_utils.assert_same_weights(
            train_utils.latest_values(str(run_dir)),
            expected_weights,
            atol=1e-6,
        )
        leftovers = [
            name
            for name in os.listdir(run_dir / "checkpoints")
            if "_temp" in name
        ]
        assert leftovers == [], point


# Python's -m entry point of the CLI must exist for the subprocess tests.
def test_cli_module_runs():
    result = subprocess.run(
        [sys.executable, "-m", "keras_llm.cli", "--version"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert np.all([c.isdigit() or c == "." for c in result.stdout.split()[-1]])
