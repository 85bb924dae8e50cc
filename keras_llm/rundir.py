"""The run directory: the one artifact format of keras_llm.

```
RUN_DIR/
  config.yaml      resolved ExperimentConfig; `kllm train RUN_DIR/config.yaml`
                   reproduces the run
  tokenizer/       SentencePiece model, WordPiece vocab or BPE vocab+merges
  checkpoints/     tf.train.CheckpointManager: model (+ optimizer, step, data
                   position while training)
  logs/            TensorBoard
  metrics.jsonl
  labels.json      a classifier's labels, sorted: a label's id is its index
```
Trained, resumed and converted models all use it; `load`, `generate`,
`eval` and `export` take a run dir. Checkpoints of older variable shapes
(the per-head attention kernels) load too (`keras_llm.restore`).
"""

import json
import os

import tensorflow as tf

from keras_llm import config as config_lib
from keras_llm import kinds
from keras_llm import restore

CONFIG_FILE = "config.yaml"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
METRICS_FILE = "metrics.jsonl"
BEST_DIR = "best"  # checkpoints/best/: the best validation's weights
BEST_FILE = "best.json"  # in it: metric, value, step, checkpoint
LABELS_FILE = "labels.json"


def labels_path(run_dir):
    return os.path.join(run_dir, LABELS_FILE)


def read_labels(run_dir):
    """A classifier run's labels (`labels.json`: a JSON list of strings).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: it is not a list of at least two distinct strings.
    """
    path = labels_path(run_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing: a classifier's run dir keeps its labels "
            "there (kllm train writes it); restore it from a backup."
        )
    try:
        with open(path, encoding="utf-8") as f:
            labels = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is damaged ({error}); restore it from a backup."
        ) from None
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(label, str) for label in labels)
        or len(set(labels)) != len(labels)
    ):
        raise ValueError(
            f"{path} must hold a JSON list of two or more distinct label "
            "strings, in the order of the model's outputs; restore it from "
            "a backup."
        )
    return labels


def config_path(run_dir):
    return os.path.join(run_dir, CONFIG_FILE)


def checkpoint_dir(run_dir):
    return os.path.join(run_dir, CHECKPOINT_DIR)


def check_writable(path, what):
    """Raises `PermissionError` before any work if `path` (which may not
    exist yet) could not be created and written: its nearest existing
    ancestor must be a writable directory."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(
            f"Cannot write {what} {path}: {probe} is not a writable directory."
        )


def read_config(run_dir):
    """The resolved config of a run dir.

    Raises:
        FileNotFoundError: `run_dir` or its `config.yaml` is missing.
    """
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"Run directory not found: {run_dir}")
    path = config_path(run_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing: {run_dir} is not a keras_llm run directory "
            "(make one with `kllm train` or `kllm convert`)."
        )
    return config_lib.load_config(path)


def write_config(cfg, run_dir):
    """Writes the resolved config into `run_dir` (created if needed)."""
    os.makedirs(run_dir, exist_ok=True)
    config_lib.dump_config(cfg, config_path(run_dir))


def latest_checkpoint(run_dir):
    """Path prefix of the newest checkpoint, or `None`."""
    return tf.train.latest_checkpoint(checkpoint_dir(run_dir))


def checkpoint_steps(run_dir):
    """The steps of the checkpoints kept in the run dir, ascending."""
    directory = checkpoint_dir(run_dir)
    if not os.path.isdir(directory):
        return []
    steps = []
    for name in os.listdir(directory):
        stem = name.removesuffix(".index")
        if stem != name and stem.startswith("ckpt-") and stem[5:].isdigit():
            steps.append(int(stem[5:]))
    return sorted(steps)


def checkpoint_step(prefix):
    """The step in a checkpoint prefix `.../ckpt-N`, or `None`."""
    tail = os.path.basename(prefix or "")
    return int(tail[5:]) if tail[5:].isdigit() else None


def best_checkpoint(run_dir):
    """`(prefix, info)` of `checkpoints/best/` (info: `best.json`'s metric,
    value and step), or `None` when the run kept no best checkpoint."""
    import json

    directory = os.path.join(checkpoint_dir(run_dir), BEST_DIR)
    path = os.path.join(directory, BEST_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        prefix = os.path.join(directory, info["checkpoint"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path} is damaged ({error}); delete {directory} and use "
            "--checkpoint latest or a step."
        ) from None
    return prefix, info


def select_checkpoint(run_dir, checkpoint=None):
    """The prefix of the checkpoint to load.

    Args:
        run_dir: a run directory.
        checkpoint: `"best"` (`checkpoints/best/`, the best validation's
            by `train.best_metric`), `"latest"` (the newest), a step (int,
            or its digits as a string), or `None`: best if the run kept
            one, else latest.

    Raises:
        FileNotFoundError: no checkpoint, no best checkpoint, or none of
            that step (the message lists the steps kept).
        ValueError: `checkpoint` is neither best, latest nor a step.
    """
    if checkpoint in (None, "best"):
        best = best_checkpoint(run_dir)
        if best is not None:
            return best[0]
        if checkpoint == "best":
            raise FileNotFoundError(
                f"No best checkpoint in {checkpoint_dir(run_dir)}: the run "
                "kept none (it is written at each validation that improves "
                "train.best_metric, by kllm train). Use --checkpoint latest "
                "or a step."
            )
    if checkpoint is None or checkpoint == "latest":
        prefix = latest_checkpoint(run_dir)
        if prefix is None:
            raise FileNotFoundError(
                f"No checkpoint in {checkpoint_dir(run_dir)}: train the "
                "model (`kllm train`) or convert one (`kllm convert`) first."
            )
        return prefix
    text = str(checkpoint)
    if not text.isdigit():
        raise ValueError(
            f"--checkpoint: expected best, latest or a step number. "
            f"Received: {checkpoint!r}"
        )
    steps = checkpoint_steps(run_dir)
    if int(text) not in steps:
        best = best_checkpoint(run_dir)
        if best is not None and best[1].get("step") == int(text):
            return best[0]
        kept = ", ".join(map(str, steps)) or "none"
        if best is not None:
            kept += f"; best: {best[1].get('step')}"
        raise FileNotFoundError(
            f"No checkpoint of step {int(text)} in {checkpoint_dir(run_dir)} "
            f"(steps kept: {kept})."
        )
    return os.path.join(checkpoint_dir(run_dir), f"ckpt-{int(text)}")


def describe_checkpoint(run_dir, prefix):
    """Which checkpoint `prefix` is, in words: `best (step 300, val_loss
    2.3100)`, `latest (step 400)` or `step 200`; the CLI prints it."""
    step = checkpoint_step(prefix)
    best = best_checkpoint(run_dir)
    if best is not None and os.path.samefile(
        os.path.dirname(prefix), os.path.dirname(best[0])
    ):
        info = best[1]
        return f"best (step {step}, {info['metric']} {info['value']:.4f})"
    if prefix == latest_checkpoint(run_dir):
        return f"latest (step {step})"
    return f"step {step}"


def save_model(model, run_dir, step=0):
    """Writes a model-only checkpoint (what `kllm convert` produces)."""
    checkpoint = tf.train.Checkpoint(
        model=model, step=tf.Variable(step, dtype=tf.int64)
    )
    manager = tf.train.CheckpointManager(
        checkpoint, checkpoint_dir(run_dir), max_to_keep=1
    )
    return manager.save(checkpoint_number=step)


def load_tokenizer(run_dir):
    """The tokenizer of a run dir.

    Raises:
        FileNotFoundError: the run dir has no `tokenizer/`.
    """
    from keras_llm.data.tokenizer import load_tokenizer as load

    directory = os.path.join(run_dir, TOKENIZER_DIR)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"{directory} is missing: the run directory has no tokenizer."
        )
    return load(directory)


def load(run_dir, dtype=None, checkpoint=None):
    """The task model of a run dir, with its best weights if the run kept
    a best checkpoint, else its latest (or those of `checkpoint`),
    tokenizer and config: ready for `model.generate(...)` /
    `model.score(...)`.

    Example:
    ```python
    lm = keras_llm.load("runs/en_es")
    lm.generate(["translate English to Spanish: Hello."], num_beams=5)
    ```

    Args:
        run_dir: path to a run directory.
        dtype: optional dtype policy for the rebuilt model.
        checkpoint: `"best"`, `"latest"`, the step of a kept checkpoint,
            or `None`: best if the run kept one, else latest (see
            `select_checkpoint`).

    Returns:
        The task model (`keras_llm.models.Task`: a `keras.Model` taking the
        dict inputs of docs/architecture.md and returning logits), with
        `model.backbone`, `model.tokenizer` (`None` if the run dir has
        no `tokenizer/`), `model.config` (the run's `ExperimentConfig`)
        and `model.checkpoint_path` (the prefix its weights came from).

    Raises:
        FileNotFoundError: no run dir, config or checkpoint.
    """
    from keras_llm.models import build_model

    cfg = read_config(run_dir)
    prefix = select_checkpoint(run_dir, checkpoint)
    kind = config_lib.kind_of(cfg)  # the objective's: BERT may classify
    labels = read_labels(run_dir) if kind == kinds.CLASSIFIER else None
    task_kwargs = {"num_labels": len(labels)} if labels else {}
    model = build_model(cfg.model, dtype=dtype, kind=kind, **task_kwargs)
    # Training checkpoints also hold the optimizer and data position.
    holder = tf.train.Checkpoint(model=model)
    with restore.restorable(prefix, holder) as path:
        holder.restore(path).expect_partial()
    # A run dir without tokenizer/ still gives its weights.
    has_tokenizer = os.path.isdir(os.path.join(run_dir, TOKENIZER_DIR))
    model.tokenizer = load_tokenizer(run_dir) if has_tokenizer else None
    model.config = cfg
    model.checkpoint_path = prefix
    if labels is not None:
        model.labels = labels
    return model
