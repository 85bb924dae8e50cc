"""Every bad input: one line naming the file or key and the fix, the right
exit code, and nothing written. One table, one row per case.

A row runs `kllm ARGV` in-process (click's test runner) in a fresh
`tmp_path` holding the row's files and, where it names one, a copy of a
tiny run dir at `{run}`. The test checks the exit code (1: bad input, 2:
bad usage), that what follows `Error: ` is exactly one line holding the
row's message, that no traceback shows, and that every file under
`tmp_path` (run dir, `--out`, inputs) is byte for byte as before.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import struct
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from keras_llm.cli.main import cli

ZOO = pathlib.Path(__file__).parents[1] / "zoo"
MINIMAL = "model:\n  arch: t5\n  vocabulary_size: 128\n"
BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{','.join([previous] * 9)}]\n"
    for name, previous in zip(
        "abcdefghi", ['"lol"'] + [f"*{c}" for c in "abcdefgh"]
    )
)
CHECKPOINT = "{run}/checkpoints/ckpt-0"
DATA_FILE = "run/checkpoints/ckpt-0.data-00000-of-00001"


@dataclasses.dataclass
class Case:
    id: str
    argv: list[str]  # {tmp}: the test's folder; {run}: the run dir copy
    code: int  # 1: bad input (library error); 2: bad usage
    message: str  # a substring of the one-line error
    files: dict = dataclasses.field(default_factory=dict)  # path: content
    run: str | None = None  # a tiny zoo model to copy into {tmp}/run
    setup: Callable | None = None  # setup(tmp_path) after files and run
    input: bytes | None = None  # stdin


def _truncate(path, size):
    def setup(tmp_path):
        with open(tmp_path / path, "r+b") as file:
            file.truncate(size)

    return setup


def _remove(path):
    def setup(tmp_path):
        os.remove(tmp_path / path)

    return setup


def _safetensors(header, body=b"", size=None):
    """A model.safetensors: 8-byte header size, JSON header, data."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if size is None else size) + (
        text + body
    )


# A Hugging Face BERT folder as small as it gets; its weights are the rows'.
BERT_SRC = {
    "src/config.json": json.dumps(
        {
            "model_type": "bert",
            "architectures": ["BertForMaskedLM"],
            "vocab_size": 16,
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 16,
            "max_position_embeddings": 16,
        }
    ),
    "src/vocab.txt": "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nfor\nloop\n",
}
CONVERT = ["convert", "hf", "{tmp}/src", "--out", "{tmp}/converted"]


CASES = [
    # --- Configs (kllm validate, zoo show, train) ---------------------------
    Case(
        "config-billion-laughs",
        ["validate", "{tmp}/c.yaml"],
        1,
        "c.yaml: the YAML expands to more than 10,000 values",
        files={"c.yaml": BILLION_LAUGHS},
    ),
    Case(
        "config-alias-cycle",
        ["validate", "{tmp}/c.yaml"],
        1,
        "c.yaml: line 4: an alias refers to the value that holds it",
        files={"c.yaml": MINIMAL + "data: &d [*d]\n"},
    ),
    Case(
        "config-duplicate-key",
        ["validate", "{tmp}/c.yaml"],
        1,
        "c.yaml: model.num_heads: duplicate key on lines 4 and 5 (keep one",
        files={"c.yaml": MINIMAL + "  num_heads: 4\n  num_heads: 8\n"},
    ),
    Case(
        "config-duplicate-section",
        ["validate", "{tmp}/c.yaml"],
        1,
        "c.yaml: train: duplicate section on lines 4 and 6 (merge them",
        files={"c.yaml": MINIMAL + "train:\n  seed: 1\ntrain:\n  seed: 2\n"},
    ),
    Case(
        "config-huge-vocabulary",
        ["validate", "{tmp}/c.yaml"],
        1,
        "c.yaml: model.vocabulary_size: must be in [1, 2**24 = 16777216]. "
        "Received: 1000000000000",
        files={
            "c.yaml": "model:\n  arch: t5\n  vocabulary_size: 1000000000000\n"
        },
    ),
    Case(
        "config-huge-batch-validate",
        [
            "validate",
            "t5_tiny",
            "--set",
            "train.global_batch_size=1000000000000",
        ],
        1,
        "--set: train.global_batch_size: must be in [1, 2**20 = 1048576]",
    ),
    Case(
        "config-huge-batch-train",
        [
            "train",
            "t5_tiny",
            "--run-dir",
            "{tmp}/run",
            "--set",
            "train.global_batch_size=1000000000000",
        ],
        1,
        "--set: train.global_batch_size: must be in [1, 2**20 = 1048576]",
    ),  # fmt: skip
    Case(
        "config-huge-hidden-dim",
        ["zoo", "show", "t5_tiny", "--set", "model.hidden_dim=1048576"],
        1,
        "--set: model.hidden_dim: must be in [1, 2**17 = 131072]",
    ),
    Case(
        "config-huge-sequence",
        ["validate", "gpt2_tiny", "--set", "data.sequence_length=1000000"],
        1,
        "--set: data.sequence_length: must be in [1, 2**17 = 131072]",
    ),
    Case(
        "config-huge-layers",
        ["validate", "t5_tiny", "--set", "model.num_layers=100000"],
        1,
        "--set: model.num_layers: must be in [1, 2**10 = 1024]",
    ),
    Case(
        "config-not-finite",
        ["validate", "t5_tiny", "--set", "train.learning_rate=.nan"],
        1,
        "--set: train.learning_rate: must be a finite number. Received: nan",
    ),
    Case(
        "config-unknown-key",
        ["validate", "{tmp}/c.yaml"],
        1,
        "c.yaml: model.num_head: unknown key (did you mean 'num_heads'?)",
        files={"c.yaml": MINIMAL + "  num_head: 8\n"},
    ),
    Case(
        "config-invalid-yaml",
        ["validate", "{tmp}/c.yaml"],
        1,
        "c.yaml: line 2, column 1: invalid YAML",
        files={"c.yaml": "model: [1\n"},
    ),
    Case(
        "config-missing-file",
        ["validate", "{tmp}/missing.yaml"],
        1,
        "missing.yaml: no such file",
    ),
    Case(
        "config-unknown-zoo-name",
        ["zoo", "show", "t5_huge"],
        1,
        "no config named 't5_huge' in the zoo. Available: ",
    ),
    Case(
        "config-set-syntax",
        ["validate", "t5_tiny", "--set", "model.dropout"],
        2,
        "Invalid value for '--set': expected SECTION.KEY=VALUE",
    ),
    Case(
        "config-set-duplicate-key",
        ["validate", "t5_tiny", "--set", "model.dropout={{a: 1, a: 2}}"],
        2,
        "model.dropout.a: duplicate key on line 1",
    ),
    # --- kllm export --------------------------------------------------------
    Case(
        "export-name-escapes-out",
        ["export", "{run}", "--out", "{tmp}/models", "--name", "../../x"],
        2,
        "Invalid value for '--name': must be one folder name: letters, "
        "digits, '_', '-' and '.' (not '.' or '..', no '/'). "
        "Received: '../../x'",
        run="t5_tiny",
    ),
    Case(
        "export-name-dot-dot",
        ["export", "{run}", "--out", "{tmp}/models", "--name", ".."],
        2,
        "Invalid value for '--name': must be one folder name",
        run="t5_tiny",
    ),
    Case(
        "export-name-separator",
        ["export", "{run}", "--out", "{tmp}/models", "--name", "a/b"],
        2,
        "Received: 'a/b'",
        run="t5_tiny",
    ),
    Case(
        "export-default-name-not-plain",
        ["export", "{tmp}/my run", "--out", "{tmp}/models"],
        1,
        "With no --name, the model name is the run dir's folder name; it "
        "must be one folder name",
        run="t5_tiny",
        setup=lambda tmp: (tmp / "run").rename(tmp / "my run"),
    ),
    Case(
        "export-max-new-tokens-unbounded",
        ["export", "{run}", "--out", "{tmp}/models", "--max-new-tokens", "1e9"],
        2,
        "Invalid value for '--max-new-tokens': '1e9' is not a valid integer",
        run="t5_tiny",
    ),
    Case(
        "export-max-new-tokens-too-many",
        [
            "export",
            "{run}",
            "--out",
            "{tmp}/models",
            "--max-new-tokens",
            "1000000000",
        ],
        2,
        "Invalid value for '--max-new-tokens': 1000000000 is more than "
        "4096, the most a model without a position table generates",
        run="t5_tiny",
    ),  # fmt: skip
    Case(
        "export-max-new-tokens-past-positions",
        ["export", "{run}", "--out", "{tmp}/models", "--max-new-tokens", "129"],
        2,
        "Invalid value for '--max-new-tokens': 129 leaves no position for "
        "the prompt: the model has 128 positions (model.max_sequence_length)"
        "; use at most 128",
        run="gpt2_tiny",
    ),
    Case(
        "export-version-exists",
        [
            "export",
            "{run}",
            "--out",
            "{tmp}/models",
            "--name",
            "t5",
            "--version",
            "1",
        ],
        1,
        "models/t5/1 already exists: pass --overwrite to replace it",
        run="t5_tiny",
        files={"models/t5/1/saved_model.pb": b"x"},
    ),  # fmt: skip
    Case(
        "export-missing-run-dir",
        ["export", "{tmp}/nope", "--out", "{tmp}/models"],
        1,
        "Run directory not found",
    ),
    Case(
        "export-out-not-writable",
        ["export", "{run}", "--out", "{tmp}/blocker/models"],
        1,
        "Cannot write the export to",
        run="t5_tiny",
        files={"blocker": "x"},
    ),
    Case(
        "export-damaged-checkpoint",
        ["export", "{run}", "--out", "{tmp}/models"],
        1,
        f"{CHECKPOINT}: the checkpoint is damaged (Read less bytes than "
        "requested); delete it or restore it from a backup.",
        run="t5_tiny",
        setup=_truncate(DATA_FILE, 1000),
    ),
    # --- kllm generate ------------------------------------------------------
    Case(
        "generate-file-not-utf8",
        ["generate", "{run}", "--file", "{tmp}/prompts.txt"],
        1,
        "prompts.txt: line 3 is not valid UTF-8 (byte 0xff at byte 6 of the "
        "line): convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8), or "
        "pass --errors replace",
        run="t5_tiny",
        files={"prompts.txt": b"hello\n\nworld\xff\n"},
    ),
    Case(
        "generate-stdin-not-utf8",
        ["generate", "{run}"],
        1,
        "stdin: line 2 is not valid UTF-8 (byte 0xe9 at byte 4",
        run="t5_tiny",
        input=b"hello\ncaf\xe9\n",
    ),
    Case(
        "generate-argument-not-utf8",
        ["generate", "{run}", "ok", "caf\udce9"],
        1,
        "TEXT argument 2 is not valid UTF-8 (byte 0xe9)",
        run="t5_tiny",
    ),
    Case(
        "generate-errors-choice",
        ["generate", "{run}", "x", "--errors", "ignore"],
        2,
        "Invalid value for '--errors': 'ignore' is not one of 'strict', "
        "'replace'",
        run="t5_tiny",
    ),
    Case(
        "generate-empty-stdin",
        ["generate", "{run}"],
        2,
        "No prompts: stdin is empty (one prompt per line).",
        run="t5_tiny",
        input=b"",
    ),
    Case(
        "generate-empty-file",
        ["generate", "{run}", "--file", "{tmp}/prompts.txt"],
        2,
        "prompts.txt is empty",
        run="t5_tiny",
        files={"prompts.txt": ""},
    ),
    Case(
        "generate-text-and-file",
        ["generate", "{run}", "x", "--file", "{tmp}/prompts.txt"],
        2,
        "Pass prompts as TEXT arguments or --file, not both.",
        run="t5_tiny",
        files={"prompts.txt": "y\n"},
    ),
    Case(
        "generate-max-new-tokens-too-many",
        ["generate", "{run}", "x", "--max-new-tokens", "1000000000"],
        2,
        "Invalid value for '--max-new-tokens': 1000000000 is more than 4096",
        run="t5_tiny",
    ),
    Case(
        "generate-max-new-tokens-past-positions",
        ["generate", "{run}", "x", "--max-new-tokens", "129"],
        2,
        "Invalid value for '--max-new-tokens': 129 leaves no position for "
        "the prompt: the model has 128 positions",
        run="gpt2_tiny",
    ),
    Case(
        "generate-sampling-option-without-sampling",
        ["generate", "{run}", "x", "--temperature", "0.5"],
        2,
        "--temperature only applies with --do-sample",
        run="t5_tiny",
    ),
    Case(
        "generate-num-beams-zero",
        ["generate", "{run}", "x", "--num-beams", "0"],
        2,
        "Invalid value for '--num-beams': 0 is not in the range x>=1",
        run="t5_tiny",
    ),
    Case(
        "generate-missing-run-dir",
        ["generate", "{tmp}/nope", "x"],
        1,
        "Run directory not found",
    ),
    Case(
        "generate-not-a-run-dir",
        ["generate", "{run}", "x"],
        1,
        "run/config.yaml is missing: {run} is not a keras_llm run directory",
        run="t5_tiny",
        setup=_remove("run/config.yaml"),
    ),
    Case(
        "generate-truncated-checkpoint",
        ["generate", "{run}", "x"],
        1,
        f"{CHECKPOINT}: the checkpoint is damaged (Read less bytes than "
        "requested); delete it or restore it from a backup.",
        run="t5_tiny",
        setup=_truncate(DATA_FILE, 1000),
    ),
    Case(
        "generate-empty-checkpoint-data",
        ["generate", "{run}", "x"],
        1,
        f"{CHECKPOINT}: the checkpoint is damaged",
        run="gpt2_tiny",
        setup=_truncate(DATA_FILE, 0),
    ),
    Case(
        "generate-garbage-checkpoint-index",
        ["generate", "{run}", "x"],
        1,
        f"{CHECKPOINT}: the checkpoint is damaged (file is too short to be "
        "an sstable)",
        run="t5_tiny",
        files={"run/checkpoints/ckpt-0.index": "garbage"},
    ),
    Case(
        "generate-missing-checkpoint-data",
        ["generate", "{run}", "x"],
        1,
        f"{CHECKPOINT}: the checkpoint is damaged (",
        run="t5_tiny",
        setup=_remove(DATA_FILE),
    ),
    Case(
        "generate-garbage-checkpoint-list",
        ["generate", "{run}", "x"],
        1,
        "run/checkpoints/checkpoint is damaged (1:1 : Message type "
        '"tensorflow.CheckpointState" has no field named "garbage"); restore '
        'it from a backup, or write the line model_checkpoint_path: "ckpt-N"',
        run="t5_tiny",
        files={"run/checkpoints/checkpoint": "garbage {\n"},
    ),
    Case(
        "generate-checkpoint-list-names-a-missing-one",
        ["generate", "{run}", "x"],
        1,
        "run/checkpoints/ckpt-7.index is missing (named in ",
        run="t5_tiny",
        files={"run/checkpoints/checkpoint": 'model_checkpoint_path: "ckpt-7"'},
    ),
    Case(
        "generate-garbage-tokenizer",
        ["generate", "{run}", "x"],
        1,
        "run/tokenizer: the tokenizer is damaged (",
        run="t5_tiny",
        files={"run/tokenizer/spiece.model": "garbage"},
    ),
    # --- kllm convert hf: safetensors headers -------------------------------
    Case(
        "convert-safetensors-header-is-a-list",
        CONVERT,
        1,
        "src/model.safetensors is not a safetensors file: its header is a "
        "list, not a mapping of tensor names.",
        files={**BERT_SRC, "src/model.safetensors": _safetensors([1, 2])},
    ),
    Case(
        "convert-safetensors-header-claims-2-62-bytes",
        CONVERT,
        1,
        "src/model.safetensors is not a safetensors file (or is "
        "truncated): its header claims 4,611,686,018,427,387,904 bytes",
        files={
            **BERT_SRC,
            "src/model.safetensors": _safetensors({}, size=2**62),
        },
    ),
    Case(
        "convert-safetensors-offsets-past-the-end",
        CONVERT,
        1,
        "src/model.safetensors: tensor 'w': data_offsets [0, "
        "4611686018427387904] are not a range within the file's 4 data "
        "bytes (is the file truncated?)",
        files={
            **BERT_SRC,
            "src/model.safetensors": _safetensors(
                {
                    "w": {
                        "dtype": "F32",
                        "shape": [1],
                        "data_offsets": [0, 2**62],
                    }
                },
                b"\0" * 4,
            ),
        },
    ),
    Case(
        "convert-safetensors-shape-and-bytes-disagree",
        CONVERT,
        1,
        "tensor 'w': shape [4, 3] of F32 needs 48 bytes, data_offsets give 4",
        files={
            **BERT_SRC,
            "src/model.safetensors": _safetensors(
                {
                    "w": {
                        "dtype": "F32",
                        "shape": [4, 3],
                        "data_offsets": [0, 4],
                    }
                },
                b"\0" * 4,
            ),
        },
    ),
    Case(
        "convert-shard-index-escapes-the-folder",
        CONVERT,
        1,
        "model.safetensors.index.json: weight_map must map weight names to "
        "file names in",
        files={
            **BERT_SRC,
            "src/model.safetensors.index.json": json.dumps(
                {"weight_map": {"w": "../../etc/passwd"}}
            ),
        },
    ),
]


def _snapshot(root):
    """Every file under `root` with its bytes; every folder."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            state[os.path.join(folder, name)] = None
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as file:
                state[path] = file.read()
    return state


def _prepare(case, tmp_path, tiny_run_dir):
    if case.run:
        shutil.copytree(tiny_run_dir(case.run), tmp_path / "run")
    for path, content in case.files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    if case.setup:
        case.setup(tmp_path)
    values = {"tmp": tmp_path, "run": tmp_path / "run"}
    return [arg.format(**values) for arg in case.argv], values


def _invoke(argv, case):
    return CliRunner().invoke(cli, argv, input=case.input)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_one_line_error(case, tmp_path, tiny_run_dir):
    argv, values = _prepare(case, tmp_path, tiny_run_dir)
    before = _snapshot(tmp_path)
    result = _invoke(argv, case)
    assert result.exit_code == case.code, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert "Error: " in result.stderr, result.stderr
    error = result.stderr.split("Error: ", 1)[1]
    assert error.endswith("\n") and error.count("\n") == 1, result.stderr
    assert case.message.format(**values) in error
    assert _snapshot(tmp_path) == before


def test_at_least_thirty_cases():
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


LIBRARY_CASES = [
    case
    for case in CASES
    if case.code == 1
    and case.argv[0] in ("validate", "export")
    or case.id.startswith(("generate-truncated", "convert-safetensors-header"))
]


@pytest.mark.parametrize("case", LIBRARY_CASES, ids=lambda case: case.id)
def test_debug_shows_the_traceback(case, tmp_path, tiny_run_dir):
    argv, _ = _prepare(case, tmp_path, tiny_run_dir)
    result = _invoke([*argv, "--debug"], case)
    assert result.exit_code == 1
    # The library's exception itself, not click's one line.
    assert isinstance(result.exception, (ValueError, OSError))
