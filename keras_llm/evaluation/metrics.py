"""The metrics `kllm evaluate` (and training's validation) reports.

Text metrics compare predictions with references, one reference per
prediction:

- `bleu`, `chrf`: corpus scores from sacrebleu (its defaults: 13a
  tokenization, exponential smoothing; chrF with character 6-grams), with
  sacrebleu's signature string so a figure can be reproduced.
- `rouge1`, `rouge2`, `rougeLsum`: F-measures from Google's rouge-score
  (Porter stemming on), averaged over the examples, times 100. Its
  tokenizer keeps only ASCII letters and digits: use it on English.
- `exact_match`, `f1`: SQuAD v1.1 (answers lower-cased, punctuation,
  articles and extra whitespace removed; F1 over the remaining words),
  averaged over the examples, times 100.
- `accuracy`, `macro_f1`: for labels, times 100.

`perplexity` and `loss` come from the model's likelihood, not from text;
`keras_llm.evaluation.evaluate` computes them.
"""

import collections
import re
import string
from collections.abc import Callable
from collections.abc import Sequence
from typing import NamedTuple


class Metric(NamedTuple):
    """A metric's name, what it needs and which way is better."""

    name: str
    needs: str  # "generation", "likelihood" or "labels"
    higher_is_better: bool


METRICS = {
    metric.name: metric
    for metric in (
        Metric("bleu", "generation", True),
        Metric("chrf", "generation", True),
        Metric("rouge1", "generation", True),
        Metric("rouge2", "generation", True),
        Metric("rougeLsum", "generation", True),
        Metric("exact_match", "generation", True),
        Metric("f1", "generation", True),
        Metric("perplexity", "likelihood", False),
        Metric("loss", "likelihood", False),
        Metric("accuracy", "labels", True),
        Metric("macro_f1", "labels", True),
    )
}


def parse_metrics(text: str | Sequence[str], where: str = "--metrics"):
    """Metric names from `"bleu,chrf"` (or a list), checked.

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        named = ", ".join(map(repr, unknown)) or "(none)"
        raise ValueError(
            f"{where}: unknown metric {named}; choose from "
            f"{', '.join(METRICS)}."
        )
    return list(dict.fromkeys(names))


# --- Generation metrics ------------------------------------------------------


def _check_lengths(predictions, references):
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} references."
        )


def sacrebleu_score(name: str, predictions, references):
    """`(score, signature)` of sacrebleu's corpus BLEU or chrF."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics import CHRF

    _check_lengths(predictions, references)
    metric = BLEU() if name == "bleu" else CHRF()
    result = metric.corpus_score(list(predictions), [list(references)])
    return float(result.score), str(metric.get_signature())


def rouge(predictions, references, types=("rouge1", "rouge2", "rougeLsum")):
    """Mean ROUGE F-measures × 100, by type."""
    from rouge_score import rouge_scorer

    _check_lengths(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True)
    totals = dict.fromkeys(types, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        # rougeLsum splits sentences on newlines.
        scores = scorer.score(reference, prediction)
        for kind in types:
            totals[kind] += scores[kind].fmeasure
    count = max(len(predictions), 1)
    return {kind: 100.0 * total / count for kind, total in totals.items()}


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's answer normalization: lower case, no punctuation, no
    articles (a, an, the), single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(predictions, references) -> float:
    """Share of predictions equal to their reference after
    `normalize_answer`, × 100."""
    _check_lengths(predictions, references)
    hits = sum(
        normalize_answer(p) == normalize_answer(r)
        for p, r in zip(predictions, references, strict=True)
    )
    return 100.0 * hits / max(len(predictions), 1)


def _token_f1(prediction: str, reference: str) -> float:
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(reference).split()
    if not predicted or not expected:  # both empty: a match
        return float(predicted == expected)
    common = collections.Counter(predicted) & collections.Counter(expected)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted)
    recall = overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def f1(predictions, references) -> float:
    """SQuAD v1.1 word-overlap F1, averaged over the examples, × 100."""
    _check_lengths(predictions, references)
    total = sum(
        _token_f1(p, r) for p, r in zip(predictions, references, strict=True)
    )
    return 100.0 * total / max(len(predictions), 1)


# --- Label metrics -----------------------------------------------------------


def accuracy(predictions, references) -> float:
    """Share of labels predicted right, × 100."""
    _check_lengths(predictions, references)
    hits = sum(p == r for p, r in zip(predictions, references, strict=True))
    return 100.0 * hits / max(len(predictions), 1)


def macro_f1(predictions, references) -> float:
    """Unweighted mean over the labels of the references and predictions
    of each label's F1, × 100 (a label never predicted nor expected does
    not count)."""
    _check_lengths(predictions, references)
    labels = sorted(set(references) | set(predictions))
    scores = []
    for label in labels:
        pairs = list(zip(predictions, references, strict=True))
        tp = sum(p == label and r == label for p, r in pairs)
        fp = sum(p == label and r != label for p, r in pairs)
        fn = sum(p != label and r == label for p, r in pairs)
        denominator = 2 * tp + fp + fn
        scores.append(2 * tp / denominator if denominator else 0.0)
    return 100.0 * sum(scores) / max(len(scores), 1)


def text_metrics(
    names: Sequence[str], predictions, references
) -> tuple[dict[str, float], dict[str, str]]:
    """The generation and label metrics among `names`.

    Returns:
        `(scores, signatures)`: name → value, and name → sacrebleu
        signature for `bleu` / `chrf`.
    """
    scores, signatures = {}, {}
    rouge_types = [n for n in names if n.startswith("rouge")]
    if rouge_types:
        scores.update(rouge(predictions, references, rouge_types))
    simple: dict[str, Callable] = {
        "exact_match": exact_match,
        "f1": f1,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
    }
    for name in names:
        if name in ("bleu", "chrf"):
            scores[name], signatures[name] = sacrebleu_score(
                name, predictions, references
            )
        elif name in simple:
            scores[name] = simple[name](predictions, references)
    return scores, signatures
