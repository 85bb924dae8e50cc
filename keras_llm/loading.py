"""`keras_llm.load`: a run dir's model, with damaged files named.

`rundir.load` restores the checkpoint with `tf.train.Checkpoint` and reads
the tokenizer with SentencePiece. On a truncated or garbage file these
raise TensorFlow's `OpError`s (`DataLossError`, `NotFoundError`, ...), a
bare `IndexError` ("Read less bytes than requested") or SentencePiece's
`RuntimeError`: tracebacks that name neither the file nor the fix. `load`
turns each into one `ValueError` that does (the CLI prints it as one line).
"""

import os

from keras_llm import quantization
from keras_llm import rundir

STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's list of checkpoints
# Where in a traceback a damaged file shows: the code reading it.
_CHECKPOINT_CODE = (
    os.path.join("tensorflow", "python", "checkpoint", ""),
    os.path.join("tensorflow", "python", "training", "py_checkpoint_reader"),
)
_SENTENCEPIECE_CODE = (os.path.join("sentencepiece", ""),)


def _first_line(error):
    text = str(error).strip().splitlines()
    text = text[0].rstrip(".") if text else type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _raised_in(error, places):
    """Whether a frame of `error`'s traceback runs code under `places`."""
    tb = error.__traceback__
    while tb is not None:
        if any(p in tb.tb_frame.f_code.co_filename for p in places):
            return True
        tb = tb.tb_next
    return False


def check_checkpoint_state(run_dir):
    """Refuses a damaged `checkpoints/checkpoint` file, or one naming a
    checkpoint that is gone (TensorFlow would log a warning and report no
    checkpoint at all).

    Raises:
        ValueError: naming the file and the fix.
    """
    from google.protobuf import text_format
    from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState

    directory = rundir.checkpoint_dir(run_dir)
    path = os.path.join(directory, STATE_FILE)
    if not os.path.isfile(path):
        return  # rundir.load says there is no checkpoint
    fix = (
        "restore it from a backup, or write the line "
        'model_checkpoint_path: "ckpt-N" into it, where ckpt-N.index is '
        f"a checkpoint in {directory}"
    )
    state = CheckpointState()
    try:
        with open(path, encoding="utf-8") as file:
            text_format.Merge(file.read(), state)
    except (text_format.ParseError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is damaged ({_first_line(error)}); {fix}."
        ) from error
    if not state.model_checkpoint_path:
        raise ValueError(f"{path} is damaged (it names no checkpoint); {fix}.")
    prefix = os.path.join(directory, state.model_checkpoint_path)
    if not os.path.isfile(prefix + ".index"):
        raise ValueError(f"{prefix}.index is missing (named in {path}): {fix}.")


def load(run_dir, dtype=None, checkpoint=None, quantize=None):
    """The task model of a run dir: `keras_llm.rundir.load`, with a damaged
    checkpoint or tokenizer reported as one `ValueError`.

    Args:
        run_dir: path to a run directory.
        dtype: optional dtype policy for the rebuilt model.
        checkpoint: `"best"`, `"latest"`, the step of a kept checkpoint,
            or `None`: best if kept, else latest.
        quantize: `"int8"`: weight-only int8 for inference
            (`keras_llm.quantization`); `None`: the weights as saved.

    Returns:
        The task model, with `model.tokenizer` and `model.config` (see
        `keras_llm.rundir.load`).

    Raises:
        FileNotFoundError: no run dir, config or checkpoint.
        ValueError: a bad config, an unknown `quantize`, or a damaged
            checkpoint, checkpoint list or tokenizer model: one line naming
            the file and the fix.
    """
    quantization.check_mode(quantize)
    check_checkpoint_state(run_dir)
    try:
        model = rundir.load(run_dir, dtype=dtype, checkpoint=checkpoint)
    except Exception as error:
        # Any error raised while TensorFlow reads the checkpoint: OpErrors,
        # and the IndexError of a truncated data file.
        if _raised_in(error, _CHECKPOINT_CODE):
            prefix = rundir.select_checkpoint(run_dir, checkpoint)
            raise ValueError(
                f"{prefix}: the checkpoint is damaged ({_first_line(error)}); "
                "delete it or restore it from a backup."
            ) from error
        if _raised_in(error, _SENTENCEPIECE_CODE):
            directory = os.path.join(run_dir, rundir.TOKENIZER_DIR)
            raise ValueError(
                f"{directory}: the tokenizer is damaged "
                f"({_first_line(error)}); restore it from a backup (it "
                "must be the tokenizer the model was trained with)."
            ) from error
        raise
    return quantization.quantize(model, quantize)
