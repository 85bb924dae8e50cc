"""`kllm export`: layout, TF Serving-style loading in a fresh process that
never imports keras_llm, op allowlist, bad input, and errors."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import keras_llm
from keras_llm import rundir
from keras_llm import serving
from keras_llm.cli.main import cli
from keras_llm.data import tokenizer as tokenizer_lib
from keras_llm.generation import GenerationConfig

SERVING = os.path.join(os.path.dirname(__file__), "serving")
PROMPTS = ["The for loop", "Python", "a", "while True: pass and more words"]
NEW_TOKENS = 6


def run_client(script, *args):
    """A fresh process with only tensorflow + tensorflow_text imported."""
    result = subprocess.run(
        [sys.executable, os.path.join(SERVING, script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "keras_llm" not in result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def session_run(export_dir, requests, tmp_path):
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(requests))
    return run_client("session_client.py", export_dir, str(path))


@pytest.fixture(scope="module")
def t5_export(tmp_path_factory, tiny_run_dir):
    base = tmp_path_factory.mktemp("t5")
    run_dir = tiny_run_dir("t5_tiny")
    out = str(base / "models")
    result = CliRunner().invoke(
        cli,
        [
            "export",
            run_dir,
            "--out",
            out,
            "--name",
            "t5",
            "--max-new-tokens",
            str(NEW_TOKENS),
        ],
    )
    assert result.exit_code == 0, result.output
    # The last line is the one command that serves OUT.
    assert result.stdout.splitlines()[-1] == "  " + serving.serve_command(out)
    return run_dir, out, os.path.join(out, "t5", "1")


def library_outputs(run_dir, texts, jit_compile=False):
    return keras_llm.load(run_dir).generate(
        texts, max_new_tokens=NEW_TOKENS, jit_compile=jit_compile
    )


@pytest.mark.large
def test_layout_metadata_and_models_config(t5_export):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    _, out, export_dir = t5_export
    assert sorted(os.listdir(os.path.join(out, "t5"))) == ["1"]  # no temp
    for name in ("saved_model.pb", "variables", "assets.extra"):
        assert os.path.exists(os.path.join(export_dir, name))
    with open(
        os.path.join(export_dir, "assets.extra", "keras_llm_export.json")
    ) as f:
        metadata = json.load(f)
    assert metadata["generation"]["max_new_tokens"] == NEW_TOKENS
    assert metadata["xla"] is False
    assert metadata["tensorflow_version"] == tf.__version__
    assert metadata["serving_image"] == f"tensorflow/serving:{tf.__version__}"
    config = model_server_config_pb2.ModelServerConfig()
    with open(os.path.join(out, "models.config")) as f:
        text_format.Parse(f.read(), config)
    (entry,) = config.model_config_list.config
    assert entry.name == "t5" and entry.model_platform == "tensorflow"
    # The path inside the container of `serve_command`, which mounts OUT
    # at /models.
    assert entry.base_path == "/models/t5"


def test_serve_command_mounts_out_at_models():
    import shlex

    image = f"tensorflow/serving:{tf.__version__}"
    for out, volume in [
        ("models", '"$PWD/models:/models"'),
        ("./models/", '"$PWD/models:/models"'),
        (".", '"$PWD:/models"'),
        ("../up", '"$PWD/../up:/models"'),
        ("/srv/models", "/srv/models:/models"),
        ("/srv/it's here", "'/srv/it'\"'\"'s here:/models'"),
        ("my models", shlex.quote(os.path.abspath("my models") + ":/models")),
    ]:
        command = serving.serve_command(out)
        assert command == (
            f"docker run --rm -p 8500:8500 -p 8501:8501 -v {volume} {image} "
            "--model_config_file=/models/models.config"
        ), out
        # The shell reads the host path back whole.
        (mount,) = [w for w in shlex.split(command) if w.endswith(":/models")]
        host = mount.removesuffix(":/models")
        if not host.startswith("$PWD"):
            assert host == os.path.abspath(out)


@pytest.mark.large
def test_c_api_serving_equals_kllm_generate(t5_export):
    run_dir, _, export_dir = t5_export
    served = run_client(
        "c_api_client.py",
        export_dir,
        "serving_default",
        json.dumps({"inputs": PROMPTS}),
    )["outputs"]
    expected = library_outputs(run_dir, PROMPTS, jit_compile=True)
    assert served == expected
    assert all(served), served  # real text came back
    result = CliRunner().invoke(
        cli,
        ["generate", run_dir, *PROMPTS, "--max-new-tokens", str(NEW_TOKENS)],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-len(PROMPTS) :] == served


@pytest.mark.large
def test_session_loader_signatures_and_op_allowlist(t5_export, tmp_path):
    run_dir, _, export_dir = t5_export
    model = keras_llm.load(run_dir)
    tokenizer = tokenizer_lib.load_tokenizer(os.path.join(run_dir, "tokenizer"))
    ids = [[5, 6, 7, tokenizer.eos_id], [8, tokenizer.eos_id, 0, 0]]
    mask = [[1, 1, 1, 1], [1, 1, 0, 0]]
    reply = session_run(
        export_dir,
        [
            {"signature": "serving_default", "inputs": {"inputs": PROMPTS}},
            {
                "signature": "generate_ids",
                "inputs": {"token_ids": ids, "padding_mask": mask},
            },
            {
                "signature": "score",
                "inputs": {
                    "inputs": ["The for loop"],
                    "targets": ["statement"],
                },
            },
        ],
        tmp_path,
    )
    served, generated, scored = reply["results"]
    assert served["outputs"] == library_outputs(run_dir, PROMPTS)
    from keras_llm.generation import generate_ids

    expected_ids = generate_ids(
        model,
        [row[: sum(m)] for row, m in zip(ids, mask)],
        GenerationConfig(max_new_tokens=NEW_TOKENS),
        eos_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id,
        jit_compile=False,
    )
    np.testing.assert_array_equal(generated["token_ids"], expected_ids)
    # score == log p(target | input) computed from the Keras model.
    source = list(tokenizer.tokenize(tf.constant(["The for loop"]))[0].numpy())
    target = list(tokenizer.tokenize(tf.constant(["statement"]))[0].numpy())
    source, target = source + [tokenizer.eos_id], target + [tokenizer.eos_id]
    logits = model(
        {
            "encoder_token_ids": np.array([source]),
            "encoder_padding_mask": np.ones((1, len(source)), "int32"),
            "decoder_token_ids": np.array([[tokenizer.pad_id] + target[:-1]]),
            "decoder_padding_mask": np.ones((1, len(target)), "int32"),
        }
    )
    log_probs = tf.nn.log_softmax(logits[0]).numpy()
    expected = sum(log_probs[i, t] for i, t in enumerate(target))
    np.testing.assert_allclose(scored["log_likelihood"], [expected], rtol=1e-4)
    assert scored["num_tokens"] == [len(target)]
    # The Python API scores through the same input format.
    np.testing.assert_allclose(
        model.score(["The for loop"], ["statement"]), [expected], rtol=1e-4
    )
    # Only core TF and TF Text ops; no XLA cluster, no Python.
    ops = set(reply["ops"])
    allowed = set(reply["core_ops"]) | set(reply["text_ops"])
    assert ops <= allowed, ops - allowed
    assert ops & set(reply["text_ops"])  # the tokenizer is in the graph
    assert not [op for op in ops if op.startswith("Xla") or "PyFunc" in op]
    assert reply["xla_functions"] == []
    assert {"serving_default", "generate_ids", "score"} <= set(
        reply["signatures"]
    )


@pytest.mark.large
def test_every_warmup_record_parses_and_runs(t5_export, tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    _, _, export_dir = t5_export
    path = os.path.join(
        export_dir, "assets.extra", "tf_serving_warmup_requests"
    )
    requests = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        assert request.model_spec.name == "t5"
        texts = tf.make_ndarray(request.inputs["inputs"])
        requests.append(
            {
                "signature": request.model_spec.signature_name,
                "inputs": {"inputs": [t.decode() for t in texts]},
            }
        )
    assert len(requests) >= 2
    results = session_run(export_dir, requests, tmp_path)["results"]
    for request, result in zip(requests, results):
        assert len(result["outputs"]) == len(request["inputs"]["inputs"])


@pytest.mark.large
def test_served_model_survives_bad_input(t5_export):
    _, _, export_dir = t5_export
    bad = ["", "x" * 10_000, "\udcff\udcfe not utf-8 \udcc3"]
    batch = bad + [("word " * (i % 17)).strip() for i in range(61)]
    outputs = run_client(
        "c_api_client.py",
        export_dir,
        "serving_default",
        json.dumps({"inputs": batch}),
    )["outputs"]
    assert len(outputs) == 64
    assert outputs[3 + 1] == outputs[3 + 18]  # same prompt, same output


@pytest.mark.large
def test_gpt2_export_serves(tiny_run_dir, tmp_path):
    run_dir = tiny_run_dir("gpt2_tiny")
    result = CliRunner().invoke(
        cli,
        [
            "export",
            run_dir,
            "--out",
            str(tmp_path / "models"),
            "--name",
            "gpt2",
            "--max-new-tokens",
            str(NEW_TOKENS),
        ],
    )
    assert result.exit_code == 0, result.output
    export_dir = str(tmp_path / "models" / "gpt2" / "1")
    served = run_client(
        "c_api_client.py",
        export_dir,
        "serving_default",
        json.dumps({"inputs": PROMPTS + [""]}),
    )["outputs"]
    assert served[: len(PROMPTS)] == library_outputs(run_dir, PROMPTS)
    assert len(served) == len(PROMPTS) + 1


@pytest.mark.large
def test_llama_export_serves_strings(tiny_run_dir, tmp_path):
    """Grouped-query attention, rotary positions and the KV cache of the
    key/value heads, served from strings by the TF1 session loader."""
    run_dir = tiny_run_dir("llama_tiny")
    out = str(tmp_path / "models")
    result = CliRunner().invoke(
        cli,
        ["export", run_dir, "--out", out, "--name", "llama",
         "--max-new-tokens", str(NEW_TOKENS)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    reply = session_run(
        os.path.join(out, "llama", "1"),
        [{"signature": "serving_default", "inputs": {"inputs": PROMPTS}}],
        tmp_path,
    )
    (served,) = reply["results"]
    assert served["outputs"] == library_outputs(run_dir, PROMPTS)
    assert len(set(served["outputs"])) > 1  # not one text for every prompt
    ops = set(reply["ops"])
    assert ops <= set(reply["core_ops"]) | set(reply["text_ops"])
    assert reply["xla_functions"] == []


@pytest.mark.large
def test_bert_export_fills_masks_and_encodes(tiny_run_dir, tmp_path):
    run_dir = tiny_run_dir("bert_tiny")
    result = CliRunner().invoke(
        cli,
        ["export", run_dir, "--out", str(tmp_path / "models"), "--name", "b"],
    )
    assert result.exit_code == 0, result.output
    export_dir = str(tmp_path / "models" / "b" / "1")
    texts = ["the [MASK] statement", "a [MASK] b [MASK] c"]
    reply = session_run(
        export_dir,
        [
            {"signature": "serving_default", "inputs": {"inputs": texts}},
            {"signature": "encode", "inputs": {"inputs": texts}},
        ],
        tmp_path,
    )
    served, encoded = reply["results"]
    lm = keras_llm.load(run_dir)
    assert served["outputs"] == [r["output"] for r in lm.fill_mask(texts)]
    lengths = [len(ids) for ids in lm.make_format().prompt_ids(texts)]
    assert [sum(row) for row in encoded["padding_mask"]] == lengths
    hidden = np.array(encoded["sequence_output"])
    assert hidden.shape == (2, max(lengths), lm.backbone.hidden_dim)
    assert np.array(encoded["pooled_output"]).shape == (2, hidden.shape[2])


@pytest.mark.large
def test_export_errors_leave_nothing_half_written(t5_export, tmp_path):
    run_dir, out, export_dir = t5_export
    before = sorted(os.listdir(os.path.join(out, "t5")))
    stamp = os.path.getmtime(os.path.join(export_dir, "saved_model.pb"))
    runner = CliRunner()
    existing = runner.invoke(
        cli, ["export", run_dir, "--out", out, "--name", "t5", "--version", "1"]
    )
    assert existing.exit_code == 1
    assert "already exists: pass --overwrite" in existing.output
    missing = runner.invoke(
        cli, ["export", str(tmp_path / "nope"), "--out", out]
    )
    assert missing.exit_code == 1 and "Run directory not found" in (
        missing.output
    )
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = runner.invoke(
        cli, ["export", run_dir, "--out", str(blocker / "models")]
    )
    assert unwritable.exit_code == 1 and "Cannot write" in unwritable.output
    for result in (existing, missing, unwritable):
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert sorted(os.listdir(os.path.join(out, "t5"))) == before
    assert os.path.getmtime(os.path.join(export_dir, "saved_model.pb")) == stamp
    assert blocker.read_text() == "x"


def _dead_pid():
    """The pid of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


@pytest.mark.large
def test_leftovers_of_killed_exports_are_tidied(tiny_run_dir, tmp_path):
    # What `kill -9` during an export leaves beside the versions, made by
    # hand: a half-written .tmp, and the .old of an --overwrite killed
    # between its two renames (version 2 then exists only as .old).
    model_dir = tmp_path / "models" / "t5"
    dead, alive = _dead_pid(), os.getppid()
    for name in [
        f".tmp-1-{dead}",  # removed
        f".old-2-{dead}",  # restored as 2
        f".old-3-{dead}",  # 3 exists: removed
        "3",
        f".tmp-9-{alive}",  # a running export's: kept
    ]:
        (model_dir / name).mkdir(parents=True)
        (model_dir / name / "saved_model.pb").write_text(name)
    result = CliRunner().invoke(
        cli,
        [
            "export",
            tiny_run_dir("t5_tiny"),
            "--out",
            str(tmp_path / "models"),
            "--name",
            "t5",
            "--max-new-tokens",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(model_dir)) == [f".tmp-9-{alive}", "2", "3", "4"]
    assert (model_dir / "2" / "saved_model.pb").read_text() == f".old-2-{dead}"
    assert (model_dir / "3" / "saved_model.pb").read_text() == "3"
    assert f"Restored {model_dir / '2'}: an export with --overwrite" in (
        result.stderr
    )
    assert f"Removed {model_dir / f'.tmp-1-{dead}'}" in result.stderr


def test_export_checks_its_name_and_token_budget(tiny_run_dir, tmp_path):
    run_dir = tiny_run_dir("gpt2_tiny")
    out = tmp_path / "models"
    for kwargs, message in [
        (dict(name="../x"), "--name must be one folder name"),
        (dict(name="."), "Received: '.'"),
        (
            dict(config=GenerationConfig(max_new_tokens=129)),
            "Invalid --max-new-tokens: 129 leaves no position for the prompt",
        ),
    ]:
        with pytest.raises(ValueError, match=message.replace(".", "\\.")):
            keras_llm.export(run_dir, str(out), **kwargs)
    assert not out.exists()


def _sentinel_run_dir(run_dir, out):
    """A copy of a t5_tiny run dir whose greedy outputs are all sentinels:
    the decoder's last norm keeps one channel `j`, which only sentinels 0
    and 1 read (with opposite signs), so every step's argmax is one of
    them."""
    lm = keras_llm.load(run_dir)
    backbone, tokenizer = lm.backbone, lm.tokenizer
    scale = np.zeros(backbone.decoder_final_norm.scale.shape, "float32")
    scale[0] = 1.0
    backbone.decoder_final_norm.scale.assign(scale)
    embeddings = backbone.token_embedding.embeddings.numpy()
    embeddings[:, 0] = 0.0
    embeddings[tokenizer.sentinel_id(0), 0] = 1.0
    embeddings[tokenizer.sentinel_id(1), 0] = -1.0
    backbone.token_embedding.embeddings.assign(embeddings)
    shutil.copytree(run_dir, out, ignore=shutil.ignore_patterns("checkpoints"))
    rundir.save_model(lm, out)
    return str(out)


@pytest.mark.large
def test_keep_special_tokens_is_served_as_asked(tmp_path, tiny_run_dir):
    """`kllm export --keep-special-tokens`: the served strings keep T5's
    sentinels, as generate does when asked; by default they are dropped."""
    run_dir = _sentinel_run_dir(tiny_run_dir("t5_tiny"), tmp_path / "run")
    out = str(tmp_path / "models")
    for name, flags in (("raw", ["--keep-special-tokens"]), ("clean", [])):
        result = CliRunner().invoke(
            cli,
            ["export", run_dir, "--out", out, "--name", name,
             "--max-new-tokens", str(NEW_TOKENS), *flags],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    served = {}
    for name in ("raw", "clean"):
        export_dir = os.path.join(out, name, "1")
        with open(
            os.path.join(export_dir, "assets.extra", "keras_llm_export.json")
        ) as f:
            assert json.load(f)["keep_special_tokens"] is (name == "raw")
        outputs = tf.saved_model.load(export_dir).signatures["serving_default"](
            inputs=tf.constant(PROMPTS)
        )["outputs"]
        served[name] = [text.decode("utf-8") for text in outputs.numpy()]
    lm = keras_llm.load(run_dir)
    raw = lm.generate(
        PROMPTS, max_new_tokens=NEW_TOKENS, jit_compile=False,
        keep_special_tokens=True,
    )  # fmt: skip
    assert served["raw"] == raw
    assert all(text.count("<extra_id_") == NEW_TOKENS for text in raw), raw
    assert served["clean"] == [""] * len(PROMPTS)


# === kllm export --xla =======================================================


def test_xla_buckets_are_generate_ids_buckets():
    from keras_llm.generation import bucket_length
    from keras_llm.generation.compiled import bucket

    for length in (0, 1, 5, 16, 17, 32, 33, 100, 513):
        for limit in (None, 20, 64):
            assert int(bucket(length, 16, limit)) == bucket_length(
                length, limit
            ), (length, limit)
    assert [int(bucket(n, 1)) for n in (0, 1, 2, 3, 5, 8, 9)] == [
        1, 1, 2, 4, 8, 8, 16,
    ]  # fmt: skip


def test_xla_export_needs_a_decode_loop(tiny_run_dir, tmp_path):
    run_dir = tiny_run_dir("bert_tiny")
    with pytest.raises(ValueError, match="--xla compiles the decode loop"):
        keras_llm.export(run_dir, str(tmp_path / "models"), xla=True)
    assert not (tmp_path / "models").exists()


@pytest.fixture(scope="module")
def t5_xla_export(tmp_path_factory, tiny_run_dir):
    out = str(tmp_path_factory.mktemp("t5_xla") / "models")
    result = CliRunner().invoke(
        cli,
        ["export", tiny_run_dir("t5_tiny"), "--out", out, "--name", "t5",
         "--max-new-tokens", str(NEW_TOKENS), "--xla"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # The serve command asks TF Serving for XLA.
    last = result.stdout.splitlines()[-1]
    assert last == "  " + serving.serve_command(out, xla=True)
    assert last.endswith(" --xla_cpu_compilation_enabled=true")
    return os.path.join(out, "t5", "1")


@pytest.mark.large
def test_xla_export_serves_what_the_default_export_serves(
    t5_export, t5_xla_export, tmp_path
):
    """The --xla export, run by the TF1 session loader in a fresh process:
    its decode loop is one XLA-compiled function, the rest core TF + TF
    Text ops, and every signature answers as the default export does, for
    batches padded to other sizes (3 rows run as 4, 6 as 8) and prompts to
    another length bucket (21 ids run as 32)."""
    run_dir, _, default_dir = t5_export
    eos = tokenizer_lib.load_tokenizer(
        os.path.join(run_dir, "tokenizer")
    ).eos_id

    def request(signature, **inputs):
        return {"signature": signature, "inputs": inputs}

    requests = [
        request("serving_default", inputs=PROMPTS),
        request("serving_default", inputs=PROMPTS[:3]),
        request("serving_default", inputs=PROMPTS + PROMPTS[:2]),
        request(
            "generate_ids",
            token_ids=[[5, 6, 7, eos], [8, eos, 0, 0]],
            padding_mask=[[1, 1, 1, 1], [1, 1, 0, 0]],
        ),
        request(
            "generate_ids",
            token_ids=[list(range(5, 25)) + [eos]],
            padding_mask=[[1] * 21],
        ),
        request("score", inputs=["The for loop"], targets=["statement"]),
    ]
    compiled = session_run(t5_xla_export, requests, tmp_path)
    default = session_run(default_dir, requests, tmp_path)
    assert compiled["results"][:-1] == default["results"][:-1]
    np.testing.assert_allclose(
        compiled["results"][-1]["log_likelihood"],
        default["results"][-1]["log_likelihood"],
        rtol=1e-5,
    )
    assert all(compiled["results"][0]["outputs"])  # real text came back
    assert compiled["xla_functions"]  # the loop is compiled
    ops = set(compiled["ops"])
    assert ops <= set(compiled["core_ops"]) | set(compiled["text_ops"])
    assert not [op for op in ops if op.startswith("Xla") or "PyFunc" in op]
    with open(
        os.path.join(t5_xla_export, "assets.extra", "keras_llm_export.json")
    ) as f:
        metadata = json.load(f)
    assert metadata["xla"] is True
    assert metadata["server_flags"] == ["--xla_cpu_compilation_enabled=true"]
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(t5_xla_export, "assets.extra", serving.WARMUP_FILE)
    sizes = [
        len(
            prediction_log_pb2.PredictionLog.FromString(record)
            .predict_log.request.inputs["inputs"]
            .string_val
        )
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator()
    ]
    assert {1, 2, 4, 8} <= set(sizes)


@pytest.mark.large
def test_gpt2_xla_export_pads_prompts_on_the_left(tiny_run_dir, tmp_path):
    """Decoder-only prompts are left-padded: the --xla export (from Python)
    pads them further on the left, to the bucket, and serves what
    `generate` does."""
    run_dir = tiny_run_dir("gpt2_tiny")
    export_dir = keras_llm.export(
        run_dir,
        str(tmp_path / "models"),
        name="gpt2",
        config=GenerationConfig(max_new_tokens=NEW_TOKENS),
        xla=True,
    )
    reply = session_run(
        export_dir,
        [{"signature": "serving_default", "inputs": {"inputs": PROMPTS}}],
        tmp_path,
    )
    (served,) = reply["results"]
    assert served["outputs"] == library_outputs(run_dir, PROMPTS)
    assert reply["xla_functions"]
