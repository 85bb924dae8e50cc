"""Every command's --help ends with examples, and the examples work: each
parses (options, types, ranges), its config and decoding options are
valid, and the cheap ones run."""

import os
import pathlib
import shlex

import click
import pytest
from click.testing import CliRunner

from keras_llm import config
from keras_llm.cli import options
from keras_llm.cli.main import cli

REPO = pathlib.Path(__file__).parents[1]
# kllm export's help is cli/export.py's, tested with it.
COMMANDS = [
    ("train",),
    ("validate",),
    ("zoo", "list"),
    ("zoo", "show"),
    ("generate",),
    ("tokenizer", "train"),
    ("convert", "hf"),
]
# Cheap enough to run for real (no training, at most a tiny model built).
RUN_FOR_REAL = {"validate", "zoo list", "kllm zoo show t5_tiny"}


def _help(path):
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def _examples(help_text):
    """The `kllm ...` lines after `Examples:`, continuation lines (`\\`)
    joined, each as an argv without `kllm` and comments."""
    text = help_text.split("Examples:", 1)[1].replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)[1:]
        for line in text.splitlines()
        if line.strip().startswith("kllm ")
    ]


EXAMPLES = [
    pytest.param(argv, id=shlex.join(argv))
    for path in COMMANDS
    for argv in _examples(_help(path))
]


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_ends_with_examples(path):
    text = _help(path)
    assert "Examples:" in text.split("Options:", 1)[1], "not after Options"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[-1].startswith(("kllm ", "--")), lines[-1]
    commands = [line for line in lines if line.startswith("kllm ")]
    assert 2 <= len(commands) <= 3, commands
    # At least one example is of the command itself.
    assert any(argv[: len(path)] == list(path) for argv in _examples(text))


@pytest.mark.parametrize("path", [("train",), ("validate",)], ids=" ".join)
def test_config_commands_point_to_the_key_reference(path):
    assert "docs/config.md" in _help(path)
    assert (REPO / "docs" / "config.md").is_file()


def _parse(argv):
    """The leaf command's name and its parsed parameters, as Click would
    pass them (types, ranges, required arguments), without running it."""
    command, depth = cli, 0
    while isinstance(command, click.Group):
        command = command.commands[argv[depth]]
        depth += 1
    name = " ".join(argv[:depth])
    with command.make_context(name, list(argv[depth:])) as ctx:
        return name, ctx.params


@pytest.mark.parametrize("argv", EXAMPLES)
def test_example_option_names_exist(argv):
    result = CliRunner().invoke(cli, [*argv, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("argv", EXAMPLES)
def test_example_parses_with_valid_values(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # zoo/*.yaml paths
    if "--file" in argv:  # prompts files must exist: made up here
        monkeypatch.chdir(tmp_path)
        (tmp_path / argv[argv.index("--file") + 1]).write_text("a prompt\n")
    name, params = _parse(argv)
    path = params.get("config_path") or params.get("name_or_path")
    if path and not path.startswith("runs" + os.sep):  # not a run's yet
        config.load_config(path, overrides=params["set_"])
    if name == "generate":
        options.generation_config(params)


def _cheap(argv):
    line = shlex.join(["kllm", *argv])
    return bool({argv[0], " ".join(argv[:2]), line} & RUN_FOR_REAL)


@pytest.mark.parametrize(
    "argv", [case for case in EXAMPLES if _cheap(case.values[0])]
)
def test_cheap_examples_run(argv, monkeypatch):
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
