"""Scores a model on a test file: `kllm evaluate`.

```python
from keras_llm import evaluation
lm = keras_llm.load("runs/en_es")
data = evaluation.read_data("test.tsv", lm.config.data)
results = evaluation.evaluate(lm, data, ["bleu", "chrf", "perplexity"])
results["metrics"]      # {"bleu": 12.3, "chrf": 40.1, "perplexity": 18.2}
```
A test file comes in the formats training reads: `.tsv` (`input<TAB>target`
per line), `.jsonl` (the run's `data.text_field`, and `data.target_field`
for pairs), anything else plain text, one document per line. Every line is
an example, blank ones too, so `--predictions` lines up with the input
lines. A classifier's run (`data.objective: classification`) reads labels:
`.tsv` `text<TAB>label`, `.jsonl` `data.text_field` and `data.label_field`;
every label must be one the model was trained on (`labels.json`).

Generation metrics decode every input with the run's input format (task
prefix, truncation) and compare the texts with the targets; `perplexity`
and `loss` are the model's mean negative log-likelihood per target token
(EOS included where the format adds one), from the same `loss_terms` that
training's validation uses.
"""

import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from keras_llm import kinds
from keras_llm.evaluation import metrics as metrics_lib

logger = logging.getLogger(__name__)

PAIRS, TEXT, LABELS = "pairs", "text", "labels"


class EvalData(NamedTuple):
    """A test file's examples."""

    path: str
    kind: str  # PAIRS, TEXT or LABELS
    inputs: list[str]  # the texts (TEXT, LABELS) or the inputs (PAIRS)
    targets: list[str] | None  # one per input (PAIRS), or its label


def read_data(path: str, data_config) -> EvalData:
    """Reads a test file (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed line (named with its number and the fix).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--data: {path} does not exist.")
    with open(path, encoding="utf-8", errors="strict") as file:
        try:
            text = file.read()
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{path} is not UTF-8 ({error.reason} at byte "
                f"{error.start}): convert it to UTF-8."
            ) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if not lines:
        raise ValueError(f"--data: {path} is empty.")
    extension = os.path.splitext(path)[1]
    if getattr(data_config, "objective", None) == "classification":
        return _read_labels(path, lines, extension, data_config)
    if extension == ".tsv":
        inputs, targets = [], []
        for number, line in enumerate(lines, 1):
            if "\t" not in line and line.strip():
                raise ValueError(
                    f"{path}:{number}: no TAB; a .tsv test file has "
                    "input<TAB>target on every line."
                )
            source, _, target = line.partition("\t")
            inputs.append(source)
            targets.append(target)
        return EvalData(path, PAIRS, inputs, targets)
    if extension == ".jsonl":
        return _read_jsonl(path, lines, data_config)
    return EvalData(path, TEXT, lines, None)


def _read_labels(path, lines, extension, data_config):
    """A classifier's test file: a label on every line."""
    if extension not in (".tsv", ".jsonl"):
        raise ValueError(
            f"--data: {path}: a classifier is scored on labelled .tsv "
            "(text<TAB>label) or .jsonl (data.text_field, data.label_field) "
            "files."
        )
    from keras_llm.data import sources

    inputs, labels = [], []
    for number, line in enumerate(lines, 1):
        where = f"{path}:{number}"
        if extension == ".jsonl":
            record = sources.json_record(
                line, where, sources.label_fields(data_config)
            )
            text = str(record[data_config.text_field])
            label = str(record[data_config.label_field])
        else:
            text, tab, label = line.partition("\t")
            if not tab:
                raise ValueError(
                    f"{where}: no TAB; a classifier's .tsv test file has "
                    "text<TAB>label on every line."
                )
        inputs.append(text)
        labels.append(label.strip())
    return EvalData(path, LABELS, inputs, labels)


def _read_jsonl(path, lines, data_config):
    from keras_llm.data import sources

    text_field, target_field = data_config.text_field, data_config.target_field
    fields = {"text_field": text_field, "target_field": target_field}
    inputs, targets = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            inputs.append("")
            targets.append("")
            continue
        record = sources.json_record(line, f"{path}:{number}", fields)
        inputs.append(str(record[text_field]))
        if target_field is not None:
            targets.append(str(record[target_field]))
    if target_field is None:
        return EvalData(path, TEXT, inputs, None)
    return EvalData(path, PAIRS, inputs, targets)


def default_metrics(model, data: EvalData) -> list[str]:
    """Pairs → BLEU and chrF; text → perplexity; labels → accuracy."""
    if data.kind == LABELS:
        return ["accuracy"]
    if data.kind == PAIRS:
        return ["bleu", "chrf"]
    return ["perplexity"]


def check_metrics(model, data: EvalData, names: Sequence[str]) -> None:
    """Refuses metrics the model or the data cannot give.

    Raises:
        ValueError: naming the metric and what it needs.
    """
    if model.kind == kinds.CLASSIFIER:
        _check_label_metrics(model, data, names)
        return
    for name in names:
        needs = metrics_lib.METRICS[name].needs
        if needs == "labels":
            raise ValueError(
                f"--metrics: {name} scores a classifier's labels; "
                f"{type(model).__name__} generates text."
            )
        if model.kind == kinds.MASKED:
            raise ValueError(
                f"--metrics: {type(model).__name__} is a masked language "
                f"model: it neither generates nor scores targets ({name})."
            )
        if needs == "generation" and data.kind != PAIRS:
            raise ValueError(
                f"--metrics: {name} compares outputs with targets; "
                f"{data.path} has no targets (use a .tsv of "
                "input<TAB>target, or .jsonl with data.target_field)."
            )
        if (
            needs == "likelihood"
            and data.kind == TEXT
            and model.kind != kinds.CAUSAL
        ):
            raise ValueError(
                f"--metrics: {name} of plain text needs a decoder-only "
                f"model; for {type(model).__name__} give input<TAB>target "
                "pairs (the targets are scored)."
            )


def _check_label_metrics(model, data, names):
    """A classifier gives label metrics, on labelled data of its labels."""
    for name in names:
        if metrics_lib.METRICS[name].needs != "labels":
            raise ValueError(
                f"--metrics: {type(model).__name__} is a classifier: it "
                f"predicts labels; {name} needs text (use accuracy, "
                "macro_f1)."
            )
    if data.kind != LABELS:
        raise ValueError(
            f"--data: {data.path} has no labels (a classifier's test file "
            "is .tsv text<TAB>label or .jsonl with data.label_field)."
        )
    known = model.label_names()
    known_set = set(known)
    for number, label in enumerate(data.targets, 1):
        if label not in known_set:
            raise ValueError(
                f"{data.path}:{number}: label {label!r} is not one the model "
                f"was trained on {known}; fix the label or drop the line."
            )


def evaluate(
    model,
    data: EvalData,
    metric_names: Sequence[str] | None = None,
    *,
    generation_config=None,
    batch_size: int = 32,
    jit_compile: bool = True,
    keep_special_tokens: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    **decoding,
) -> dict:
    """Scores `model` on `data`.

    Args:
        model: a task model from `keras_llm.load` (tokenizer attached).
        data: from `read_data`.
        metric_names: names from `metrics.METRICS`; default: by data
            (`default_metrics`).
        generation_config: a `GenerationConfig` for the generation
            metrics (default: greedy, its default `max_new_tokens`).
        batch_size: examples run together.
        jit_compile: compile the decode loop with XLA.
        keep_special_tokens: keep special tokens in the predictions.
        progress: called as `progress(phase, done, total)`.
        **decoding: `GenerationConfig` fields (`num_beams=5`, ...) that
            replace those of `generation_config`.

    Returns:
        A dict: `metrics` (name → value), `signatures` (sacrebleu's),
        `examples`, `tokens` (targets scored, for perplexity), `decoding`,
        `predictions` (list of str, or `None` without generation metrics)
        and `seconds`.

    Raises:
        ValueError: a metric the model or data cannot give.
    """
    from keras_llm import generation

    names = list(metric_names or default_metrics(model, data))
    check_metrics(model, data, names)
    started = time.perf_counter()
    results = {
        "metrics": {},
        "signatures": {},
        "examples": len(data.inputs),
        "tokens": None,
        "decoding": None,
        "predictions": None,
    }
    needs = {metrics_lib.METRICS[name].needs for name in names}
    if "likelihood" in needs:
        nll, tokens = _likelihood(model, data, batch_size, progress)
        loss = nll / max(tokens, 1)
        results["tokens"] = tokens
        if "loss" in names:
            results["metrics"]["loss"] = loss
        if "perplexity" in names:
            results["metrics"]["perplexity"] = math.exp(min(loss, 700.0))
    if "labels" in needs:
        predictions = _predict_labels(model, data.inputs, batch_size, progress)
        scores, _ = metrics_lib.text_metrics(names, predictions, data.targets)
        results["metrics"].update(scores)
        results["predictions"] = predictions
    if "generation" in needs:
        config = generation_config or generation.GenerationConfig()
        if decoding:
            config = config.replace(**decoding)
        predictions = _generate(
            model,
            data.inputs,
            config,
            batch_size,
            jit_compile,
            keep_special_tokens,
            progress,
        )
        scores, signatures = metrics_lib.text_metrics(
            names, predictions, data.targets
        )
        results["metrics"].update(scores)
        results["signatures"] = signatures
        results["decoding"] = dataclasses.asdict(config)
        results["predictions"] = predictions
    # In the order asked for.
    results["metrics"] = {name: results["metrics"][name] for name in names}
    results["seconds"] = time.perf_counter() - started
    return results


def _likelihood(model, data, batch_size, progress):
    import tensorflow as tf

    fmt = model.make_format()
    if data.kind == PAIRS:
        inputs, targets = data.inputs, data.targets
    else:  # a decoder-only model scores each text from its start
        inputs, targets = [""] * len(data.inputs), data.inputs
    # Target ids a row would have uncut: EOS ends a seq2seq target.
    extra = 1 if model.kind == kinds.SEQ2SEQ else 0
    total_nll, total_tokens, cut = 0.0, 0.0, 0
    if progress:
        progress("scoring", 0, len(inputs))
    for begin in range(0, len(inputs), batch_size):
        batch_targets = targets[begin : begin + batch_size]
        features, labels, weights = fmt.pair_examples(
            tf.constant(inputs[begin : begin + batch_size]),
            tf.constant(batch_targets),
        )
        nll, count = model.loss_terms(features, labels, weights)
        count = np.asarray(count, np.float64)
        total_nll += float(np.sum(np.asarray(nll, np.float64)))
        total_tokens += float(np.sum(count))
        full = model.tokenizer.tokenize(batch_targets).row_lengths().numpy()
        cut += int(np.sum(count < full + extra))
        if progress:
            done = min(begin + batch_size, len(inputs))
            progress("scoring", done, len(inputs))
    if cut:
        logger.warning(
            "%d of %d targets are longer than the run's data lengths "
            "(data.sequence_length / data.target_sequence_length): each is "
            "scored on its first tokens only.",
            cut,
            len(inputs),
        )
    return total_nll, int(total_tokens)


def _predict_labels(model, inputs, batch_size, progress):
    predictions = []
    chunk = batch_size * 4
    if progress:
        progress("classifying", 0, len(inputs))
    for begin in range(0, len(inputs), chunk):
        predictions += model.predict_labels(
            inputs[begin : begin + chunk], batch_size
        )
        if progress:
            progress("classifying", len(predictions), len(inputs))
    return predictions


def _generate(
    model, inputs, config, batch_size, jit_compile, keep_special, progress
):
    from keras_llm.generation import driver

    predictions = []
    # The prompts the input format cuts, counted once for the whole file;
    # the chunks' own counts would repeat it for every chunk.
    driver.warn_if_cut(model.make_format(), inputs, config.max_new_tokens)
    if progress:
        progress("generating", 0, len(inputs))
    # Chunks of a few batches: progress without re-tracing per batch.
    chunk = batch_size * 4
    with driver.quiet_cut_warnings():
        for begin in range(0, len(inputs), chunk):
            texts = model.generate(
                inputs[begin : begin + chunk],
                config,
                jit_compile=jit_compile,
                batch_size=batch_size,
                keep_special_tokens=keep_special,
            )
            predictions += texts
            if progress:
                progress("generating", len(predictions), len(inputs))
    return predictions


def versions() -> dict[str, str]:
    """The versions that make a score reproducible."""
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for package in (
        "keras_llm",
        "tensorflow",
        "keras",
        "sacrebleu",
        "rouge-score",
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def write_predictions(path: str, predictions: Sequence[str]) -> None:
    """One prediction per line (newlines inside one become spaces), written
    to a temporary file renamed into place."""
    lines = [" ".join(p.splitlines()) if p else "" for p in predictions]
    _write_atomically(path, "".join(line + "\n" for line in lines))


def write_results(path: str, results: dict) -> None:
    """`results.json`, written atomically."""
    _write_atomically(
        path, json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    )


def _write_atomically(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    scratch = f"{path}.tmp"
    with open(scratch, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(scratch, path)
