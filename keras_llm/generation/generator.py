"""`Generator`: a run dir's model, tokenizer and prompt format together."""

import dataclasses
import os

from keras_llm.generation import decoders
from keras_llm.generation.api import generate
from keras_llm.generation.fill_mask import fill_mask


@dataclasses.dataclass(frozen=True)
class Generator:
    """A model with its tokenizer and prompt format, ready to generate.

    Attributes:
        model: the task model.
        tokenizer: its tokenizer.
        task_prefix: str. Put before seq2seq inputs (`data.task_prefix`).
    """

    model: object
    tokenizer: object
    task_prefix: str = ""

    @property
    def kind(self):
        """`"seq2seq"`, `"causal"` or `"masked"`."""
        return decoders.model_kind(self.model)

    def generate(self, texts, config=None, **kwargs):
        """`keras_llm.generation.generate` with this model and prefix."""
        return generate(
            self.model,
            self.tokenizer,
            texts,
            config,
            task_prefix=self.task_prefix,
            **kwargs,
        )

    def fill_mask(self, texts, top_k=5, **kwargs):
        """`keras_llm.generation.fill_mask` with this model."""
        return fill_mask(self.model, self.tokenizer, texts, top_k, **kwargs)


def load_generator(run_dir, dtype=None):
    """The model, tokenizer and task prefix of a run directory.

    Args:
        run_dir: a run directory (trained or converted).
        dtype: optional dtype policy for the model, e.g. `"mixed_bfloat16"`.

    Returns:
        A `Generator`.

    Raises:
        FileNotFoundError: no run dir, config, checkpoint or tokenizer.
    """
    from keras_llm import rundir
    from keras_llm.data.tokenizer import load_tokenizer

    model = rundir.load(run_dir, dtype=dtype)
    cfg = rundir.read_config(run_dir)
    tokenizer = load_tokenizer(os.path.join(run_dir, rundir.TOKENIZER_DIR))
    return Generator(model, tokenizer, cfg.data.task_prefix)
