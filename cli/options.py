"""Shared Click options and the library-error boundary of every command."""

import contextlib
import logging
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
CHECKPOINT = click.option(
    "--checkpoint",
    default=None,
    metavar="best|latest|STEP",
    help="Which weights: best (checkpoints/best/, the best validation by "
    "train.best_metric), latest, or the step of a kept checkpoint. "
    "Default: best if the run kept one (said on stderr), else latest.",
)


def announce_checkpoint(
    run_dir: str, checkpoint: str | None, always: bool = False
) -> str:
    """Picks the checkpoint (`rundir.select_checkpoint`) and says which on
    stderr, e.g. `Checkpoint: best (step 300, val_loss 2.3100):
    RUN/checkpoints/best/ckpt-300`: when there was a choice (the run kept
    a best checkpoint, or --checkpoint was given), or `always`. Returns
    its prefix.

    A damaged list of checkpoints is named first, as `keras_llm.load`
    names it (TensorFlow would log a warning and find no checkpoint)."""
    from keras_llm import loading
    from keras_llm import rundir

    loading.check_checkpoint_state(run_dir)
    prefix = rundir.select_checkpoint(run_dir, checkpoint)
    chosen = checkpoint is not None or rundir.best_checkpoint(run_dir)
    if always or chosen:
        which = rundir.describe_checkpoint(run_dir, prefix)
        click.echo(f"Checkpoint: {which}: {prefix}", err=True)
    return prefix


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
    """`runs/<name>` for a zoo name (`t5_tiny`) or a zoo-style file
    (`zoo/t5_tiny.yaml`); the folder of RUN_DIR/config.yaml."""
    import os

    folder, name = os.path.split(os.path.abspath(config_path))
    if name == "config.yaml" and os.path.isdir(
        os.path.join(folder, "checkpoints")
    ):
        return folder
    return os.path.join("runs", os.path.splitext(name)[0])


class _StderrHandler(logging.Handler):
    """Log records as plain lines on the stderr of the moment (click's test
    runner swaps it for each command)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # logging's contract: never raise from emit
            self.handleError(record)


def show_library_logs() -> None:
    """keras_llm's INFO logs (resume, tokenizer training, prompts cut) on
    stderr, one plain line each."""
    logger = logging.getLogger("keras_llm")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # Once: not again through a handler a library put on the root logger.
    logger.propagate = False


def check_max_new_tokens(run_dir: str, max_new_tokens: int) -> None:
    """--max-new-tokens against the run's model, before it is loaded: a
    usage error (exit 2) past what the model holds.

    Raises:
        click.BadParameter: naming --max-new-tokens, the limit and why.
        FileNotFoundError, ConfigError: no run dir or a bad config.
    """
    from keras_llm import rundir
    from keras_llm.generation.config import max_new_tokens_problem

    model = rundir.read_config(run_dir).model
    # The position table of a decoder-only model: Task.max_positions.
    positions = getattr(model, "max_sequence_length", None)
    problem = max_new_tokens_problem(max_new_tokens, model.kind, positions)
    if problem:
        raise click.BadParameter(problem + ".", param_hint="'--max-new-tokens'")


def describe_result(result) -> str:
    """One line about a finished training run."""
    parts = [f"Trained to step {result.step}"]
    if result.train_loss is not None:
        parts.append(f"loss {result.train_loss:.4f}")
    if result.validation_loss is not None:
        parts.append(f"val_loss {result.validation_loss:.4f}")
    best = getattr(result, "best", None)
    if best:  # checkpoints/best/
        parts.append(
            f"best {best['metric']} at step {best['step']}: {best['value']:.4f}"
        )
    if getattr(result, "stopped_early", None):
        parts[0] += " (stopped early)"
    return ", ".join(parts) + f". Run dir: {result.run_dir}"


def generation_options(function):
    """The decoding options shared by `generate` and `export` (Hugging Face's
    names); the command receives them as keyword arguments and turns them
    into a `GenerationConfig` with `generation_config`."""
    decorators = [
        click.option(
            "--max-new-tokens",
            type=click.IntRange(min=1),
            default=32,
            show_default=True,
            help="Tokens to generate per prompt, EOS included; at most "
            "the model's positions (GPT-2: model.max_sequence_length), "
            "or 4096 for models without a position table (T5, "
            "Transformer).",
        ),
        click.option(
            "--num-beams",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Beam search with this many beams (1: none).",
        ),
        click.option(
            "--length-penalty",
            type=float,
            default=1.0,
            show_default=True,
            help="Beam search: score / length ** penalty (> 0 "
            "favours longer outputs).",
        ),
        click.option(
            "--early-stopping",
            is_flag=True,
            help="Beam search: stop a prompt as soon as "
            "--num-beams hypotheses are finished.",
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
            help="Sampling temperature (> 0).",
        ),
        click.option(
            "--top-k",
            type=click.IntRange(min=0),
            default=None,
            help="Sampling: keep the k most likely tokens (0: "
            "all). BERT run dirs: candidates per [MASK] (default "
            "5).",
        ),
        click.option(
            "--top-p",
            type=float,
            default=1.0,
            show_default=True,
            help="Sampling: nucleus probability mass in (0, 1].",
        ),
        click.option(
            "--seed",
            type=click.IntRange(min=0, max=2**31 - 1),
            default=None,
            help="Sampling seed (same seed, same sample).",
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


def generation_config(values: dict, ignore_top_k: bool = False):
    """A `GenerationConfig` from the `generation_options` values (`top_k`
    None means 0; `ignore_top_k` for BERT, where --top-k counts fill-mask
    candidates); a bad combination is a usage error (exit 2) that names
    the options, e.g. "--temperature only applies with --do-sample"."""
    from keras_llm.generation.config import GenerationConfig
    from keras_llm.generation.config import GenerationConfigError

    values = {key: values[key] for key in GENERATION_KEYS}
    values["top_k"] = 0 if ignore_top_k else values["top_k"] or 0
    try:
        return GenerationConfig(**values)
    except GenerationConfigError as error:
        raise click.UsageError(
            "; ".join(
                _in_option_terms(problem, values) for problem in error.problems
            )
        ) from None


def _option_name(field: str) -> str:
    """The `generation_options` option of a `GenerationConfig` field."""
    return "--" + field.replace("_", "-")


def _in_option_terms(problem, values: dict) -> str:
    """A `generation.config.Problem` in the words of the command line."""
    names = [_option_name(field) for field in problem.fields]
    if problem.rule is not None:
        value = values[problem.fields[0]]
        return f"{names[0]} must be {problem.rule}. Received: {value}"
    listed = " and ".join(
        [", ".join(names[:-1]), names[-1]] if names[1:] else names
    )
    verb = "applies" if len(names) == 1 else "apply"
    needs = "--do-sample" if problem.needs == "do_sample" else "--num-beams > 1"
    return f"{listed} only {verb} with {needs}"


def batch_size(help_text: str):
    """`--batch-size`, 32 by default."""
    return click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=32,
        show_default=True,
        help=help_text,
    )


NO_XLA = click.option(
    "--no-xla",
    is_flag=True,
    help="Run the decode loop without XLA compilation.",
)

# keras_llm.quantization.MODES, written out: importing it loads TensorFlow,
# and --help stays fast (tests/test_quantization.py checks they match).
QUANTIZE_MODES = ("int8",)
QUANTIZE = click.option(
    "--quantize",
    type=click.Choice(QUANTIZE_MODES),
    default=None,
    help="int8: weight-only int8 weights with a scale per output channel, "
    "about a quarter of float32's memory; outputs may differ slightly from "
    "float32 (docs/performance.md, 'int8 weights').",
)
