"""`kllm`: train, export and sample transformer language models.

Each command parses, makes one `keras_llm` call and echoes the result. Heavy
modules (TensorFlow, Keras) are imported inside the commands that need them,
so `kllm --help` and `kllm validate` stay fast.
"""

import os
import sys

import click

from keras_llm.cli import average as average_commands
from keras_llm.cli import convert as convert_commands
from keras_llm.cli import data as data_commands
from keras_llm.cli import evaluate as evaluate_commands
from keras_llm.cli import examples
from keras_llm.cli import export as export_commands
from keras_llm.cli import generate as generate_commands
from keras_llm.cli import options
from keras_llm.cli import quiet
from keras_llm.cli import tokenizer as tokenizer_commands


@click.group()
@click.version_option(package_name="keras_llm")
@click.option(
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's own log lines (CUDA probes, oneDNN notices), "
    "hidden by default unless TF_CPP_MIN_LOG_LEVEL is set.",
)
def cli(verbose: bool) -> None:
    """keras_llm: train, export and sample transformer language models."""
    # TensorFlow's C++ start-up chatter hides our output; TensorFlow is
    # imported later, inside the commands that need it.
    if not verbose:
        quiet.quiet_tensorflow()


@cli.command(
    epilog=examples.examples(
        "kllm validate t5_small",
        "kllm validate zoo/gpt2_tiny.yaml --set train.learning_rate=3.0e-4",
        "kllm validate t5_tiny --set data.source=files \\",
        "    --set data.train_files='data/*.txt'",
    )
)
@click.argument("config_path")
@options.SET
@options.DEBUG
def validate(config_path: str, set_: tuple[str, ...], debug: bool) -> None:
    """Check CONFIG_PATH (a YAML file, or a zoo name such as t5_small)
    without building anything: every problem in one list, then the
    estimated memory of a training step.

    Every key, its default and the values it takes: docs/config.md."""
    from keras_llm import config

    with options.library_errors(debug):
        cfg = config.load_config(config_path, overrides=set_)
    arch, objective = config.arch_of(cfg.model), config.objective_of(cfg)
    click.echo(f"OK: {config_path} (arch={arch}, objective={objective})")
    from keras_llm.config import memory
    from keras_llm.config import parameters

    model = config.to_dict(cfg)["model"]
    counts = [
        entry["parameters"]
        for entry in parameters.read_cache().values()
        if entry.get("model") == model
    ]
    click.echo(memory.summary(cfg, counts[0] if counts else None))


@cli.command(
    epilog=examples.examples(
        "kllm train t5_tiny                  # writes runs/t5_tiny",
        "kllm train zoo/t5_small.yaml --run-dir runs/t5s "
        "--set train.train_steps=30",
        "kllm train runs/t5s/config.yaml     # resumes that run",
    )
)
@click.argument("config_path")
@options.SET
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    help="Where the run goes. Default: runs/<config name>, or the "
    "config's own folder for RUN_DIR/config.yaml (resumes it).",
)
@options.DEBUG
def train(
    config_path: str, set_: tuple[str, ...], run_dir: str | None, debug: bool
) -> None:
    """Train the model of CONFIG_PATH (a YAML file, or a zoo name such as
    t5_tiny); resumes by itself when the run dir already holds
    checkpoints. Ctrl-C saves a checkpoint, then stops.

    Every key, its default and the values it takes: docs/config.md; check
    a config first with `kllm validate`."""
    from keras_llm import config

    with options.library_errors(debug):
        cfg = config.load_config(config_path, overrides=set_)
        run_dir = run_dir or options.default_run_dir(config_path)
        click.echo(f"Run directory: {run_dir}", err=True)
        options.show_library_logs()
        import keras_llm
        from keras_llm import training

        try:
            result = keras_llm.train(cfg, run_dir, progress=True)
        except training.OutOfMemoryError as error:
            if debug:
                raise
            # TensorFlow can crash while it tears down after an OOM: say
            # the one line, then leave without running its destructors.
            click.echo(f"Error: {error}", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
    if result.interrupted:  # the checkpoint and the resume line are logged
        raise SystemExit(130 if result.interrupted == "SIGINT" else 143)
    click.echo(options.describe_result(result))


@cli.group()
def zoo() -> None:
    """The model zoo: ready-made configs, one per model size."""


@zoo.command(
    "list",
    epilog=examples.examples(
        "kllm zoo list",
        "kllm zoo show t5_small             # one of them in full",
    ),
)
@options.DEBUG
def zoo_list(debug: bool) -> None:
    """List the zoo configs with their architecture and parameter count."""
    from keras_llm import config
    from keras_llm.config import parameters

    rows = [("NAME", "ARCH", "PARAMETERS")]
    with options.library_errors(debug):
        cached = parameters.parameter_counts()  # no TensorFlow
        for name in config.zoo_names():
            model = config.load_config(config.zoo_path(name)).model
            count = cached.get(name)
            if count is None:  # the file changed since the cache was written
                from keras_llm import models  # imports TensorFlow

                count = models.count_parameters(model)
            rows.append((name, config.arch_of(model), f"{count:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for name, arch, count in rows:
        click.echo(
            f"{name:<{widths[0]}}  {arch:<{widths[1]}}  {count:>{widths[2]}}"
        )


@zoo.command(
    "show",
    epilog=examples.examples(
        "kllm zoo show t5_tiny",
        "kllm zoo show gpt2_small --set model.num_layers=6",
    ),
)
@click.argument("name_or_path")
@options.SET
@options.DEBUG
def zoo_show(name_or_path: str, set_: tuple[str, ...], debug: bool) -> None:
    """Show a zoo config and its model (NAME_OR_PATH: t5_small or a YAML)."""
    from keras_llm import config

    with options.library_errors(debug):
        path = config.resolve(name_or_path)
        cfg = config.load_config(path, overrides=set_)
        from keras_llm import models  # TensorFlow: only for a valid config

        summary = models.summarize(cfg.model)
    click.echo(f"# {path}\n{config.to_yaml(cfg)}")
    click.echo(summary.rstrip("\n"))


cli.add_command(tokenizer_commands.tokenizer)
cli.add_command(convert_commands.convert)
cli.add_command(export_commands.export)
cli.add_command(generate_commands.generate)
cli.add_command(evaluate_commands.evaluate)
cli.add_command(average_commands.average)
cli.add_command(data_commands.data)
