"""`kllm data`: the built-in data sets written as split files."""

import click

from keras_llm.cli import examples
from keras_llm.cli import options

_NAMES = ("bible", "testament", "pydoc")


@click.command(
    epilog=examples.examples(
        "kllm data bible --out data/bible          # train/validation/test.tsv",
        "kllm data testament --out data/testament  # verse<TAB>old|new",
        "kllm data pydoc --out data/pydoc --overwrite",
    )
)
@click.argument("name", type=click.Choice(_NAMES))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The folder to write train, validation and test files into.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing folder at --out."
)
@options.DEBUG
def data(name: str, out_dir: str, overwrite: bool, debug: bool) -> None:
    """Write the built-in data set NAME as train, validation and test
    files (96%, 2% and 2% of the examples, split by a hash of each one's
    text, the same everywhere): bible, English<TAB>Spanish verse pairs;
    testament, an English verse<TAB>old or new; pydoc, paragraphs of
    Python's documentation, one per line. Bible and testament need the
    Debian packages sword-text-kjv and sword-text-sparv."""
    with options.library_errors(debug):
        from keras_llm.data import builtin

        written = builtin.write(name, out_dir, overwrite=overwrite)
    click.echo(f"{name}: {builtin.describe(name)}")
    for path, count in written.values():
        click.echo(f"  {path}  {count:,} lines")
