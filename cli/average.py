"""`kllm average`: the mean model weights of a run's kept checkpoints."""

import click

from keras_llm.cli import examples
from keras_llm.cli import options


def _steps(ctx, param, value):
    if value is None:
        return None
    from keras_llm import averaging

    try:
        return averaging.parse_steps(value)
    except ValueError as error:
        message = str(error).removeprefix("--steps: ")
        raise click.BadParameter(message, ctx, param) from None


@click.command(
    epilog=examples.examples(
        "kllm average runs/en_es --last 5 --out runs/en_es_avg5",
        "kllm average runs/en_es --steps 8000,9000,10000 --out runs/avg \\",
        "    --overwrite",
        "kllm evaluate runs/en_es_avg5 --data test.tsv",
    )
)
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--last",
    type=click.IntRange(min=1),
    help="Average the N newest kept checkpoints.",
)
@click.option(
    "--steps",
    callback=_steps,
    help="Average the kept checkpoints of these steps, e.g. 800,900,1000.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The new run dir: config, tokenizer and one checkpoint.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing run dir at --out."
)
@options.DEBUG
def average(
    run_dir: str,
    last: int | None,
    steps: list[int] | None,
    out_dir: str,
    overwrite: bool,
    debug: bool,
) -> None:
    """Average the model weights of RUN_DIR's kept checkpoints (--last N
    or --steps a,b,c) into a new run dir, as OpenNMT-tf's
    average_checkpoints: model variables only, not the optimizer's. The
    new run dir loads, generates, evaluates and exports like any other."""
    with options.library_errors(debug):
        from keras_llm import averaging

        result = averaging.average_checkpoints(
            run_dir, out_dir, last=last, steps=steps, overwrite=overwrite
        )
    listed = ", ".join(map(str, result["steps"]))
    click.echo(
        f"Averaged the checkpoints of steps {listed} of {run_dir} into "
        f"{result['checkpoint']}"
    )
