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

LIBRARY_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


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
