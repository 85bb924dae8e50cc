"""What a run takes from outside its own run dir before it trains: a
classifier's label set (read from the training files) and the starting
weights of `train.init_checkpoint`.

`train.init_checkpoint: RUN_DIR` is Model Garden's `init_checkpoint` and
keras-hub's `Task.from_preset(..., num_classes=N)`: the backbone's weights
come from a trained or converted run dir, the task's own layers too when
the task is the same class (a GPT-2 fine-tune), else they start fresh (a
classifier's head on a masked LM's backbone). The run dir's tokenizer comes
with it unless `data.tokenizer` names another.
"""

import logging
import os

from keras_llm import config as config_lib
from keras_llm import kinds
from keras_llm import rundir

logger = logging.getLogger(__name__)


def task_kwargs(labels):
    """The task model's own arguments for a run with `labels` (or none)."""
    return {"num_labels": len(labels)} if labels else {}


def format_kwargs(labels):
    """The input format's own arguments for a run with `labels`."""
    return {"labels": labels} if labels else {}


def training_labels(cfg, run_dir):
    """The sorted label set of a classification run, else `None`.

    A resumed run must find the labels it was trained with
    (`RUN_DIR/labels.json`).

    Raises:
        ValueError: fewer than two labels, or labels that differ from the
            run dir's.
    """
    from keras_llm.data import sources

    if config_lib.kind_of(cfg) != kinds.CLASSIFIER:
        return None
    labels = sources.training_labels(cfg.data)
    if len(labels) < 2:
        raise ValueError(
            f"data.train_files: the training files hold {len(labels)} "
            f"label{'s' if len(labels) != 1 else ''} ({labels}); a "
            "classifier needs examples of at least two."
        )
    if os.path.isfile(rundir.labels_path(run_dir)):
        saved = rundir.read_labels(run_dir)
        if saved != labels:
            raise ValueError(
                f"{rundir.labels_path(run_dir)} holds the labels {saved}, "
                f"the training files now {labels}: the checkpoints' outputs "
                "are the saved ones. Restore the files, or use a new "
                "--run-dir."
            )
    return labels


def check(cfg):
    """Checks `train.init_checkpoint` before any work: a run dir with a
    checkpoint, of the same model.

    Raises:
        FileNotFoundError, ValueError: one line naming the key and the fix.
    """
    source = cfg.train.init_checkpoint
    if source is None:
        return
    key = "train.init_checkpoint"
    if not os.path.isfile(rundir.config_path(source)):
        raise FileNotFoundError(
            f"{key}: {source} is not a run dir (no config.yaml); give a "
            "directory written by kllm train or kllm convert."
        )
    if rundir.latest_checkpoint(source) is None:
        raise FileNotFoundError(
            f"{key}: {source} holds no checkpoint; train or convert it first."
        )
    theirs = config_lib.to_dict(rundir.read_config(source))["model"]
    ours = config_lib.to_dict(cfg)["model"]
    changed = [k for k in ours if theirs.get(k) != ours[k]]
    if changed:
        shown = ", ".join(
            f"model.{k} {ours[k]} vs {theirs.get(k)}" for k in changed
        )
        raise ValueError(
            f"{key}: {source} holds another model ({shown}); set the model "
            f"section as in {rundir.config_path(source)}."
        )


def tokenizer_dir(cfg):
    """`data.tokenizer`, else the `init_checkpoint` run dir's tokenizer
    (its ids are the ones the weights know), else `None`.

    Raises:
        FileNotFoundError: the init run dir has no tokenizer.
    """
    if cfg.data.tokenizer or not cfg.train.init_checkpoint:
        return cfg.data.tokenizer
    directory = os.path.join(cfg.train.init_checkpoint, rundir.TOKENIZER_DIR)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"train.init_checkpoint: {directory} is missing; set "
            "data.tokenizer to the tokenizer its weights were trained with."
        )
    return directory


def load_weights(cfg, model):
    """Sets `model`'s starting weights from `train.init_checkpoint` (and
    says which in the log)."""
    from keras_llm import loading

    source = loading.load(cfg.train.init_checkpoint)
    where = f"{cfg.train.init_checkpoint} ({source.checkpoint_path})"
    if type(source) is type(model):
        model.set_weights(source.get_weights())
        logger.info("Starting from all weights of %s.", where)
        return
    model.backbone.set_weights(source.backbone.get_weights())
    logger.info(
        "Starting from the backbone weights of %s; %s's own layers start "
        "fresh.",
        where,
        type(model).__name__,
    )
