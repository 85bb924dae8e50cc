"""`kllm generate`: text from a run dir (fill-mask for BERT run dirs)."""

import codecs
import json

import click

from keras_llm.cli import examples
from keras_llm.cli import options


def _decode(data: bytes, source: str, errors: str) -> str:
    """`data` as text; bytes that are not UTF-8 are an error naming the
    line, or U+FFFD with `errors="replace"`."""
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as error:
        byte = f"0x{data[error.start]:02x}"
        if source.startswith("TEXT"):
            where = f"{source} is not valid UTF-8 (byte {byte})"
        else:
            line = data.count(b"\n", 0, error.start) + 1
            column = error.start - data.rfind(b"\n", 0, error.start)
            where = (
                f"{source}: line {line} is not valid UTF-8 (byte {byte} at "
                f"byte {column} of the line)"
            )
        raise click.ClickException(
            f"{where}: convert it to UTF-8 (e.g. iconv -f latin1 -t "
            "utf-8), or pass --errors replace to read such bytes as U+FFFD"
        ) from None


def _check_argument(index: int, text: str, errors: str) -> str:
    """A TEXT argument; bytes that were not UTF-8 reach Python as lone
    surrogates, which the tokenizer cannot encode."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        return _decode(raw, f"TEXT argument {index}", errors)


def _read_prompts(
    texts: tuple[str, ...], file: str | None, errors: str
) -> list[str]:
    """One prompt per TEXT argument, or per line of --file or stdin.

    Every line is a prompt, blank ones too, so the outputs line up with
    the input lines; only an input with no line at all is an error.
    """
    if texts and file:
        raise click.UsageError(
            "Pass prompts as TEXT arguments or --file, not both."
        )
    if texts:
        return [
            _check_argument(i, text, errors)
            for i, text in enumerate(texts, start=1)
        ]
    if file:
        source = file
        try:
            with open(file, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise click.ClickException(
                f"{file}: cannot read ({error.strerror})"
            ) from None
    else:
        source = "stdin"
        stream = click.get_binary_stream("stdin")
        if stream.isatty():
            raise click.UsageError(
                "No prompts: pass TEXT arguments, --file PATH, or pipe one "
                "prompt per line on stdin."
            )
        data = stream.read()
    text = _decode(data, source, errors)
    if not text:
        raise click.UsageError(
            f"No prompts: {source} is empty (one prompt per line)."
        )
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


@click.command(
    epilog=examples.examples(
        'kllm generate runs/t5_tiny "The for statement" --max-new-tokens 20',
        "kllm generate runs/gpt2_tiny --file prompts.txt --do-sample \\",
        "    --top-p 0.9 --seed 1",
        "kllm generate runs/en_es --num-beams 5 --early-stopping --jsonl \\",
        "    --file sentences.txt",
    )
)
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@click.option(
    "--file",
    type=click.Path(exists=True, dir_okay=False),
    help="Read prompts from this file, one per line (blank lines are "
    "prompts too, so outputs line up with lines).",
)
@click.option(
    "--errors",
    type=click.Choice(["strict", "replace"]),
    default="strict",
    show_default=True,
    help="Bytes that are not UTF-8 in the prompts: strict stops with the "
    "line number; replace reads them as U+FFFD.",
)
@options.generation_options
@options.batch_size("Prompts decoded together.")
@options.NO_XLA
@options.QUANTIZE
@click.option(
    "--jsonl",
    is_flag=True,
    help='Print {"prompt": ..., "output": ...} JSON lines.',
)
@click.option(
    "--scores",
    is_flag=True,
    help="Classifier run dirs: print every label's probability after the "
    "label (label<TAB>name=p ...; with --jsonl a scores object).",
)
@click.option(
    "--keep-special-tokens",
    is_flag=True,
    help="Show special tokens (T5's <extra_id_N> sentinels, [UNK], ...) "
    "and the tokenizer's raw spacing. By default outputs are Hugging "
    "Face's decode(skip_special_tokens=True).",
)
@options.CHECKPOINT
@options.DEBUG
def generate(
    run_dir: str,
    texts: tuple[str, ...],
    file: str | None,
    errors: str,
    batch_size: int,
    no_xla: bool,
    quantize: str | None,
    jsonl: bool,
    scores: bool,
    keep_special_tokens: bool,
    checkpoint: str | None,
    debug: bool,
    **decoding,
) -> None:
    """Generate from the model in RUN_DIR for each prompt: TEXT arguments,
    --file, or stdin lines. Prints one output per prompt per line (newlines
    in outputs as \\n; --jsonl for exact text). BERT run dirs fill in
    [MASK]s; classifier run dirs print each text's label. Prompts longer
    than the model's input are cut (one warning says how many)."""
    prompts = _read_prompts(texts, file, errors)
    import keras_llm  # TensorFlow
    from keras_llm import kinds

    # Checked before loading; --top-k may count BERT fill-mask candidates.
    options.generation_config(decoding, ignore_top_k=True)
    options.show_library_logs()  # the warning about cut prompts
    with options.library_errors(debug):
        options.check_max_new_tokens(run_dir, decoding["max_new_tokens"])
        options.announce_checkpoint(run_dir, checkpoint)
        lm = keras_llm.load(run_dir, checkpoint=checkpoint, quantize=quantize)
        if scores and lm.kind != kinds.CLASSIFIER:
            raise click.UsageError(
                f"--scores applies to classifier run dirs; {run_dir} holds "
                f"a {lm.kind} model."
            )
        if lm.kind == kinds.CLASSIFIER:
            labels, probabilities = lm.classify(prompts, batch_size)
            names = lm.label_names()
            results = []
            for label, row in zip(labels, probabilities):
                results.append({"output": label})
                if scores:
                    results[-1]["scores"] = dict(zip(names, map(float, row)))
        elif lm.kind == kinds.MASKED:  # --top-k: candidates
            results = lm.fill_mask(
                prompts,
                decoding["top_k"] or 5,
                batch_size=batch_size,
                keep_special_tokens=keep_special_tokens,
            )
        else:
            outputs = lm.generate(
                prompts,
                options.generation_config(decoding),
                jit_compile=not no_xla,
                batch_size=batch_size,
                keep_special_tokens=keep_special_tokens,
            )
            results = [{"output": output} for output in outputs]
    for prompt, result in zip(prompts, results):
        if jsonl:
            click.echo(
                json.dumps({"prompt": prompt, **result}, ensure_ascii=False)
            )
        elif "scores" in result:
            pairs = result["scores"].items()
            shown = " ".join(f"{name}={p:.4f}" for name, p in pairs)
            click.echo(f"{result['output']}\t{shown}")
        else:
            click.echo(result["output"].replace("\n", "\\n"))
