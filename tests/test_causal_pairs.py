"""causal_lm on prompt/completion pairs: training's examples hold the
prompt exactly as `generate` builds it, then the completion and EOS, with
the loss on the completion (and on the prompt with data.loss_on_prompt)."""

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import keras_llm
from keras_llm import config as config_lib
from keras_llm.cli.main import cli
from keras_llm.data import pipeline
from keras_llm.data import sources

PAIRS = [
    ("The for loop", " iterates over a sequence."),
    ("", "An empty prompt starts from BOS."),
    ("Python's while statement", " repeats while true."),
    ("a " * 40, " cut from the left."),  # longer than sequence_length
]


@pytest.fixture(scope="module")
def gpt2(tiny_run_dir):
    """gpt2_tiny with random weights, loaded once."""
    return keras_llm.load(tiny_run_dir("gpt2_tiny"))


def pair_examples(lm, tmp_path, *sets):
    """The validation examples (unshuffled, in file order) that training
    makes of PAIRS, and the run's input format."""
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{p}\t{c}\n" for p, c in PAIRS))
    cfg = config_lib.load_config(
        "gpt2_tiny",
        overrides=[
            "data.source=files",
            f"data.train_files={path}",
            f"data.validation_files={path}",
            "data.sequence_length=24",
            *sets,
        ],
    )
    splits = sources.load_splits(cfg.data)
    plan = pipeline.resolve_plan(cfg.data, cfg.model, pairs=True)
    # As training.state builds it.
    fmt = lm.input_format.from_data_config(lm.tokenizer, cfg.data)
    _, validation = pipeline.build_datasets(
        cfg.data, fmt, plan, batch_size=1, seed=0, splits=splits
    )
    examples = [
        tf.nest.map_structure(lambda t: t.numpy()[0], batch)
        for batch in validation
    ]
    return plan, lm, examples


def whole_sequence(features, labels):
    """The ids an example was cut from: the inputs and the last label."""
    n = int(features["padding_mask"].sum())
    return list(features["token_ids"][:n]) + [int(labels[n - 1])], n


def test_training_prompt_is_the_prompt_generate_builds(gpt2, tmp_path):
    plan, lm, examples = pair_examples(gpt2, tmp_path)
    assert plan.objective == "causal_lm" and plan.pairs
    assert len(examples) == len(PAIRS)
    tokenizer = lm.tokenizer
    generate_format = lm.make_format()  # what lm.generate uses
    for (prompt, completion), (features, labels, weights) in zip(
        PAIRS, examples
    ):
        ids, n = whole_sequence(features, labels)
        target = list(tokenizer.tokenize([completion])[0].numpy())
        target.append(tokenizer.eos_id)
        # Prompt ids as generate builds them (max_new_tokens=0: the whole
        # length for the prompt), the end kept as training keeps it.
        prompt_ids = list(generate_format.prompt_ids([prompt])[0].numpy())
        expected = (prompt_ids + target)[-(24 + 1) :]
        assert ids == expected, prompt
        # The loss on the completion and EOS only.
        counted = [i + 1 for i in range(n) if weights[i]]
        assert counted == list(range(len(ids) - len(target), len(ids)))
        assert weights[n:].sum() == 0
    # The empty prompt is the start id, as in generation.
    start = examples[1][0]["token_ids"][0]
    assert start == (tokenizer.bos_id or tokenizer.eos_id)


def test_loss_on_prompt_counts_every_label(gpt2, tmp_path):
    _, _, examples = pair_examples(gpt2, tmp_path, "data.loss_on_prompt=true")
    for features, _, weights in examples:
        np.testing.assert_array_equal(weights, features["padding_mask"])


def test_objective_auto_on_pairs_is_causal_lm_for_a_decoder():
    raw = {
        "model": {"arch": "gpt2", "vocabulary_size": 8},
        "data": {"source": "files", "train_files": "pairs.tsv"},
    }
    cfg = config_lib.config_from_dict(raw)
    assert config_lib.objective_of(cfg) == "causal_lm"
    plan = pipeline.resolve_plan(cfg.data, cfg.model, pairs=True)
    assert (plan.objective, plan.pairs) == ("causal_lm", True)
    raw["data"]["objective"] = "seq2seq"
    with pytest.raises(config_lib.ConfigError, match="does not fit arch"):
        config_lib.config_from_dict(raw)


@pytest.mark.large
def test_trained_on_one_pair_generates_its_completion(tmp_path):
    """Training's prompt and generate's agree: a model that memorized one
    pair completes its prompt and stops at EOS."""
    path = tmp_path / "pairs.tsv"
    path.write_text("print the answer:\t forty two\n" * 64)
    run_dir = str(tmp_path / "run")
    result = CliRunner().invoke(
        cli,
        [
            "train", "gpt2_tiny", "--run-dir", run_dir,
            "--set", "data.source=files",
            "--set", f"data.train_files={path}",
            "--set", f"data.validation_files={path}",
            "--set", "data.sequence_length=48",
            "--set", "model.vocabulary_size=64",
            "--set", "train.train_steps=40",
            "--set", "train.eval_interval_steps=40",
            "--set", "train.learning_rate=1.0e-2",
            "--set", "runtime.jit_compile=false",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lm = keras_llm.load(run_dir)
    completion = lm.tokenizer.detokenize(lm.tokenizer.tokenize([" forty two"]))
    (output,) = lm.generate(
        ["print the answer:"], max_new_tokens=12, jit_compile=False
    )
    assert output == completion.numpy()[0].decode()  # then EOS
