"""Shared Click options and the library-error boundary of every command."""

import contextlib
from collections.abc import Iterator

import click

from keras_llm import config


def _check_overrides(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    # Only the syntax is a usage error (exit 2); unknown keys and bad values
    # are config errors, reported by the loader with the file's problems.
    for text in values:
        try:
            config.parse_override(text)
        except config.ConfigError as error:
            message = str(error).removeprefix("--set: ")
            raise click.BadParameter(message, ctx, param) from None
    return values


SET = click.option(
    "--set",
    "set_",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    callback=_check_overrides,
    help="Override one config value (parsed as YAML); repeatable, "
    "e.g. --set train.train_steps=2.",
)
DEBUG = click.option(
    "--debug",
    is_flag=True,
    help="On an error, show the full Python traceback.",
)

LIBRARY_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    FloatingPointError,
)


@contextlib.contextmanager
def library_errors(debug: bool) -> Iterator[None]:
    """Turns the library's user-facing errors into a clean CLI error.

    `ConfigError` (a `ValueError`), `ValueError`, `FileNotFoundError` and
    `FileExistsError` become a `click.ClickException`: its message (one line
    per problem) goes to stderr and the exit code is 1, with no traceback.

    Args:
        debug: re-raise the original exception instead, traceback and all.

    Raises:
        click.ClickException: for the errors above, unless `debug`.
    """
    try:
        yield
    except LIBRARY_ERRORS as error:
        if debug:
            raise
        raise click.ClickException(str(error)) from None


def default_run_dir(config_path: str) -> str:
    """`runs/<name>` for a zoo-style file; the folder of RUN_DIR/config.yaml."""
    import os

    folder, name = os.path.split(os.path.abspath(config_path))
    if name == "config.yaml" and os.path.isdir(
        os.path.join(folder, "checkpoints")
    ):
        return folder
    return os.path.join("runs", os.path.splitext(name)[0])


def show_library_logs() -> None:
    """keras_llm's INFO logs (resume, tokenizer training) on stderr."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("keras_llm")
    if not logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def describe_result(result) -> str:
    """One line about a finished training run."""
    parts = [f"Trained to step {result.step}"]
    if result.train_loss is not None:
        parts.append(f"loss {result.train_loss:.4f}")
    if result.validation_loss is not None:
        parts.append(f"val_loss {result.validation_loss:.4f}")
    return ", ".join(parts) + f". Run dir: {result.run_dir}"


def generation_options(function):
    """The decoding options shared by `generate` and `export` (Hugging Face's
    names); the command receives them as keyword arguments."""
    decorators = [
        click.option(
            "--max-new-tokens",
            type=int,
            default=32,
            show_default=True,
            help="Tokens generated per prompt, EOS included.",
        ),
        click.option(
            "--num-beams",
            type=int,
            default=1,
            show_default=True,
            help="Beam search with this many beams (1: none).",
        ),
        click.option(
            "--length-penalty",
            type=float,
            default=1.0,
            show_default=True,
            help="Beam search: score = log p / length**penalty.",
        ),
        click.option(
            "--early-stopping",
            is_flag=True,
            help="Beam search: stop once num_beams hypotheses end.",
        ),
        click.option(
            "--do-sample",
            is_flag=True,
            help="Sample instead of taking the most likely token.",
        ),
        click.option(
            "--temperature",
            type=float,
            default=1.0,
            show_default=True,
            help="Sampling temperature.",
        ),
        click.option(
            "--top-k",
            type=int,
            default=0,
            show_default=True,
            help="Sampling: keep the k most likely tokens (0: all).",
        ),
        click.option(
            "--top-p",
            type=float,
            default=1.0,
            show_default=True,
            help="Sampling: nucleus probability mass (1.0: all).",
        ),
        click.option(
            "--seed",
            type=int,
            default=None,
            help="Sampling: the same seed gives the same sample.",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


GENERATION_KEYS = (
    "max_new_tokens",
    "num_beams",
    "length_penalty",
    "early_stopping",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "seed",
)


def generation_config(kwargs: dict):
    """Pops the `generation_options` out of a command's kwargs into a
    `GenerationConfig` (its ValueError names the bad option)."""
    from keras_llm.generation.config import GenerationConfig

    values = {key: kwargs.pop(key) for key in GENERATION_KEYS}
    return GenerationConfig(**values)
