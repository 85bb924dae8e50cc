"""The `kllm` CLI: exit codes and messages, with the library calls patched."""

import inspect
import os
import pathlib
import subprocess
import sys
import types
from unittest import mock

import click
import pytest
from click.testing import CliRunner

import keras_llm
from keras_llm import config
from keras_llm.cli import options
from keras_llm.cli.main import cli

ZOO = pathlib.Path(__file__).parents[1] / "zoo"


@pytest.fixture
def models(monkeypatch):
    """A stand-in for `keras_llm.models`, so no model is built.

    Both `sys.modules` and the package attribute are patched: either may be
    what `from keras_llm import models` finds, depending on whether the real
    module was imported earlier in the session.
    """
    fake = types.ModuleType("keras_llm.models")
    fake.count_parameters = mock.Mock(return_value=60_506_624)
    fake.summarize = mock.Mock(return_value="Model: T5Backbone\nTotal: 1\n")
    monkeypatch.setitem(sys.modules, "keras_llm.models", fake)
    monkeypatch.setitem(keras_llm.__dict__, "models", fake)
    return fake


def test_real_models_module_has_what_the_cli_calls():
    # Keeps the stand-in above honest; importing builds no model. Runs first,
    # so the tests below also cover a session where the real module is loaded.
    from keras_llm import models as real

    for name in ("count_parameters", "summarize"):
        parameters = inspect.signature(getattr(real, name)).parameters
        assert list(parameters)[:1] == ["model_config"], name


def _invoke(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def _bad_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  arch: t5\n  vocabulary_size: 8\n  num_head: 8\n")
    return path


def test_version():
    result = _invoke("--version")
    assert result.exit_code == 0
    assert keras_llm.__version__ in result.output


def test_help_lists_the_commands():
    result = _invoke("--help")
    assert result.exit_code == 0
    assert "validate" in result.output and "zoo" in result.output


def test_validate_ok():
    path = ZOO / "t5_tiny.yaml"
    result = _invoke("validate", path, "--set", "train.train_steps=2")
    assert result.exit_code == 0, result.output
    first, memory = result.output.splitlines()
    assert first == f"OK: {path} (arch=t5, objective=span_corruption)"
    assert memory.startswith("Memory estimate: ")


@pytest.mark.parametrize(
    "name, arch, objective",
    [
        ("t5_small", "t5", "span_corruption"),
        ("gpt2_tiny", "gpt2", "causal_lm"),
        ("bert_tiny", "bert", "masked_lm"),
        ("transformer_tiny", "transformer", "seq2seq"),
    ],
)
def test_validate_a_zoo_name(tmp_path, monkeypatch, name, arch, objective):
    monkeypatch.chdir(tmp_path)  # the zoo is package data: any folder works
    result = _invoke("validate", name)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first == f"OK: {name} (arch={arch}, objective={objective})"


def test_validate_refuses_what_train_would(tmp_path):
    result = _invoke("validate", "t5_tiny", "--set", "data.objective=causal_lm")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --set: data.objective: 'causal_lm' does not fit arch 't5' "
        "(it needs one of ['gpt2', 'llama']; arch 't5' takes auto, "
        "span_corruption, seq2seq)\n"
    )


@pytest.mark.parametrize("command", ["validate", "train"])
def test_missing_config_is_one_line_exit_1(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    result = _invoke(command, "missing.yaml")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: missing.yaml: no such file (in {tmp_path}); a zoo name "
        "also works: bert_base, "
    )
    assert len(result.stderr.splitlines()) == 1
    result = _invoke(command, "t5_huge")
    assert result.exit_code == 1
    assert "no config named 't5_huge' in the zoo. Available: " in (
        result.stderr
    )
    assert not (tmp_path / "runs").exists()


def test_train_a_zoo_name_into_runs_name(tmp_path, monkeypatch):
    # The training itself is patched (`keras_llm.train`, the entry point):
    # this checks the argument and the run dir.
    from keras_llm.training import TrainResult

    result = TrainResult("runs/t5_tiny", 2, 1.5, None)
    train = mock.Mock(return_value=result)
    monkeypatch.setitem(keras_llm.__dict__, "train", train)
    monkeypatch.chdir(tmp_path)
    result = _invoke("train", "t5_tiny", "--set", "train.train_steps=2")
    assert result.exit_code == 0, result.output
    (cfg, run_dir), _ = train.call_args
    assert run_dir == "runs/t5_tiny"
    assert cfg == config.load_config("t5_tiny", ["train.train_steps=2"])
    assert "Run directory: runs/t5_tiny" in result.stderr


@pytest.mark.parametrize(
    "path, run_dir",
    [
        ("t5_tiny", "runs/t5_tiny"),
        ("zoo/t5_tiny.yaml", "runs/t5_tiny"),
        ("t5_v1_1_small", "runs/t5_v1_1_small"),
    ],
)
def test_default_run_dir(path, run_dir):
    assert options.default_run_dir(path) == run_dir


def test_validate_bad_config_exits_1_with_file_key_and_hint(tmp_path):
    path = _bad_config(tmp_path)
    result = _invoke("validate", path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {path}: model.num_head: unknown key "
        "(did you mean 'num_heads'?). Received: 8\n"
    )
    assert "Traceback" not in result.output


def test_validate_reports_every_problem_one_per_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  arch: t5\n  layer_norm_epsilon: 1e-6\n")
    result = _invoke("validate", path, "--set", "train.sed=1")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "Error: --set: train.sed: unknown key (did you mean 'seed'?). "
        "Received: 1"
    )
    assert lines[1] == f"{path}: model.vocabulary_size: required key is missing"
    assert "write 1.0e-6" in lines[2]


def test_debug_reraises_the_library_error(tmp_path):
    result = _invoke("validate", _bad_config(tmp_path), "--debug")
    assert result.exit_code == 1
    assert isinstance(result.exception, config.ConfigError)


@pytest.mark.parametrize(
    "args, message",
    [
        (["validate", ZOO / "t5_tiny.yaml", "--set", "model.dropout"],
         "Invalid value for '--set': expected SECTION.KEY=VALUE"),
        (["validate", ZOO / "t5_tiny.yaml", "--frobnicate"],
         "No such option"),
        (["validate"], "Missing argument 'CONFIG_PATH'"),
        (["zoo", "show"], "Missing argument 'NAME_OR_PATH'"),
    ],
)  # fmt: skip
def test_bad_usage_exits_2(args, message):
    result = _invoke(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_zoo_list_shows_name_arch_and_count(models):
    result = _invoke("zoo", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "ARCH", "PARAMETERS"]
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == config.zoo_names()
    assert ["t5_small", "t5", "60,506,624"] in rows
    assert ["t5_base", "t5", "222,903,552"] in rows  # from the cache
    models.count_parameters.assert_not_called()


def test_zoo_list_builds_what_the_cache_lacks(models, monkeypatch):
    from keras_llm.config import parameters

    cache = parameters.read_cache()
    cache["t5_tiny"]["model"]["num_layers"] += 1  # as if the file changed
    del cache["gpt2_tiny"]  # as if the file were new
    monkeypatch.setattr(parameters, "read_cache", lambda: cache)
    result = _invoke("zoo", "list")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()[1:]]
    assert ["t5_tiny", "t5", "60,506,624"] in rows  # the stand-in's count
    assert ["t5_base", "t5", "222,903,552"] in rows
    built = [call.args[0] for call in models.count_parameters.mock_calls]
    assert [type(c) for c in built] == [config.GPT2Config, config.T5Config]
    assert [c.hidden_dim for c in built] == [64, 64]


def test_zoo_list_does_not_import_tensorflow():
    # conftest.py imports TensorFlow, so check in a fresh interpreter.
    code = (
        "import sys; from keras_llm.cli.main import cli; "
        "cli(['zoo', 'list'], standalone_mode=False); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
        "assert 'keras' not in sys.modules, 'keras imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "t5_base" in result.stdout and "222,903,552" in result.stdout


def test_zoo_show_prints_config_and_summary(models):
    result = _invoke("zoo", "show", "t5_tiny", "--set", "model.num_layers=1")
    assert result.exit_code == 0, result.output
    assert "arch: t5\n" in result.output
    assert "vocabulary_size: 256\n" in result.output
    assert "num_layers: 1\n" in result.output
    assert result.output.endswith("Model: T5Backbone\nTotal: 1\n")
    (model_config,) = models.summarize.call_args.args
    assert model_config.num_layers == 1 and model_config.hidden_dim == 64


def test_zoo_show_accepts_a_path(models):
    result = _invoke("zoo", "show", ZOO / "t5_small.yaml")
    assert result.exit_code == 0, result.output
    assert "hidden_dim: 512\n" in result.output


def test_zoo_show_unknown_name_lists_available(models):
    result = _invoke("zoo", "show", "t5_huge")
    assert result.exit_code == 1
    assert "no config named 't5_huge'" in result.stderr
    assert "t5_base, t5_small, t5_tiny" in result.stderr
    models.summarize.assert_not_called()


def test_zoo_show_bad_override_builds_nothing(models):
    result = _invoke("zoo", "show", "t5_tiny", "--set", "model.num_head=2")
    assert result.exit_code == 1
    assert "--set: model.num_head: unknown key" in result.stderr
    models.summarize.assert_not_called()


@pytest.mark.parametrize(
    "error", [ValueError("bad"), FileNotFoundError("x"), FileExistsError("x")]
)
def test_library_errors_become_click_exceptions(error):
    with pytest.raises(click.ClickException, match=str(error)):
        with options.library_errors(debug=False):
            raise error
    with pytest.raises(type(error)):
        with options.library_errors(debug=True):
            raise error


def test_validate_and_help_do_not_import_tensorflow():
    # conftest.py imports TensorFlow, so check in a fresh interpreter.
    code = (
        "import sys; from keras_llm.cli.main import cli; "
        f"cli(['validate', {str(ZOO / 't5_small.yaml')!r}], "
        "standalone_mode=False); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ")


# --- TensorFlow's log lines stay off stderr (kllm --verbose shows them) ----

TF_NOISE = ("I0000", "W0000", "E0000", "oneDNN", "cuInit", "absl::")


def _without_log_level():
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # conftest.py sets it
    return env


def test_commands_print_no_tensorflow_log_lines():
    # zoo show imports TensorFlow and builds a model: the chatter of a
    # fresh process, in which kllm hides it.
    result = subprocess.run(
        [sys.executable, "-m", "keras_llm.cli", "zoo", "show", "t5_tiny"],
        capture_output=True,
        text=True,
        env=_without_log_level(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Total params" in result.stdout
    noise = [
        line
        for line in result.stderr.splitlines()
        if any(word in line for word in TF_NOISE)
    ]
    assert noise == [], result.stderr


@pytest.mark.parametrize(
    "args, level",
    [([], "3"), (["--verbose"], "None")],
    ids=["quiet", "verbose"],
)
def test_verbose_leaves_tensorflow_logging_alone(args, level):
    code = (
        "import os, sys; from keras_llm.cli.main import cli; "
        f"cli({args!r} + ['validate', 't5_tiny'], standalone_mode=False); "
        "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL')); "
        "print(any(type(f).__name__ == '_QuietImport' for f in sys.meta_path))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_without_log_level(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [level, str(level == "3")]


def test_a_log_level_the_user_set_is_kept():
    env = {**_without_log_level(), "TF_CPP_MIN_LOG_LEVEL": "0"}
    code = (
        "import os; from keras_llm.cli.main import cli; "
        "cli(['validate', 't5_tiny'], standalone_mode=False); "
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0"


def test_only_absl_log_lines_are_filtered():
    from keras_llm.cli import quiet

    kept = (
        b"/x.py:3: UserWarning: something the user should see\n"
        b"  warnings.warn(\n"
        b"F0000 00:00:1796084081.821421   24557 x.cc:1] fatal stays\n"
    )
    noise = (
        b"WARNING: All log messages before absl::InitializeLog() is called "
        b"are written to STDERR\n"
        b"I0000 00:00:1796084081.821421   24557 port.cc:153] oneDNN custom "
        b"operations are on.\n"
        b"E0000 00:00:1796084083.950577   24557 cuda_platform.cc:52] failed "
        b"call to cuInit: INTERNAL\n"
        b"W0521 12:34:56.789012    1234 some_file.cc:99] later warning\n"
    )
    assert quiet.filter_noise(noise + kept) == kept
