"""Run dirs written before the 2-D attention kernels still load, generate,
evaluate, resume, average and export, with the outputs they gave then.

`tests/legacy_run_dirs/` holds tiny T5, GPT-2 and Llama run dirs trained 4
steps when the attention kernels were `(D, H, K)` / `(H, K, D)` EinsumDense
ones (biases `(H, K)`); `expected.npz` and `expected.json` hold what that
code gave from them (see the folder's README.md). Today's kernels are
`(D, H*K)` / `(H*K, D)`: restoring reshapes the saved values (the
optimizer's slots too), so every number must come back unchanged.
"""

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from keras_llm.cli.main import cli

FOLDER = os.path.join(os.path.dirname(__file__), "legacy_run_dirs")
ARCHS = ("t5_tiny", "gpt2_tiny", "llama_tiny")
PROMPTS = ["The for statement", "import os"]
NEW_TOKENS = 8
EVAL_DATA = {  # file name → lines: pairs for T5, text for the causal LMs
    "t5_tiny": ("pairs.tsv", ["The for statement\tis used", "import os\tos"]),
    "gpt2_tiny": ("text.txt", ["The for statement is used.", "import os"]),
    "llama_tiny": ("text.txt", ["The for statement is used.", "import os"]),
}
RESUMED_STEPS = 6  # trained 4; resuming adds 2
ATOL = 1e-6


def _expected():
    with open(os.path.join(FOLDER, "expected.json")) as f:
        texts = json.load(f)
    arrays = dict(np.load(os.path.join(FOLDER, "expected.npz")))
    return texts, arrays


def copy_run_dir(arch, tmp_path):
    """A writable copy: the checked-in run dirs are never written to."""
    target = str(tmp_path / arch)
    shutil.copytree(os.path.join(FOLDER, arch), target)
    return target


def inputs(model):
    """Fixed token ids `(2, 6)` (the second row padded at the end) for every
    `*token_ids` input, ones and zeros for every `*padding_mask`."""
    ids = (np.arange(12).reshape(2, 6) * 7 + 3) % 200
    mask = np.ones((2, 6), bool)
    mask[1, -2:] = False
    return {
        name: ids.astype("int32") if name.endswith("token_ids") else mask
        for name in model.input
    }


def logits(model):
    """The logits of `inputs` over the first 64 ids (a wrong weight moves
    them all; the whole vocabulary would only make the file bigger)."""
    return np.asarray(model(inputs(model)), np.float32)[..., :64]


def kllm(*args):
    result = CliRunner().invoke(cli, [*map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


def evaluate(arch, run_dir, tmp_path):
    """`kllm evaluate`'s results: `{metric: value}`."""
    name, lines = EVAL_DATA[arch]
    data, out = tmp_path / f"{arch}_{name}", tmp_path / f"{arch}_eval.json"
    data.write_text("\n".join(lines) + "\n")
    metrics = "loss,bleu" if arch == "t5_tiny" else "loss,perplexity"
    kllm(
        "evaluate", run_dir, "--data", data, "--metrics", metrics,
        "--max-new-tokens", 4, "--out", out,
    )  # fmt: skip
    with open(out) as f:
        return json.load(f)["metrics"]


def observe_load(arch, run_dir, tmp_path):
    """What a legacy run dir gives without training: logits of the best
    and the latest checkpoint, greedy texts (library and CLI), evaluate."""
    import keras_llm

    best = keras_llm.load(run_dir)
    latest = keras_llm.load(run_dir, checkpoint="latest")
    return {
        "max_rank": max(len(w.shape) for w in best.weights),
        "best_logits": logits(best),
        "latest_logits": logits(latest),
        "generated": best.generate(PROMPTS, max_new_tokens=NEW_TOKENS),
        "cli_generate": kllm(
            "generate", run_dir, *PROMPTS, "--max-new-tokens", NEW_TOKENS
        ),
        "evaluate": evaluate(arch, run_dir, tmp_path),
    }


def observe_resume(run_dir, tmp_path):
    """Resumes a copy for two more steps (keeping both checkpoints), then
    averages the old one and the new one: the new losses and the logits of
    both results."""
    import keras_llm

    kllm(
        "train", os.path.join(run_dir, "config.yaml"),
        f"--set=train.train_steps={RESUMED_STEPS}",
        "--set=train.max_checkpoints_to_keep=2",
    )  # fmt: skip
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    losses = [(row["step"], row["loss"]) for row in rows if "loss" in row]
    averaged = str(tmp_path / "averaged")
    kllm("average", run_dir, "--steps", f"4,{RESUMED_STEPS}", "--out", averaged)
    resumed = keras_llm.load(run_dir, checkpoint="latest")
    return {
        "losses": [loss for step, loss in losses if step > 4],
        "resumed_logits": logits(resumed),
        "averaged_logits": logits(keras_llm.load(averaged)),
    }


@pytest.mark.parametrize("arch", ARCHS)
def test_legacy_run_dir_loads_generates_and_evaluates(arch, tmp_path):
    texts, arrays = _expected()
    run_dir = copy_run_dir(arch, tmp_path)
    seen = observe_load(arch, run_dir, tmp_path)
    assert seen["max_rank"] == 2  # today's kernels, from (D, H, K) ones
    for key in ("best_logits", "latest_logits"):  # the same step
        np.testing.assert_allclose(
            seen[key], arrays[f"{arch}/loaded"], atol=ATOL, rtol=0, err_msg=key
        )
    for key in ("generated", "cli_generate"):
        assert seen[key] == texts[arch][key], key
    expected = texts[arch]["evaluate"]
    assert seen["evaluate"].keys() == expected.keys()
    for metric, value in expected.items():
        np.testing.assert_allclose(
            seen["evaluate"][metric], value, rtol=1e-6, atol=ATOL
        )


@pytest.mark.large
@pytest.mark.parametrize("arch", ARCHS)
def test_legacy_run_dir_resumes_and_averages(arch, tmp_path):
    texts, arrays = _expected()
    run_dir = copy_run_dir(arch, tmp_path)
    seen = observe_resume(run_dir, tmp_path)
    np.testing.assert_allclose(
        seen["losses"], texts[arch]["losses"], atol=ATOL, rtol=0
    )
    for key in ("resumed", "averaged"):
        np.testing.assert_allclose(
            seen[f"{key}_logits"], arrays[f"{arch}/{key}"], atol=ATOL, rtol=0,
            err_msg=key,
        )  # fmt: skip


@pytest.mark.large
def test_legacy_run_dir_exports(tmp_path):
    import tensorflow as tf

    texts, _ = _expected()
    run_dir = copy_run_dir("gpt2_tiny", tmp_path)
    out = tmp_path / "models"
    kllm(
        "export", run_dir, "--out", out, "--name", "legacy",
        "--max-new-tokens", NEW_TOKENS,
    )  # fmt: skip
    served = tf.saved_model.load(str(out / "legacy" / "1"))
    outputs = served.signatures["serving_default"](inputs=tf.constant(PROMPTS))[
        "outputs"
    ]
    decoded = [text.decode("utf-8") for text in outputs.numpy()]
    assert decoded == texts["gpt2_tiny"]["generated"]
