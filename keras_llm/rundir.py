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
```
Trained, resumed and converted models all use it; `load`, `generate`,
`eval` and `export` take a run dir.
"""

import os

import tensorflow as tf

from keras_llm import config as config_lib

CONFIG_FILE = "config.yaml"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
METRICS_FILE = "metrics.jsonl"


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


def load(run_dir, dtype=None):
    """The task model of a run dir, with its latest weights, tokenizer and
    config: ready for `model.generate(...)` / `model.score(...)`.

    Example:
    ```python
    lm = keras_llm.load("runs/en_es")
    lm.generate(["translate English to Spanish: Hello."], num_beams=5)
    ```

    Args:
        run_dir: path to a run directory.
        dtype: optional dtype policy for the rebuilt model.

    Returns:
        The task model (`keras_llm.models.Task`: a `keras.Model` taking the
        dict inputs of docs/architecture.md and returning logits), with
        `model.backbone`, `model.tokenizer` (`None` if the run dir has
        no `tokenizer/`) and `model.config` (the run's `ExperimentConfig`).

    Raises:
        FileNotFoundError: no run dir, config or checkpoint.
    """
    from keras_llm.models import build_model

    cfg = read_config(run_dir)
    prefix = latest_checkpoint(run_dir)
    if prefix is None:
        raise FileNotFoundError(
            f"No checkpoint in {checkpoint_dir(run_dir)}: train the model "
            "(`kllm train`) or convert one (`kllm convert`) first."
        )
    model = build_model(cfg.model, dtype=dtype)
    # Training checkpoints also hold the optimizer and data position.
    tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    # A run dir without tokenizer/ still gives its weights.
    has_tokenizer = os.path.isdir(os.path.join(run_dir, TOKENIZER_DIR))
    model.tokenizer = load_tokenizer(run_dir) if has_tokenizer else None
    model.config = cfg
    return model
