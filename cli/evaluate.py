"""`kllm evaluate`: a run dir's scores on a test file."""

import sys
import time

import click

from keras_llm.cli import examples
from keras_llm.cli import options


def _metric_list(ctx, param, value):
    if value is None:
        return None
    from keras_llm.evaluation import metrics

    try:
        return metrics.parse_metrics(value)
    except ValueError as error:
        raise click.BadParameter(
            str(error).removeprefix("--metrics: "), ctx, param
        ) from None


class _Progress:
    """`generating 96/200 examples, 31.4 examples/s` on stderr, rewritten
    in place on a terminal, a line per update otherwise."""

    def __init__(self):
        self.stream = sys.stderr
        self.tty = self.stream.isatty()
        self.started = {}

    def __call__(self, phase, done, total):
        start = self.started.setdefault(phase, time.perf_counter())
        elapsed = max(time.perf_counter() - start, 1e-9)
        line = (
            f"{phase} {done}/{total} examples, {done / elapsed:.1f} examples/s"
        )
        if self.tty:
            end = "\n" if done >= total else ""
            self.stream.write("\r" + line + "\x1b[K" + end)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


@click.command(
    epilog=examples.examples(
        "kllm evaluate runs/en_es --data test.tsv",
        "kllm evaluate runs/en_es --data test.tsv --metrics bleu,chrf,"
        "perplexity \\",
        "    --num-beams 5 --out results.json --predictions preds.txt",
        "kllm evaluate runs/gpt2_tiny --data held_out.txt   # perplexity",
        "kllm evaluate runs/en_es --data test.tsv --checkpoint 2000",
        "kllm evaluate runs/en_es --data test.tsv --checkpoint latest",
    )
)
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Test file: .tsv (input<TAB>target; a classifier's text<TAB>label), "
    ".jsonl (the run's data.text_field / data.target_field or "
    "data.label_field), or plain text, one example per line.",
)
@click.option(
    "--metrics",
    callback=_metric_list,
    help="Comma-separated: bleu, chrf, rouge1, rouge2, rougeLsum, "
    "exact_match, f1, perplexity, loss; accuracy, macro_f1 for classifiers. "
    "Default: bleu,chrf for pairs, perplexity for text, accuracy for "
    "labels.",
)
@options.CHECKPOINT
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    help="Write the results (metrics, examples, checkpoint, decoding, "
    "versions) to this JSON file.",
)
@click.option(
    "--predictions",
    "predictions_path",
    type=click.Path(dir_okay=False),
    help="Write one output per input line, aligned with --data.",
)
@options.generation_options
@options.batch_size("Examples run together.")
@options.NO_XLA
@options.QUANTIZE
@click.option(
    "--keep-special-tokens",
    is_flag=True,
    help="Keep special tokens in the outputs that are scored.",
)
@options.DEBUG
def evaluate(
    run_dir: str,
    data_path: str,
    metrics: list[str] | None,
    checkpoint: str | None,
    out_path: str | None,
    predictions_path: str | None,
    batch_size: int,
    no_xla: bool,
    quantize: str | None,
    keep_special_tokens: bool,
    debug: bool,
    **decoding,
) -> None:
    """Score the model in RUN_DIR on a test file: BLEU and chrF (sacrebleu),
    ROUGE (rouge-score), SQuAD exact match and F1, perplexity. Prints one
    line per metric; --out and --predictions write files. Without
    --max-new-tokens, outputs run up to the run's
    data.target_sequence_length, as in training's validation metrics."""
    ctx = click.get_current_context()
    default_length = (
        ctx.get_parameter_source("max_new_tokens")
        is click.core.ParameterSource.DEFAULT
    )
    config = options.generation_config(decoding)
    import keras_llm  # TensorFlow
    from keras_llm import evaluation
    from keras_llm import rundir
    from keras_llm.evaluation import scoring as evaluate_lib

    options.show_library_logs()
    with options.library_errors(debug):
        options.check_max_new_tokens(run_dir, decoding["max_new_tokens"])
        cfg = rundir.read_config(run_dir)
        data = evaluation.read_data(data_path, cfg.data)
        prefix = options.announce_checkpoint(run_dir, checkpoint, always=True)
        step = rundir.checkpoint_step(prefix)
        lm = keras_llm.load(run_dir, checkpoint=checkpoint, quantize=quantize)
        if default_length:
            # Decode as far as training's targets go, as the validation
            # metrics of train.eval_metrics do, not --max-new-tokens' 32.
            from keras_llm.training import validation

            length = validation.max_new_tokens(cfg, lm)
            config = config.replace(max_new_tokens=length)
        names = metrics or evaluate_lib.default_metrics(lm, data)
        evaluate_lib.check_metrics(lm, data, names)
        if predictions_path and not any(
            evaluation.METRICS[name].needs in ("generation", "labels")
            for name in names
        ):
            raise ValueError(
                "--predictions needs a generation metric (bleu, chrf, "
                "rouge1, rouge2, rougeLsum, exact_match, f1) or a label "
                "metric (accuracy, macro_f1) in --metrics."
            )
        results = evaluation.evaluate(
            lm,
            data,
            names,
            generation_config=config,
            batch_size=batch_size,
            jit_compile=not no_xla,
            keep_special_tokens=keep_special_tokens,
            progress=_Progress(),
        )
    for name, value in results["metrics"].items():
        click.echo(f"{name}: {value:.4f}")
    for name, signature in results["signatures"].items():
        click.echo(f"{name} signature: {signature}")
    click.echo(
        f"examples: {results['examples']}"
        + (f", target tokens: {results['tokens']}" if results["tokens"] else "")
    )
    predictions = results.pop("predictions")
    if predictions_path:
        evaluate_lib.write_predictions(predictions_path, predictions)
        click.echo(
            f"Wrote {len(predictions)} predictions to {predictions_path}"
        )
    if out_path:
        report = {
            "run_dir": run_dir,
            "data": data_path,
            "checkpoint": {
                "path": prefix,
                "step": step,
                # best (step, metric, value), latest (step) or step N
                "which": rundir.describe_checkpoint(run_dir, prefix),
            },
            "keep_special_tokens": keep_special_tokens,
            "quantize": quantize,
            **results,
            "versions": evaluate_lib.versions(),
        }
        evaluate_lib.write_results(out_path, report)
        click.echo(f"Wrote {out_path}")
