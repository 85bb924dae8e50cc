"""`kllm generate`: text from a run dir (fill-mask for BERT run dirs)."""

import json

import click

from keras_llm.cli import options


def _read_prompts(texts: tuple[str, ...], file: str | None) -> list[str]:
    if texts and file:
        raise click.UsageError(
            "Pass prompts as TEXT arguments or --file, not both."
        )
    if texts:
        return list(texts)
    if file:
        with open(file, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    else:
        stream = click.get_text_stream("stdin")
        if stream.isatty():
            raise click.UsageError(
                "No prompts: pass TEXT arguments, --file PATH, or pipe one "
                "prompt per line on stdin."
            )
        lines = stream.read().splitlines()
    prompts = [line for line in lines if line.strip()]
    if not prompts:
        raise click.UsageError(
            f"No prompts: {file or 'stdin'} has no non-empty line."
        )
    return prompts


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@click.option(
    "--file",
    type=click.Path(exists=True, dir_okay=False),
    help="Read prompts from this file, one per line.",
)
@options.generation_options
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Prompts decoded together.",
)
@click.option(
    "--no-xla",
    is_flag=True,
    help="Run the decode loop without XLA compilation.",
)
@click.option(
    "--jsonl",
    is_flag=True,
    help='Print {"prompt": ..., "output": ...} JSON lines.',
)
@options.DEBUG
def generate(
    run_dir: str,
    texts: tuple[str, ...],
    file: str | None,
    batch_size: int,
    no_xla: bool,
    jsonl: bool,
    debug: bool,
    **decoding,
) -> None:
    """Generate from the model in RUN_DIR for each prompt: TEXT arguments,
    --file, or stdin lines. Prints one output per prompt per line (newlines
    in outputs as \\n; --jsonl for exact text). BERT run dirs fill in
    [MASK]s."""
    prompts = _read_prompts(texts, file)
    import keras_llm  # TensorFlow
    from keras_llm import kinds

    # Checked before loading; --top-k may count BERT fill-mask candidates.
    options.generation_config(decoding, ignore_top_k=True)
    with options.library_errors(debug):
        lm = keras_llm.load(run_dir)
        if lm.kind == kinds.MASKED:  # --top-k: candidates
            results = lm.fill_mask(
                prompts, decoding["top_k"] or 5, batch_size=batch_size
            )
        else:
            outputs = lm.generate(
                prompts,
                options.generation_config(decoding),
                jit_compile=not no_xla,
                batch_size=batch_size,
            )
            results = [{"output": output} for output in outputs]
    for prompt, result in zip(prompts, results):
        if jsonl:
            click.echo(
                json.dumps({"prompt": prompt, **result}, ensure_ascii=False)
            )
        else:
            click.echo(result["output"].replace("\n", "\\n"))
