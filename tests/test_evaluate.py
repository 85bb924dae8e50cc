"""`kllm evaluate` and its metrics."""

import json
import math

import numpy as np
import pytest
import sacrebleu
from click.testing import CliRunner

import keras_llm
from keras_llm.cli.main import cli
from keras_llm.evaluation import metrics

# --- Metrics against hand-worked values --------------------------------------


@pytest.mark.parametrize(
    "prediction, reference, em, f1",
    [
        # SQuAD normalization: case, punctuation, articles, spaces.
        ("The Eiffel Tower!", "eiffel   tower", 100.0, 100.0),
        # 2 common words; precision 2/3, recall 2/2 → F1 = 0.8.
        ("in Paris France", "Paris France", 0.0, 80.0),
        # "a" and "the" go, "cat" is common: P = 1/2, R = 1/1 → 2/3.
        ("a black cat", "the cat", 0.0, 200 / 3),
        ("", "", 100.0, 100.0),
        ("something", "", 0.0, 0.0),
    ],
)
def test_squad_exact_match_and_f1_by_hand(prediction, reference, em, f1):
    assert metrics.exact_match([prediction], [reference]) == em
    assert metrics.f1([prediction], [reference]) == pytest.approx(f1)


def test_label_metrics_by_hand():
    predictions = ["a", "a", "b", "b", "c"]
    references = ["a", "b", "b", "b", "a"]
    assert metrics.accuracy(predictions, references) == 60.0
    # a: tp 1, fp 1, fn 1 → 0.5; b: tp 2, fn 1 → 0.8; c: fp 1 → 0.
    expected = 100 * (0.5 + 0.8 + 0.0) / 3
    assert metrics.macro_f1(predictions, references) == pytest.approx(expected)


def test_text_metrics_agree_with_their_libraries():
    predictions = ["the cat sat down", "a dog barked", ""]
    references = ["the cat sat", "the dog barked loudly", "nothing"]
    scores, signatures = metrics.text_metrics(
        ["bleu", "chrf", "rouge1", "rouge2"], predictions, references
    )
    assert (
        scores["bleu"] == sacrebleu.corpus_bleu(predictions, [references]).score
    )
    assert (
        scores["chrf"] == sacrebleu.corpus_chrf(predictions, [references]).score
    )
    assert signatures["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    # ROUGE-1 F by hand: 3/4 and 3/3 → 6/7; 2/3 and 2/4 → 4/7; 0.
    assert scores["rouge1"] == pytest.approx(100 * (6 / 7 + 4 / 7 + 0) / 3)
    # ROUGE-2: 2/3 and 2/2 → 0.8; "dog barked" 1/2 and 1/3 → 0.4; 0.
    assert scores["rouge2"] == pytest.approx(100 * (0.8 + 0.4) / 3)
    assert metrics.text_metrics(["bleu"], references, references)[0] == {
        "bleu": pytest.approx(100.0)
    }


def test_unknown_metric_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown metric 'blue'; choose from"):
        metrics.parse_metrics("bleu,blue")


# --- The command ------------------------------------------------------------


def _kllm(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


PAIRS = [
    ("The for statement", "La declaración for"),
    ("", ""),  # a blank line is an example too
    ("word " * 300, "long input, cut to data.sequence_length"),
    ("Hello world", "Hola mundo"),
]


def test_pairs_end_to_end(tiny_run_dir, tmp_path):
    run_dir = tiny_run_dir("t5_tiny")
    data = tmp_path / "test.tsv"
    data.write_text(
        "".join(f"{a}\t{b}\n" for a, b in PAIRS).replace("\t\n", "\n", 1)
    )
    out, preds = tmp_path / "results.json", tmp_path / "preds.txt"
    result = _kllm(
        "evaluate", run_dir, "--data", data, "--no-xla",
        "--metrics", "bleu,chrf,rougeLsum,exact_match,f1,perplexity",
        "--max-new-tokens", "6", "--out", out, "--predictions", preds,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = preds.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(PAIRS)
    predictions = lines[:-1]
    report = json.loads(out.read_text())
    targets = [b for _, b in PAIRS]
    assert report["examples"] == len(PAIRS)
    assert report["metrics"]["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(predictions, [targets]).score
    )
    assert report["metrics"]["exact_match"] == pytest.approx(
        metrics.exact_match(predictions, targets)
    )
    assert report["checkpoint"]["step"] == 0
    assert report["checkpoint"]["which"] == "latest (step 0)"
    assert report["decoding"]["max_new_tokens"] == 6
    assert set(report["versions"]) >= {"tensorflow", "sacrebleu", "keras_llm"}
    assert list(report["metrics"]) == [
        "bleu", "chrf", "rougeLsum", "exact_match", "f1", "perplexity"
    ]  # fmt: skip
    assert "bleu signature: nrefs:1" in result.output
    # The predictions are what kllm generate gives for the same inputs.
    lm = keras_llm.load(run_dir)
    assert predictions == lm.generate(
        [a for a, _ in PAIRS], max_new_tokens=6, jit_compile=False
    )
    # Perplexity: exp of the mean NLL over the target tokens (EOS too),
    # each target cut to data.target_sequence_length as in training.
    scores = lm.score([a for a, _ in PAIRS], targets)
    limit = lm.config.data.target_sequence_length
    tokens = sum(
        min(len(ids) + 1, limit)
        for ids in lm.tokenizer.tokenize(targets).to_list()
    )
    assert "1 of 4 targets are longer than the run's data lengths" in (
        result.output
    )
    assert report["tokens"] == tokens
    assert report["metrics"]["perplexity"] == pytest.approx(
        math.exp(-scores.sum() / tokens), rel=1e-5
    )


def test_cut_prompts_are_counted_once_and_progress_starts_at_zero(
    tiny_run_dir, tmp_path
):
    # 10 examples in batches of 1: three chunks of generation, one warning.
    data = tmp_path / "test.tsv"
    data.write_text("".join(f"{'word ' * 100}{i}\tx\n" for i in range(10)))
    out = tmp_path / "results.json"
    run_dir = tiny_run_dir("t5_tiny")
    result = _kllm(
        "evaluate", run_dir, "--data", data, "--no-xla", "--metrics", "chrf",
        "--batch-size", "1", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # Without --max-new-tokens, outputs may be as long as training's targets.
    length = keras_llm.load(run_dir).config.data.target_sequence_length
    assert json.loads(out.read_text())["decoding"]["max_new_tokens"] == length
    cut = [line for line in result.stderr.splitlines() if "longer" in line]
    assert cut == [
        "10 of 10 prompts were longer than the model's input (64 tokens) "
        "and were cut, keeping the start."
    ]
    progress = [
        line.split(",")[0]
        for line in result.stderr.splitlines()
        if line.startswith("generating")
    ]
    assert progress == [
        "generating 0/10 examples",
        "generating 4/10 examples",
        "generating 8/10 examples",
        "generating 10/10 examples",
    ]


def test_text_perplexity_equals_a_direct_computation(tiny_run_dir, tmp_path):
    run_dir = tiny_run_dir("gpt2_tiny")
    texts = ["The for statement is used to iterate.", "x = 1"]
    data = tmp_path / "held_out.txt"
    data.write_text("\n".join(texts) + "\n")
    result = _kllm("evaluate", run_dir, "--data", data)  # default: perplexity
    assert result.exit_code == 0, result.output
    reported = float(result.output.split("perplexity: ")[1].split()[0])
    lm = keras_llm.load(run_dir)
    nll, count = 0.0, 0
    for text in texts:  # the start id, then the text's ids, unpadded
        ids = [lm.tokenizer.eos_id] + lm.tokenizer.tokenize([text]).to_list()[0]
        logits = np.asarray(
            lm(
                {
                    "token_ids": np.array([ids]),
                    "padding_mask": np.ones((1, len(ids))),
                }
            )
        )[0].astype(np.float64)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll -= sum(log_probs[i, ids[i + 1]] for i in range(len(ids) - 1))
        count += len(ids) - 1
    assert reported == pytest.approx(math.exp(nll / count), rel=1e-3)


@pytest.mark.parametrize(
    "name, content, args, message",
    [
        (
            "test.tsv",
            "a\tb\n",
            ["--metrics", "bleu,blue"],
            "unknown metric 'blue'",
        ),
        ("test.tsv", "a\tb\nno tab here\n", [], "test.tsv:2: no TAB"),
        ("test.txt", "text\n", ["--metrics", "bleu"], "has no targets"),
        (
            "test.tsv",
            "a\tb\n",
            ["--checkpoint", "7"],
            "No checkpoint of step 7",
        ),
        (
            "test.tsv",
            "a\tb\n",
            ["--metrics", "accuracy"],
            "scores a classifier",
        ),
        ("missing.tsv", None, [], "missing.tsv does not exist"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tiny_run_dir, tmp_path, name, content, args, message
):
    run_dir = tiny_run_dir("t5_tiny")
    data = tmp_path / name
    if content is not None:
        data.write_text(content)
    out = tmp_path / "results.json"
    result = _kllm("evaluate", run_dir, "--data", data, "--out", out, *args)
    assert result.exit_code in (1, 2), result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_python_api_takes_decoding_options(tiny_run_dir, tmp_path):
    from keras_llm import evaluation

    data = tmp_path / "test.tsv"
    data.write_text("Hello world\tHola mundo\nThe for\tLa for\n")
    lm = keras_llm.load(tiny_run_dir("t5_tiny"))
    results = evaluation.evaluate(
        lm,
        evaluation.read_data(str(data), lm.config.data),
        ["chrf"],
        jit_compile=False,
        num_beams=2,
        max_new_tokens=3,
    )
    assert results["decoding"]["num_beams"] == 2
    assert results["predictions"] == lm.generate(
        ["Hello world", "The for"], num_beams=2, max_new_tokens=3,
        jit_compile=False,
    )  # fmt: skip
    assert results["metrics"]["chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(
            results["predictions"], [["Hola mundo", "La for"]]
        ).score
    )
