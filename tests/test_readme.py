"""The README's Python tour runs as shown (on a tiny run dir)."""

import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).parents[1] / "README.md"


def _python_block(section):
    text = README.read_text()
    text = text[text.index(f"## {section}") :]
    return re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)


@pytest.mark.large
def test_using_it_from_python_runs_as_shown(tiny_run_dir):
    code = _python_block("Using it from Python")
    assert 'keras_llm.load("runs/t5_tiny")' in code
    code = code.replace("runs/t5_tiny", tiny_run_dir("t5_tiny"))
    # The `...` placeholders stand for arrays the reader supplies.
    code = code.replace("...", "np.ones((1, 4), 'int32')")
    namespace = {"np": np}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
    lm, logits = namespace["lm"], namespace["logits"]
    assert lm.kind == "seq2seq" and lm.tokenizer is not None
    assert tuple(logits.shape) == (1, 4, 32128)
