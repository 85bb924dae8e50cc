"""Every command in README.md, docs/serving.md and docs/training.md runs in
a test, so the documents cannot drift from what the code does.

The ```bash blocks are cut into commands: a line ending in `\\` continues,
so does an open quote; `a && b` is two commands; `# ...` is a comment. The
commands of one document run in order, in a scratch folder that holds
`zoo/` (a link to the repository's) and the reader's own files (`FILES`).
Each command is checked by its kind:

- `kllm ...`: run for real through Click's `CliRunner`; it must exit 0.
  `SHORTER` lists, with the reason, each change made to keep one short (a
  T5-small step takes 2 minutes here). The README's quick start runs as
  written, 600 steps, and prints what the README shows (the numbers to
  within what another machine's floats may move; the generated text in
  the form the README explains). These runs are `large`; docs/serving.md's
  export runs in the default suite, on a tiny run dir with a task prefix.
- `docker run ...`: TF Serving's; there is no Docker daemon here. Each
  must equal, its lines joined, the command `kllm export` printed.
- `curl .../v1/models/NAME:predict -d BODY`: a REST request to that
  server. The body is read as TF Serving's REST API reads it (`instances`,
  row format, or `inputs`, columnar) and run on the newest export of NAME
  through the TF1 session loader (tests/serving/session_client.py, a
  process that imports only tensorflow and tensorflow_text). The outputs
  must equal keras_llm's for the same raw text, with the export's decoding
  settings: the graph adds the task prefix, so the body must not.
- docs/serving.md's ```python blocks: the gRPC client runs with a stub in
  place of the channel, which sends its `PredictRequest` through the same
  session loader; the loading snippet runs in a fresh process and fails as
  the page says without `import tensorflow_text`.

Commands that are not run, and why (`SKIPPED`):

- `git clone`, `cd`, `python3 -m venv`, `.` (activate), `pip`,
  `apt-get`: they set up the machine these tests already run on.
- `pytest`: this suite.
- `tensorboard --logdir DIR`: a server that runs until stopped; DIR must
  exist after the commands before it.
- `TF_CONFIG=... kllm train ...`: needs the hosts that TF_CONFIG names;
  tests/test_train.py runs multi-worker training on two local ports.
- `kllm convert hf path/to/...`: needs a Hugging Face checkpoint folder;
  tests/test_convert.py converts real ones.
- Synopses (`kllm train CONFIG [--set ...]`): placeholders, not commands.
- `/usr/bin/time -v` before a command: dropped (it measures memory); the
  command after it runs.
"""

import ast
import contextlib
import dataclasses
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from keras_llm.cli.main import cli

ROOT = pathlib.Path(__file__).parents[1]
DOCUMENTS = (
    "README.md",
    "docs/serving.md",
    "docs/training.md",
    "docs/tasks.md",
)
SESSION_CLIENT = ROOT / "tests" / "serving" / "session_client.py"
REST_PORT = 8501
GRPC_PORT = 8500

SKIPPED = {
    "setup": "sets up the machine these tests already run on",
    "pytest": "this suite",
    "tensorboard": "a server that runs until stopped (its logdir is checked)",
    "multi_worker": "needs the hosts that TF_CONFIG names "
    "(tests/test_train.py runs two local workers)",
    "convert": "needs a Hugging Face checkpoint folder "
    "(tests/test_convert.py converts real ones)",
    "synopsis": "placeholders, not a command",
}
_SETUP = {"git", "cd", "python3", ".", "source", "pip", "apt-get", "sudo"}


def _language_lines(count, seed):
    """`text<TAB>label` lines of random English (en) or Spanish (es) words,
    for the README's classifier."""
    import random

    words = {
        "en": "the dog cat eats drinks water my friend reads a book house "
        "is big small we they run good day night".split(),
        "es": "el perro gato come bebe agua mi amigo lee un libro casa es "
        "grande pequeña nosotros ellos corren buen día noche".split(),
    }
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        label = rng.choice(["en", "es"])
        text = " ".join(rng.choices(words[label], k=rng.randint(3, 7)))
        lines.append(f"{text}\t{label}\n")
    return "".join(lines)


# The reader's own files that commands name, written into the scratch
# folder: (contents, the command that reads them).
FILES = {
    "sentences.txt": (
        "In the beginning God created the heaven and the earth.\n"
        "And God said, Let there be light: and there was light.\n",
        "README: kllm generate runs/en_es ... < sentences.txt",
    ),
    # Filled with Python's documentation by `_make_scratch`.
    "corpus.txt": (None, "README: kllm tokenizer train corpus.txt"),
    "lang.tsv": (
        _language_lines(200, seed=0),
        "README: kllm train zoo/bert_tiny_classifier.yaml ... lang.tsv",
    ),
    "lang_test.tsv": (
        _language_lines(20, seed=1),
        "README: kllm evaluate runs/lang --data lang_test.tsv",
    ),
}

# (document, a text that picks the command, text replaced, replacement,
# why). Applied to the command as written (lines joined), before it is
# split into words; when the text replaced is None, the replacement is
# appended. Each entry must match a command (a test checks).
SHORTER = [
    (
        "README.md",
        "zoo/t5_tiny.yaml --set train.train_steps=2000",
        "train.train_steps=2000",
        "train.train_steps=610",
        "resumes the quick start's 600 steps for 10 more, not 1,400",
    ),
    (
        "README.md",
        "--run-dir runs/en_es",
        "train.train_steps=2000",
        "train.train_steps=20",
        "20 steps of the translation recipe show that it trains; its "
        "figures come from the 2,000 (half an hour)",
    ),
    (
        "README.md",
        "kllm evaluate runs/en_es",
        None,
        " --max-new-tokens 4",
        "4 new tokens of each of the 670 test verses, not up to 96",
    ),
    (
        "docs/tasks.md",
        "train.train_steps=2000",
        "train.train_steps=2000",
        "train.train_steps=4 --set runtime.jit_compile=false",
        "4 steps of each recipe, without compiling the step, show that it "
        "runs; its figures come from the 2,000 (a minute or two each, the "
        "translations longer)",
    ),
    (
        "docs/tasks.md",
        "--predictions",
        None,
        " --max-new-tokens 4",
        "4 new tokens of each of the 670 test verses, not up to 96",
    ),
    (
        "docs/tasks.md",
        "kllm evaluate",
        None,
        " --no-xla",
        "compiling the decode loop takes longer than decoding 4 tokens",
    ),
    (
        "docs/training.md",
        "zoo/t5_small.yaml --run-dir /tmp/t5s",
        "zoo/t5_small.yaml --run-dir /tmp/t5s",
        "zoo/t5_tiny.yaml --run-dir tmp/t5s --set train.train_steps=20",
        "a T5-small step takes 2 minutes and 9 GB here (the page's own "
        "figures), and /tmp is shared: the tiny T5 shows the same start "
        "and resume in the scratch folder",
    ),
]

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.M)
# A shell comment: `#` starting a word, to the end of its line.
_COMMENT = re.compile(r"(?:^|(?<=\s))#(?:\s.*)?$", re.M)
_PREDICT_URL = re.compile(
    r"(?:https?://)?localhost:(\d+)/v1/models/([\w.-]+)"
    r"(?:/versions/(\d+))?:predict"
)


def fenced_blocks(document, language):
    """The bodies of the ```LANGUAGE blocks of a document, in order."""
    text = (ROOT / document).read_text()
    return [m[2] for m in _FENCE.finditer(text) if m[1] == language]


@dataclasses.dataclass
class Command:
    document: str
    text: str  # as written: lines joined, whitespace collapsed
    argv: list
    kind: str
    shortened: list = dataclasses.field(default_factory=list)


def _shorten(document, text):
    used = []
    for index, (doc, picks, old, new, _) in enumerate(SHORTER):
        if doc == document and picks in text:
            text = text + new if old is None else text.replace(old, new)
            used.append(index)
    return text, used


def _kind(argv, env):
    word = argv[0]
    if word in _SETUP:
        return "setup"
    if word in ("pytest", "tensorboard", "docker", "curl"):
        return word
    if word != "kllm":
        return "unknown"
    if "TF_CONFIG" in env:
        return "multi_worker"
    if any(re.fullmatch(r"[A-Z][A-Z_]+|\[.*", w) for w in argv[1:]):
        return "synopsis"
    if argv[1:3] == ["convert", "hf"]:
        return "convert"
    return "kllm"


def commands(document):
    """Every command of the document's ```bash blocks, in order."""
    return split_commands(document, fenced_blocks(document, "bash"))


def split_commands(document, blocks):
    found = []
    for block in blocks:
        pending = ""
        for line in block.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            pending += line + "\n"
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # a quote is still open
                continue
            text = " ".join(_COMMENT.sub("", pending).split())
            if not text:
                pending = ""
                continue
            shortened, used = _shorten(document, text)
            # Words as the shell reads them (whitespace in quotes kept),
            # unless SHORTER changed the command.
            words = shlex.split(shortened if used else pending, comments=True)
            while words:
                end = words.index("&&") if "&&" in words else len(words)
                argv, words = words[:end], words[end + 1 :]
                env = {}
                while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0], re.S):
                    key, value = argv.pop(0).split("=", 1)
                    env[key] = value
                if argv[:2] == ["/usr/bin/time", "-v"]:
                    argv = argv[2:]
                found.append(
                    Command(document, text, argv, _kind(argv, env), used)
                )
            pending = ""
    return found


# === Running a document ====================================================


def _make_scratch(path):
    from keras_llm.data import sources

    path.mkdir(parents=True, exist_ok=True)
    (path / "zoo").symlink_to(ROOT / "zoo")
    for name, (contents, _) in FILES.items():
        if contents is None:  # corpus.txt
            contents = "".join(
                " ".join(doc.split()) + "\n"
                for doc in sources.pydoc_documents()
            )
        (path / name).write_text(contents)
    return path


def run_kllm(argv, stdin=None):
    result = CliRunner().invoke(cli, argv[1:], input=stdin)
    assert result.exit_code == 0, (shlex.join(argv), result.output)
    return result


def _newest_export(scratch, name):
    model_dir = scratch / "models" / name
    versions = sorted(int(v) for v in os.listdir(model_dir) if v.isdigit())
    return model_dir / str(versions[-1])


def rest_request(body):
    """A REST predict body as TF Serving reads it → a session_client
    request: `instances` (row format; bare values for a signature with one
    input) or `inputs` (columnar)."""
    signature = body.get("signature_name", "serving_default")
    if "instances" in body:
        rows = body["instances"]
        if all(isinstance(row, dict) for row in rows):
            inputs = {key: [row[key] for row in rows] for key in rows[0]}
        else:
            inputs = {"inputs": rows}  # the signature's one input
    else:
        inputs = body["inputs"]
        if not isinstance(inputs, dict):
            inputs = {"inputs": inputs}
    return {"signature": signature, "inputs": inputs}


def curl_request(command, scratch):
    """(export dir, session_client request) of a `curl ... -d BODY`."""
    argv = command.argv
    (url,) = [w for w in argv if _PREDICT_URL.fullmatch(w)]
    port, name, version = _PREDICT_URL.fullmatch(url).groups()
    assert int(port) == REST_PORT, command.text
    body = json.loads(argv[argv.index("-d") + 1])
    export_dir = (
        scratch / "models" / name / version
        if version
        else _newest_export(scratch, name)
    )
    return export_dir, rest_request(body)


def session_run(export_dir, requests, tmp_path):
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(requests))
    result = subprocess.run(
        [sys.executable, str(SESSION_CLIENT), str(export_dir), str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])["results"]


def check_served(export_dir, requests, results):
    """Each result is what keras_llm gives for the request's raw inputs,
    with the export's decoding settings."""
    import numpy as np

    import keras_llm
    from keras_llm.generation import GenerationConfig

    meta = json.loads(
        (export_dir / "assets.extra" / "keras_llm_export.json").read_text()
    )
    lm = keras_llm.load(meta["run_dir"])
    prefix = meta["task_prefix"]
    for request, result in zip(requests, results):
        inputs = request["inputs"]["inputs"]
        if prefix:  # the graph adds it; a client that adds it sends it twice
            assert not any(text.startswith(prefix) for text in inputs)
        if request["signature"] == "serving_default":
            expected = lm.generate(
                inputs,
                GenerationConfig(**meta["generation"]),
                jit_compile=False,
            )
            assert result["outputs"] == expected
        elif request["signature"] == "score":
            expected = lm.score(inputs, request["inputs"]["targets"])
            np.testing.assert_allclose(
                result["log_likelihood"], expected, rtol=1e-4
            )
            assert len(result["num_tokens"]) == len(inputs)
        else:
            raise AssertionError(f"no check for {request['signature']}")


def run_document(document, scratch, tmp_path, on_kllm=None, then=()):
    """Runs the document's commands in `scratch`, in order, then the
    commands `then`; returns {kind: [Command]} of what ran, was compared
    or was skipped."""
    done = {}
    printed = []  # what each `kllm export` printed
    requests = {}  # export dir → [request]
    with contextlib.chdir(scratch):
        for command in [*commands(document), *then]:
            kind = command.kind
            done.setdefault(kind, []).append(command)
            if kind == "kllm":
                stdin = None
                if "<" in command.argv:
                    at = command.argv.index("<")
                    stdin = pathlib.Path(command.argv[at + 1]).read_text()
                    command.argv = command.argv[:at]
                result = run_kllm(command.argv, stdin)
                if command.argv[1] == "export":
                    printed.append(result.stdout)
                if on_kllm:
                    on_kllm(command, result)
            elif kind == "docker":
                assert printed, f"{command.text}: no kllm export before it"
                serve = printed[-1].splitlines()[-1].strip()
                assert command.text == serve, (
                    f"{document} shows\n  {command.text}\nkllm export "
                    f"printed\n  {serve}"
                )
            elif kind == "curl":
                export_dir, request = curl_request(command, scratch)
                requests.setdefault(export_dir, []).append(request)
            elif kind == "tensorboard":
                logdir = command.argv[command.argv.index("--logdir") + 1]
                assert os.path.isdir(logdir), command.text
            else:
                assert kind in SKIPPED, f"{command.document}: {command.text}"
    for export_dir, batch in requests.items():
        check_served(
            export_dir, batch, session_run(export_dir, batch, tmp_path)
        )
    return done


# === Fast checks: the commands are known, the serving story is one ========


def test_every_command_is_run_compared_or_skipped_with_a_reason():
    used = set()
    for document in DOCUMENTS:
        for command in commands(document):
            assert command.kind != "unknown", (
                f"{document}: no check for {command.text!r}; run it in "
                "tests/test_docs_commands.py or add it to SKIPPED"
            )
            used.update(command.shortened)
    assert used == set(range(len(SHORTER))), "a SHORTER entry matches nothing"
    kinds = {c.kind for d in DOCUMENTS for c in commands(d)}
    assert {"kllm", "docker", "curl"} <= kinds


def test_one_docker_command_everywhere():
    from keras_llm import serving

    found = [c for d in DOCUMENTS for c in commands(d) if c.kind == "docker"]
    assert {c.document for c in found} == {"README.md", "docs/serving.md"}
    assert {c.text for c in found} == {serving.serve_command("models")}


def test_splits_blocks_into_commands():
    block = (
        "a 'b\n  c' \\\n  --d  # comment\n"
        "# a line of comment\n"
        "X='1\n2' kllm train CONFIG && pip install -e .\n"
        "/usr/bin/time -v kllm zoo list\n"
    )
    found = split_commands("README.md", [block])
    assert [(c.argv, c.kind) for c in found] == [
        (["a", "b\n  c", "--d"], "unknown"),
        (["kllm", "train", "CONFIG"], "synopsis"),
        (["pip", "install", "-e", "."], "setup"),
        (["kllm", "zoo", "list"], "kllm"),
    ]
    assert found[0].text == "a 'b c' --d"


# === docs/serving.md on a tiny run dir with a task prefix ==================

PREFIX = "translate English to Spanish: "


@pytest.fixture(scope="module")
def served(tiny_run_dir, tmp_path_factory):
    """docs/serving.md's commands, and the README's requests, run in a
    scratch folder whose `runs/en_es` is the tiny T5 run dir with the
    translation recipe's task prefix."""
    from keras_llm import config as config_lib
    from keras_llm import rundir

    scratch = _make_scratch(tmp_path_factory.mktemp("serving_md"))
    run_dir = scratch / "runs" / "en_es"
    shutil.copytree(tiny_run_dir("t5_tiny"), run_dir)
    cfg = config_lib.load_config(
        str(run_dir / "config.yaml"), [f"data.task_prefix='{PREFIX}'"]
    )
    rundir.write_config(cfg, str(run_dir))
    outputs = []
    done = run_document(
        "docs/serving.md",
        scratch,
        tmp_path_factory.mktemp("requests"),
        on_kllm=lambda command, result: outputs.append(result.stdout),
        then=[c for c in commands("README.md") if c.kind == "curl"],
    )
    return scratch, done, outputs


@pytest.mark.large
def test_serving_md_export_prints_what_the_page_shows(served):
    scratch, done, outputs = served
    assert [c.argv[1] for c in done["kllm"]] == ["export"]
    assert len(done["docker"]) == 1
    assert [c.document for c in done["curl"]] == [
        "docs/serving.md",
        "docs/serving.md",
        "README.md",
    ]
    # The ```text block after the export command is its output.
    text = (ROOT / "docs/serving.md").read_text()
    shown = re.search(
        r"```bash\nkllm export .*?```\n```text\n(.*?)```", text, re.S
    )
    assert outputs[0] == shown[1]
    models_config = (scratch / "models" / "models.config").read_text()
    assert 'base_path: "/models/en_es"' in models_config


class _SessionStub:
    """`PredictionServiceStub` in place of a TF Serving server: each
    `PredictRequest` runs through the session loader on the export."""

    def __init__(self, scratch, tmp_path, channel):
        assert channel == f"localhost:{GRPC_PORT}"
        self.scratch, self.tmp_path = scratch, tmp_path
        self.requests = []

    def Predict(self, request, timeout=None):  # noqa: N802 (gRPC's name)
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        inputs = {}
        for key, proto in request.inputs.items():
            value = tf.make_ndarray(proto)
            inputs[key] = (
                [v.decode() for v in value.ravel()]
                if value.dtype == object
                else value.tolist()
            )
        signature = request.model_spec.signature_name or "serving_default"
        session_request = {"signature": signature, "inputs": inputs}
        export_dir = _newest_export(self.scratch, request.model_spec.name)
        (result,) = session_run(export_dir, [session_request], self.tmp_path)
        self.requests.append((export_dir, session_request, result))
        reply = predict_pb2.PredictResponse()
        for key, value in result.items():
            reply.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return reply


@pytest.mark.large
def test_serving_md_grpc_client_runs(served, tmp_path, monkeypatch, capsys):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    scratch, _, _ = served
    stubs = []

    def make_stub(channel):
        stubs.append(_SessionStub(scratch, tmp_path, channel))
        return stubs[-1]

    monkeypatch.setattr(grpc, "insecure_channel", lambda target: target)
    monkeypatch.setattr(
        prediction_service_pb2_grpc, "PredictionServiceStub", make_stub
    )
    (code,) = [
        block
        for block in fenced_blocks("docs/serving.md", "python")
        if "PredictionServiceStub" in block
    ]
    capsys.readouterr()
    exec(compile(code, "docs/serving.md", "exec"), {})  # noqa: S102
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    ((export_dir, request, result),) = stubs[0].requests
    check_served(export_dir, [request], [result])
    assert ast.literal_eval(printed) == result["outputs"]


def _loading_snippet():
    (code,) = [
        block
        for block in fenced_blocks("docs/serving.md", "python")
        if "tf.saved_model.load" in block
    ]
    return code


def _python(code, cwd):
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@pytest.mark.large
def test_serving_md_loading_snippet_runs_in_a_fresh_process(served):
    import keras_llm
    from keras_llm.generation import GenerationConfig

    scratch, _, _ = served
    code = _loading_snippet()
    result = _python(code, scratch)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    meta = json.loads(
        (
            _newest_export(scratch, "en_es")
            / "assets.extra"
            / "keras_llm_export.json"
        ).read_text()
    )
    text = re.search(r"tf\.constant\((\[.*?\])\)", code).group(1)
    expected = keras_llm.load(str(scratch / "runs" / "en_es")).generate(
        ast.literal_eval(text),
        GenerationConfig(**meta["generation"]),
        jit_compile=False,
    )
    assert printed == expected


@pytest.mark.large
def test_serving_md_loading_fails_as_described_without_tensorflow_text(
    served,
):
    scratch, _, _ = served
    code = "\n".join(
        line
        for line in _loading_snippet().splitlines()
        if "import tensorflow_text" not in line
    )
    result = _python(code, scratch)
    assert result.returncode != 0
    assert "Op type not registered 'SentencepieceOp'" in result.stderr


# === The commands that train: large ========================================


def _shown_block(document, after):
    """The first ```text block after the text `after`."""
    text = (ROOT / document).read_text()
    at = text.index(after)
    return re.search(r"```text\n(.*?)```", text[at:], re.S)[1]


_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[-+]\d+)?")


@pytest.mark.large
def test_readme_commands_run(tmp_path):
    """The README top to bottom; the quick start as written."""
    generated = []

    def on_kllm(command, result):
        if command.argv[1] == "train" and "--set" not in command.argv:
            _check_quick_start(result.output)
        if command.argv[1:3] == ["generate", "runs/t5_tiny"]:
            generated.append(result.stdout)

    done = run_document(
        "README.md", _make_scratch(tmp_path / "scratch"), tmp_path, on_kllm
    )
    assert len(done["docker"]) == len(done["curl"]) == 1
    assert {"setup", "pytest", "tensorboard", "convert"} <= set(done)
    # What a span-corruption model prints, as the README explains: a plain
    # prompt gets sentinels only; a prompt with <extra_id_0> gets
    # `<extra_id_0>` and then its guess for that span.
    plain, with_sentinel = generated
    assert re.fullmatch(r"(<extra_id_\d+>\s*)+", plain), plain
    assert with_sentinel.startswith("<extra_id_0>"), with_sentinel
    shown = _shown_block("README.md", 'kllm generate runs/t5_tiny "The for')
    assert re.fullmatch(r"(<extra_id_\d+>\s*)+", shown.splitlines()[0])


def _check_quick_start(output):
    """The README's trimmed transcript against the real one: each shown
    line is printed, numbers aside; the losses within 0.15."""
    shown = _shown_block("README.md", "kllm train zoo/t5_tiny.yaml\n")
    lines = output.splitlines()
    masked = {_NUMBER.sub("#", line) for line in lines}
    for line in shown.splitlines():
        if line == "..." or "ETA" in line or "s/step" in line:
            continue  # timings vary with the machine and its load
        assert _NUMBER.sub("#", line) in masked, line
    last = [float(x) for x in re.findall(r"loss (\d+\.\d+)", lines[-1])]
    expected = [
        float(x) for x in re.findall(r"loss (\d+\.\d+)", shown.splitlines()[-1])
    ]
    assert len(last) == len(expected) == 2
    assert max(abs(a - b) for a, b in zip(last, expected)) < 0.15, last


@pytest.mark.large
def test_training_md_commands_run(tmp_path):
    outputs = []
    done = run_document(
        "docs/training.md",
        _make_scratch(tmp_path / "scratch"),
        tmp_path,
        on_kllm=lambda command, result: outputs.append(result.output),
    )
    assert set(done) == {"kllm", "synopsis", "multi_worker"}
    start, resume = outputs  # the same command twice: it resumes
    assert "Starting at step 0 of 20." in start
    assert "Resumed from " in resume and "(step 20 of 20)" in resume


@pytest.mark.large
def test_tasks_md_recipes_run_and_baselines_are_the_pages(tmp_path):
    """The recipes, shortened; then the page's Python baselines, whose
    figures do not depend on training and must be the tables'."""
    scratch = _make_scratch(tmp_path / "scratch")
    evaluated = []

    def on_kllm(command, result):
        if command.argv[1] == "evaluate":
            evaluated.append(result.stdout)

    done = run_document("docs/tasks.md", scratch, tmp_path, on_kllm)
    assert set(done) == {"setup", "kllm"}
    assert len(evaluated) == 6
    printed = []
    for block in fenced_blocks("docs/tasks.md", "python"):
        result = _python(block, scratch)
        assert result.returncode == 0, result.stderr[-3000:]
        printed.append(result.stdout.strip().splitlines()[-1])
    copy, majority, unigram = printed
    page = (ROOT / "docs/tasks.md").read_text()
    assert copy == "copy the input: 0.3 17.9"
    assert "| copy the input | | | 0.3 | 17.9 |" in page
    assert majority.startswith("majority class: 77.2 ")
    assert "| always `old` | | 77.2 | 43.6 |" in page
    assert unigram == "unigram perplexity 166.0 over 1963 tokens"
    assert "| unigram (token frequencies) | | 166.0 |" in page
    assert "1,963 tokens here" in page
