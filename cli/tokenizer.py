"""`kllm tokenizer`: train a tokenizer on local text files."""

import click

from keras_llm.cli import examples
from keras_llm.cli import options


@click.group()
def tokenizer() -> None:
    """Tokenizers: train one on local text (nothing downloads)."""


@tokenizer.command(
    "train",
    epilog=examples.examples(
        "kllm tokenizer train corpus.txt --kind sentencepiece \\",
        "    --vocab-size 8000 --out tok/",
        "kllm tokenizer train a.txt b.txt --kind sentencepiece \\",
        "    --vocab-size 32128 --num-sentinels 100 --out t5_tok/",
        "kllm tokenizer train corpus.txt --kind wordpiece \\",
        "    --vocab-size 30522 --out bert_tok/",
    ),
)
@click.argument("files", nargs=-1, required=True, metavar="FILES...")
@click.option(
    "--kind",
    type=click.Choice(["sentencepiece", "wordpiece"]),
    required=True,
    help="sentencepiece (T5) or wordpiece (BERT).",
)
@click.option(
    "--vocab-size",
    "vocabulary_size",
    type=click.IntRange(min=1),
    required=True,
    help="Total number of ids, specials and sentinels included.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Directory to write the tokenizer into.",
)
@click.option(
    "--num-sentinels",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="T5 sentinels <extra_id_i> above the pieces (sentencepiece only).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Sampling seed."
)
@options.DEBUG
def train(
    files: tuple[str, ...],
    kind: str,
    vocabulary_size: int,
    out_dir: str,
    num_sentinels: int,
    seed: int,
    debug: bool,
) -> None:
    """Train a tokenizer on FILES: local text, one document per line.
    A text too small for --vocab-size gives fewer ids, said in one line.
    Use it in a config with data.tokenizer: DIR."""
    from keras_llm.data import tokenizer as tokenizer_lib  # TensorFlow

    with options.library_errors(debug):
        trained = tokenizer_lib.train_tokenizer(
            files,
            kind,
            vocabulary_size,
            out_dir,
            num_sentinels=num_sentinels,
            seed=seed,
        )
    click.echo(
        f"Wrote a {kind} tokenizer to {out_dir} "
        f"(vocabulary_size={trained.vocabulary_size})"
    )
    why = tokenizer_lib.shortfall(trained)
    if why:  # recorded too: requested_vocabulary_size in its metadata
        click.echo(
            f"Warning: --vocab-size: {why}. Give more text, or a "
            f"--vocab-size of at most {trained.vocabulary_size}.",
            err=True,
        )
