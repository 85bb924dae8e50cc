"""BERT classification (kind `classifier`): the task contract, the input
format, training through `kllm train` on labelled TSV, generate, evaluate,
the export served from strings, train.init_checkpoint, and bad input."""

import json
import os
import random

import numpy as np
import pytest
from click.testing import CliRunner

import keras_llm
from keras_llm import kinds
from keras_llm.cli.main import cli
from keras_llm.evaluation import metrics
from keras_llm.models import BertBackbone
from keras_llm.models import BertClassifier
from tests import helpers

ENGLISH = (
    "the house is big small dog cat runs eats water green my friend we they "
    "good day night book red"
).split()
SPANISH = (
    "la casa es grande pequeña perro gato corre come agua verde mi amigo "
    "nosotros ellos buen día noche libro rojo"
).split()
# Small enough for a CPU test: 16-token inputs, a 128-id vocabulary.
TRAIN = [
    "data.source=files",
    "data.sequence_length=16",
    "model.vocabulary_size=128",
    "train.train_steps=40",
    "train.eval_interval_steps=40",
    "train.checkpoint_interval_steps=40",
    "runtime.jit_compile=false",  # compiling takes longer than 40 steps
]


def labelled_lines(count, seed):
    """`text<TAB>label` lines: random English or Spanish words."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        label = rng.choice(["en", "es"])
        words = ENGLISH if label == "en" else SPANISH
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))
        lines.append(f"{text}\t{label}")
    return lines


def invoke(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def train_args(run_dir, train_file, *sets):
    args = ["train", "bert_tiny_classifier", "--run-dir", run_dir]
    for value in [*TRAIN, f"data.train_files={train_file}", *sets]:
        args += ["--set", value]
    return args


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """`(run_dir, test_file)`: zoo/bert_tiny_classifier with random
    weights (seed 0), labels en and es, and a labelled test file."""
    base = tmp_path_factory.mktemp("random_classifier")
    run_dir = helpers.make_run_dir(str(base / "run"), "bert_tiny_classifier")
    with open(os.path.join(run_dir, "labels.json"), "w") as f:
        json.dump(["en", "es"], f)
    test_file = base / "test.tsv"
    test_file.write_text("\n".join(labelled_lines(40, 1)) + "\n")
    return run_dir, str(test_file)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A classifier trained 40 steps on English vs Spanish lines."""
    base = tmp_path_factory.mktemp("classifier")
    train_file, test_file = base / "train.tsv", base / "test.tsv"
    train_file.write_text("\n".join(labelled_lines(240, 0)) + "\n")
    test_file.write_text("\n".join(labelled_lines(60, 1)) + "\n")
    run_dir = str(base / "run")
    result = invoke(*train_args(run_dir, train_file))
    assert result.exit_code == 0, result.output
    return run_dir, str(test_file)


def test_bert_classifier_task_contract(tmp_path):
    init = dict(
        vocabulary_size=40,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        dropout=0.0,
        max_sequence_length=16,
    )
    rng = np.random.default_rng(0)
    inputs = {
        "token_ids": rng.integers(1, 40, (3, 8)).astype("int32"),
        "padding_mask": np.array([[1] * 8, [1] * 5 + [0] * 3, [1] * 8]),
        "segment_ids": np.zeros((3, 8), "int32"),
    }
    inputs["padding_mask"] = inputs["padding_mask"].astype("int32")
    model = helpers.check_task(
        BertClassifier,
        BertBackbone,
        init,
        inputs,
        tmp_path,
        task_kwargs={"num_labels": 3},
    )
    assert model.kind == kinds.CLASSIFIER
    config = model.get_config()
    assert config["num_labels"] == 3
    assert config["dropout"] == 0.0  # None: the backbone's rate
    # The head reads the pooled [CLS] output: later tokens still matter,
    # through attention, but padding does not.
    padded = dict(inputs, token_ids=inputs["token_ids"].copy())
    padded["token_ids"][1, 5:] = 7
    np.testing.assert_allclose(model(padded)[1], model(inputs)[1], atol=1e-5)


def test_classifier_format_ids_labels_and_features(tiny_run_dir):
    from keras_llm import rundir
    from keras_llm.data import formats

    tokenizer = rundir.load_tokenizer(tiny_run_dir("bert_tiny"))
    fmt = formats.ClassifierFormat(
        tokenizer, sequence_length=8, labels=("en", "es")
    )
    ids = fmt.label_ids(["es", "en", "fr", ""]).numpy()
    np.testing.assert_array_equal(ids, [1, 0, -1, -1])
    features, labels, weights = fmt.pair_examples(
        ["the for loop", "a"], ["en", "es"], static=True
    )
    masked = formats.MaskedFormat(tokenizer, sequence_length=8)
    expected = masked.features(masked.prompt_ids(["the for loop", "a"]), 8)
    for key, value in expected.items():
        np.testing.assert_array_equal(features[key], value)
    np.testing.assert_array_equal(labels, [0, 1])
    np.testing.assert_array_equal(weights, [1.0, 1.0])


@pytest.mark.large
def test_training_learns_the_labels(trained):
    run_dir, test_file = trained
    with open(os.path.join(run_dir, "labels.json")) as f:
        assert json.load(f) == ["en", "es"]
    with open(os.path.join(run_dir, "run_info.json")) as f:
        assert json.load(f)["objective"] == "classification"
    clf = keras_llm.load(run_dir)
    assert isinstance(clf, BertClassifier) and clf.labels == ["en", "es"]
    with open(test_file) as f:
        texts, labels = zip(*(line.rstrip("\n").split("\t") for line in f))
    predicted = clf.predict_labels(list(texts))
    accuracy = np.mean([p == t for p, t in zip(predicted, labels)])
    majority = max(labels.count("en"), labels.count("es")) / len(labels)
    assert accuracy > majority + 0.2, (accuracy, majority)
    # The zoo config logs val_accuracy (train.eval_metrics: [accuracy]):
    # the final model's accuracy on the validation split, in percent.
    from keras_llm.data import sources

    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        logged = [json.loads(line) for line in f]
    last = [row for row in logged if "val_accuracy" in row][-1]
    assert last["step"] == 40
    _, validation = sources.load_splits(clf.config.data)
    rows = list(validation.as_numpy_iterator())
    texts = [row["inputs"].decode() for row in rows]
    labels = [row["targets"].decode() for row in rows]
    expected = 100 * np.mean(
        [p == t for p, t in zip(clf.predict_labels(texts), labels)]
    )
    assert last["val_accuracy"] == pytest.approx(expected)


def test_generate_prints_labels_and_scores(classifier):
    run_dir, _ = classifier
    texts = ["the dog eats", "el perro come agua", ""]
    clf = keras_llm.load(run_dir)
    labels, scores = clf.classify(texts)
    assert clf.generate(texts) == labels == clf.predict_labels(texts)
    assert scores.shape == (3, 2) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5)
    assert set(labels) <= {"en", "es"}

    result = invoke("generate", run_dir, *texts)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == labels
    result = invoke("generate", run_dir, *texts, "--scores")
    assert result.exit_code == 0, result.output
    for line, label, row in zip(result.stdout.splitlines(), labels, scores):
        shown, probabilities = line.split("\t")
        assert shown == label
        assert probabilities == f"en={row[0]:.4f} es={row[1]:.4f}"
    result = invoke("generate", run_dir, texts[0], "--scores", "--jsonl")
    record = json.loads(result.stdout)
    assert record["output"] == labels[0]
    np.testing.assert_allclose(
        [record["scores"]["en"], record["scores"]["es"]], scores[0], rtol=1e-5
    )
    with pytest.raises(ValueError, match="is a classifier"):
        clf.score(["a"], ["b"])


def test_scores_flag_is_for_classifiers(tiny_run_dir):
    result = invoke("generate", tiny_run_dir("bert_tiny"), "a", "--scores")
    assert result.exit_code == 2
    assert "--scores applies to classifier run dirs" in result.output


def test_evaluate_accuracy_equals_a_direct_computation(classifier, tmp_path):
    run_dir, test_file = classifier
    predictions = tmp_path / "predictions.txt"
    result = invoke(
        "evaluate", run_dir, "--data", test_file,
        "--metrics", "accuracy,macro_f1", "--predictions", predictions,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = dict(
        line.split(": ") for line in result.stdout.splitlines()[:2]
    )  # "accuracy: 98.3333"
    with open(test_file) as f:
        texts, labels = zip(*(line.rstrip("\n").split("\t") for line in f))
    predicted = keras_llm.load(run_dir).predict_labels(list(texts))
    assert predictions.read_text().splitlines() == predicted
    hits = sum(p == t for p, t in zip(predicted, labels))
    assert float(shown["accuracy"]) == pytest.approx(
        100 * hits / len(labels), abs=1e-4
    )
    assert float(shown["macro_f1"]) == pytest.approx(
        metrics.macro_f1(predicted, list(labels)), abs=1e-4
    )
    # accuracy is the default for labelled data
    result = invoke("evaluate", run_dir, "--data", test_file)
    assert result.stdout.splitlines()[0] == f"accuracy: {shown['accuracy']}"


def test_evaluate_refuses_unseen_labels_and_text_metrics(classifier, tmp_path):
    run_dir, _ = classifier
    data = tmp_path / "test.tsv"
    data.write_text("the dog\ten\nel gato\tfr\n")
    result = invoke("evaluate", run_dir, "--data", data)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: {data}:2: label 'fr' is not one the model was trained on "
        "['en', 'es']; fix the label or drop the line."
    )
    data.write_text("the dog\ten\nno label here\n")
    result = invoke("evaluate", run_dir, "--data", data)
    assert result.stderr.splitlines() == [
        f"Error: {data}:2: no TAB; a classifier's .tsv test file has "
        "text<TAB>label on every line."
    ]
    data.write_text("the dog\ten\n")
    result = invoke("evaluate", run_dir, "--data", data, "--metrics", "bleu")
    assert result.exit_code == 1
    assert "is a classifier: it predicts labels" in result.stderr


@pytest.mark.large
def test_export_serves_labels_from_strings(trained, tmp_path):
    from tests.test_export import session_run

    run_dir, _ = trained
    out = tmp_path / "models"
    result = invoke("export", run_dir, "--out", out, "--name", "clf")
    assert result.exit_code == 0, result.output
    export_dir = str(out / "clf" / "1")
    texts = ["the dog eats", "el perro come agua", "", "x" * 500]
    reply = session_run(
        export_dir,
        [{"signature": "serving_default", "inputs": {"inputs": texts}}],
        tmp_path,
    )  # a fresh process that imports tensorflow and tensorflow_text only
    (served,) = reply["results"]
    labels, scores = keras_llm.load(run_dir).classify(texts)
    assert served["label"] == labels
    np.testing.assert_allclose(served["scores"], scores, atol=1e-5)
    ops = set(reply["ops"])
    assert ops <= set(reply["core_ops"]) | set(reply["text_ops"])
    assert reply["xla_functions"] == []
    metadata = os.path.join(export_dir, "assets.extra", "keras_llm_export.json")
    with open(metadata) as f:
        assert json.load(f)["labels"] == ["en", "es"]


def test_init_weights_are_the_backbone_of_a_masked_lm(tiny_run_dir):
    from keras_llm import config as config_lib
    from keras_llm.models import build_model
    from keras_llm.training import init as init_lib

    source = tiny_run_dir("bert_tiny")
    cfg = config_lib.load_config(
        "bert_tiny_classifier", overrides=[f"train.init_checkpoint={source}"]
    )
    init_lib.check(cfg)
    assert init_lib.tokenizer_dir(cfg) == os.path.join(source, "tokenizer")
    clf = build_model(cfg.model, kind=kinds.CLASSIFIER, num_labels=3)
    head = [w.numpy().copy() for w in clf.output_dense.weights]
    init_lib.load_weights(cfg, clf)
    masked = keras_llm.load(source)
    for ours, theirs in zip(
        clf.backbone.get_weights(), masked.backbone.get_weights()
    ):
        np.testing.assert_array_equal(ours, theirs)
    for before, after in zip(head, clf.output_dense.weights):
        np.testing.assert_array_equal(before, after.numpy())  # fresh


@pytest.mark.large
def test_init_checkpoint_loads_the_backbone_and_tokenizer(
    tiny_run_dir, tmp_path
):
    """A classifier started from a BERT masked-LM run dir: its backbone
    and tokenizer, a fresh head (keras-hub's from_preset(num_classes=))."""
    source = tiny_run_dir("bert_tiny")
    train_file = tmp_path / "train.tsv"
    train_file.write_text("\n".join(labelled_lines(64, 2)) + "\n")
    run_dir = str(tmp_path / "run")
    args = train_args(run_dir, train_file, "train.train_steps=1")
    args += ["--set", "model.vocabulary_size=512"]  # bert_tiny's
    args += ["--set", f"train.init_checkpoint={source}"]
    args += ["--set", "train.learning_rate=1.0e-12"]  # weights stay put
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert (
        f"Starting from the backbone weights of {source} ({source}/"
        "checkpoints/ckpt-0); BertClassifier's own layers start fresh."
    ) in result.output
    with open(os.path.join(source, "tokenizer", "vocab.txt")) as f:
        vocabulary = f.read()
    with open(os.path.join(run_dir, "tokenizer", "vocab.txt")) as f:
        assert f.read() == vocabulary
    clf, masked = keras_llm.load(run_dir), keras_llm.load(source)
    for ours, theirs in zip(
        clf.backbone.get_weights(), masked.backbone.get_weights()
    ):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_init_checkpoint_of_another_model_is_one_line(tiny_run_dir, tmp_path):
    source = tiny_run_dir("bert_tiny")
    train_file = tmp_path / "train.tsv"
    train_file.write_text("\n".join(labelled_lines(32, 3)) + "\n")
    run_dir = tmp_path / "run"
    args = train_args(run_dir, train_file)  # vocabulary 128, not 512
    result = invoke(*args, "--set", f"train.init_checkpoint={source}")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: train.init_checkpoint: {source} holds another model "
        "(model.vocabulary_size 128 vs 512); set the model section as in "
        f"{source}/config.yaml."
    )
    assert result.stderr.count("Error") == 1
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "lines, sets, message",
    [
        (
            ["the dog\ten", "no label here", "el gato\tes"],
            [],
            "{train}:2: no TAB; a classification .tsv has text<TAB>label "
            "on every line.",
        ),
        (
            ["the dog\ten", "el gato\t  "],
            [],
            "{train}:2: the label is empty; give every line a label "
            "(text<TAB>label).",
        ),
        (
            ["the dog\ten", "the cat\ten"],
            [],
            "data.train_files: the training files hold 1 label (['en']); a "
            "classifier needs examples of at least two.",
        ),
        (
            ["the dog\ten", "el gato\tes"],
            ["data.validation_files={validation}"],
            "{validation}:2: label 'fr' is not among the training labels "
            "['en', 'es'] (data.train_files); fix the label or add examples "
            "of it to the training files.",
        ),
    ],
    ids=["no_tab", "empty_label", "one_label", "unseen_label"],
)
def test_bad_labelled_data_is_one_line_and_writes_nothing(
    tmp_path, lines, sets, message
):
    train = tmp_path / "train.tsv"
    train.write_text("\n".join(lines) + "\n")
    validation = tmp_path / "validation.tsv"
    validation.write_text("the dog\ten\nle chat\tfr\n")
    run_dir = tmp_path / "run"
    sets = [s.format(validation=validation) for s in sets]
    result = invoke(*train_args(run_dir, train, *sets))
    assert result.exit_code == 1, result.output
    expected = message.format(train=train, validation=validation)
    assert result.stderr.splitlines()[-1] == f"Error: {expected}"
    assert result.stderr.count("Error") == 1
    assert not run_dir.exists()


def test_classification_needs_bert_and_labelled_files(tmp_path):
    run_dir = tmp_path / "run"
    result = invoke(
        "train", "gpt2_tiny", "--run-dir", run_dir,
        "--set", "data.objective=classification",
        "--set", "data.source=files", "--set", "data.train_files=a.tsv",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert (
        "data.objective: 'classification' does not fit arch 'gpt2' (it "
        "needs one of ['bert']; arch 'gpt2' takes auto, causal_lm)"
    ) in result.stderr
    result = invoke(
        "validate", "bert_tiny_classifier",
        "--set", "data.train_files=train.txt",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "data.train_files: objective classification reads .tsv" in (
        result.stderr
    )
    assert not run_dir.exists()


def test_jsonl_labels_are_read_by_label_field(tmp_path):
    from keras_llm import config as config_lib
    from keras_llm.data import sources

    path = tmp_path / "train.jsonl"
    records = [
        {"text": "the dog", "lang": "en"},
        {"text": "el gato", "lang": "es"},
        {"text": "la casa", "lang": "es"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = config_lib.load_config(
        "bert_tiny_classifier",
        overrides=[
            f"data.train_files={path}",
            "data.label_field=lang",
            "data.validation_fraction=0.0",
        ],
    )
    assert sources.training_labels(cfg.data) == ["en", "es"]
    train, _ = sources.load_splits(cfg.data)
    assert [
        (e["inputs"].decode(), e["targets"].decode())
        for e in train.as_numpy_iterator()
    ] == [("the dog", "en"), ("el gato", "es"), ("la casa", "es")]
    path.write_text(json.dumps({"text": "the dog", "label": "en"}) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl:1: no field 'lang'"):
        sources.training_labels(cfg.data)


@pytest.mark.parametrize(
    "command, target",
    [("to-hf", "Hugging Face"), ("to-keras-hub", "keras-hub")],
)
def test_converting_a_classifier_out_is_refused_in_one_line(
    classifier, tmp_path, command, target
):
    run_dir, _ = classifier
    out = tmp_path / "out"
    result = invoke("convert", command, run_dir, "--out", out)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: {run_dir}/config.yaml: a classifier run (data.objective: "
        f"classification) is not converted to {target} yet; kllm convert "
        f"{command} writes the arch's masked model."
    ]
    assert not out.exists()
