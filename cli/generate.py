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
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Tokens to generate per prompt.",
)
@click.option(
    "--num-beams",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Beam search with this many beams.",
)
@click.option(
    "--length-penalty",
    type=float,
    default=1.0,
    show_default=True,
    help="Beam search: score / length ** penalty (> 0 favours longer outputs).",
)
@click.option(
    "--early-stopping",
    is_flag=True,
    help="Beam search: stop a prompt as soon as --num-beams "
    "hypotheses are finished.",
)
@click.option("--do-sample", is_flag=True, help="Sample instead of greedy.")
@click.option(
    "--temperature",
    type=float,
    default=1.0,
    show_default=True,
    help="Sampling temperature (> 0).",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=0),
    default=None,
    help="Sampling: keep the k most likely tokens (0: all). "
    "BERT run dirs: candidates per [MASK] (default 5).",
)
@click.option(
    "--top-p",
    type=float,
    default=1.0,
    show_default=True,
    help="Sampling: nucleus probability mass in (0, 1].",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=2**31 - 1),
    default=None,
    help="Sampling seed (same seed, same sample).",
)
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
    max_new_tokens: int,
    num_beams: int,
    length_penalty: float,
    early_stopping: bool,
    do_sample: bool,
    temperature: float,
    top_k: int | None,
    top_p: float,
    seed: int | None,
    batch_size: int,
    no_xla: bool,
    jsonl: bool,
    debug: bool,
) -> None:
    """Generate from the model in RUN_DIR for each prompt: TEXT arguments,
    --file, or stdin lines. Prints one output per prompt per line (newlines
    in outputs as \\n; --jsonl for exact text). BERT run dirs fill in
    [MASK]s."""
    prompts = _read_prompts(texts, file)
    from keras_llm import generation  # TensorFlow

    def config(top_k):
        try:
            return generation.GenerationConfig(
                max_new_tokens=max_new_tokens,
                num_beams=num_beams,
                length_penalty=length_penalty,
                early_stopping=early_stopping,
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                seed=seed,
            )
        except ValueError as error:
            raise click.UsageError(str(error)) from None

    config(
        (top_k or 0) if do_sample else 0
    )  # the rest is checked before loading
    with options.library_errors(debug):
        generator = generation.load_generator(run_dir)
        if generator.kind == generation.MASKED:  # --top-k: candidates
            results = generator.fill_mask(
                prompts, top_k or 5, batch_size=batch_size
            )
        else:
            outputs = generator.generate(
                prompts,
                config(top_k or 0),
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
