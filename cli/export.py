"""`kllm export`: a run dir → a TF Serving SavedModel."""

import click

from keras_llm.cli import options


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(),
    help="Model base folder: the export goes to OUT/NAME/VERSION.",
)
@click.option(
    "--name",
    default=None,
    help="Model name (default: the run dir's folder name).",
)
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=0),
    default=None,
    help="Integer version (default: the highest existing + 1).",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing OUT/NAME/VERSION."
)
@options.generation_options
@options.DEBUG
def export(run_dir, out_dir, name, version, overwrite, debug, **decoding):
    """Export RUN_DIR for TF Serving: strings in, generated strings out.

    The decoding options are fixed into the served graph.
    """
    config = options.generation_config(decoding)
    with options.library_errors(debug):
        import keras_llm

        path = keras_llm.export(
            run_dir,
            out_dir,
            name=name,
            version=version,
            overwrite=overwrite,
            config=config,
        )
    click.echo(f"Exported to {path}")
    click.echo(
        f"Serve: docker run -p 8501:8501 -v "
        f"{path.rsplit('/', 2)[0]}:/models tensorflow/serving "
        f"--model_config_file=/models/models.config"
    )
