"""`kllm export`: a run dir → a TF Serving SavedModel."""

import click

from keras_llm import names
from keras_llm.cli import options


def _check_name(ctx, param, value):
    if value is None:
        return value
    try:
        return names.check_folder_name(value, "--name")
    except ValueError as error:
        message = str(error).removeprefix("--name ")
        raise click.BadParameter(message, ctx, param) from None


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(),
    help="Model base folder: the export goes to OUT/NAME/VERSION, and "
    "OUT/models.config lists every model under OUT.",
)
@click.option(
    "--name",
    default=None,
    callback=_check_name,
    help="Model name, one folder name: letters, digits, '_', '-', '.' "
    "(default: the run dir's folder name).",
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
@click.option(
    "--keep-special-tokens",
    is_flag=True,
    help="Serve outputs with their special tokens (T5's <extra_id_N> "
    "sentinels, ...). By default outputs are Hugging Face's "
    "decode(skip_special_tokens=True).",
)
@click.option(
    "--xla",
    is_flag=True,
    help="Compile the decode loop with XLA inside the served graph, for a "
    "TF Serving started with --xla_cpu_compilation_enabled=true (the "
    "printed command adds it). Batch and prompt length are padded to "
    "powers of two; each new pair compiles on its first request.",
)
@options.QUANTIZE
@options.CHECKPOINT
@options.DEBUG
def export(
    run_dir,
    out_dir,
    name,
    version,
    overwrite,
    keep_special_tokens,
    xla,
    checkpoint,
    quantize,
    debug,
    **decoding,
):
    """Export RUN_DIR for TF Serving: strings in, generated strings out.

    Writes OUT/NAME/VERSION and OUT/models.config, then prints the docker
    command that serves OUT (tensorflow/serving of the TensorFlow release
    that exported, OUT mounted at /models). Seq2seq inputs get the run's
    data.task_prefix inside the graph: clients send the raw text. The
    decoding options are fixed into the served graph, without XLA unless
    --xla. Folders left in OUT/NAME by killed exports are tidied first.
    """
    config = options.generation_config(decoding)
    options.show_library_logs()  # leftovers removed or restored
    with options.library_errors(debug):
        options.check_max_new_tokens(run_dir, decoding["max_new_tokens"])
        options.announce_checkpoint(run_dir, checkpoint)
        import keras_llm

        path = keras_llm.export(
            run_dir,
            out_dir,
            name=name,
            version=version,
            overwrite=overwrite,
            config=config,
            checkpoint=checkpoint,
            quantize=quantize,
            keep_special_tokens=keep_special_tokens,
            xla=xla,
        )
    from keras_llm import serving

    click.echo(f"Exported to {path}")
    click.echo(
        f"Serve every model under {out_dir} with TF Serving (REST on port "
        "8501, gRPC on 8500; see docs/serving.md):"
    )
    click.echo(f"  {serving.serve_command(out_dir, xla=xla)}")
