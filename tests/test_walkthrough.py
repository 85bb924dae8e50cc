"""docs/transformer.md runs as shown, and docs/make_figures.py draws.

The walkthrough's ```python blocks run in order in one namespace; what each
prints must equal the ```text block right after it, numbers to the
precision printed there (one unit of the last printed digit either way;
whole numbers exactly), whitespace aside. A python block with no text
block after it must print nothing. The training run goes into a temporary
folder (`KLLM_WALKTHROUGH_DIR`).

After changing the walkthrough (or on a machine whose floats differ),
rewrite its text blocks from a fresh run:

    python -m tests.test_walkthrough --write
"""

import contextlib
import io
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).parents[1]
DOC = ROOT / "docs" / "transformer.md"
FIGURES = ROOT / "docs" / "make_figures.py"
WORKDIR_ENV = "KLLM_WALKTHROUGH_DIR"

# A fenced block: its language and body.
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.M)
# A number as Python and numpy print it; anything else is a word or a sign.
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"{_NUMBER}|[^\s\d.+-]+|\S")


def _blocks(text):
    """`[(code, expected_or_None, match)]`: each python block, the text
    block right after it (nothing but blank lines between), and the match
    of that text block (to rewrite it)."""
    fences = list(_FENCE.finditer(text))
    blocks = []
    for i, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        after = fences[i + 1] if i + 1 < len(fences) else None
        if (
            after is not None
            and after.group(1) == "text"
            and not text[fence.end() : after.start()].strip()
        ):
            blocks.append((fence.group(2), after.group(2), after))
        else:
            blocks.append((fence.group(2), None, None))
    return blocks


def _run(blocks):
    """Runs the blocks in one namespace; yields `(index, stdout, seconds)`.
    numpy's print options are restored afterwards."""
    import numpy as np

    with np.printoptions(**np.get_printoptions()):
        yield from _run_blocks(blocks)


def _run_blocks(blocks):
    namespace = {"__name__": "walkthrough"}
    for index, (code, _, _) in enumerate(blocks):
        out = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            exec(
                compile(code, f"{DOC}[python block {index + 1}]", "exec"),
                namespace,
            )
        yield index, out.getvalue(), time.perf_counter() - start


def _tokens(text):
    return _TOKEN.findall(text)


def _is_number(token):
    return re.fullmatch(_NUMBER, token) is not None and any(
        c.isdigit() for c in token
    )


def _tolerance(token):
    """One unit of the last printed digit of `token`; 1e-4 for a whole
    number (`64`, or numpy's `9.`: numpy drops trailing zeros, and the
    walkthrough prints at most 4 decimals), so ids and shapes are exact."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    if not decimals and not exponent:
        return 1e-4
    return 1.01 * 10.0 ** (int(exponent or 0) - decimals)


def differences(expected, actual):
    """Why `actual` does not read as `expected` ([] when it does): words
    must be equal, numbers within one unit of the expected last digit;
    whitespace is not compared."""
    want, got = _tokens(expected), _tokens(actual)
    if len(want) != len(got):
        return [f"{len(got)} tokens printed, {len(want)} expected"]
    problems = []
    for w, g in zip(want, got):
        if _is_number(w) and _is_number(g):
            if abs(float(w) - float(g)) > _tolerance(w):
                problems.append(f"{g} printed, {w} expected")
        elif w != g:
            problems.append(f"{g!r} printed, {w!r} expected")
    return problems


def test_differences_reads_numbers_to_the_printed_precision():
    assert differences("[[10.9717 11.9717]]", "[[10.97171  11.9718]]") == []
    assert differences("0.5 ok", "0.7 ok") == ["0.7 printed, 0.5 expected"]
    assert differences("[ 0. -1.]", "[0. -1.]") == []
    assert differences("(1, 5, 64)", "(1, 5, 64)") == []
    assert differences("(1, 5, 64)", "(1, 5, 65)") != []
    assert differences("greedy: a b", "greedy: a c") != []
    assert differences("1e-05", "1.2e-05") == []
    assert differences("[ 9.     10.    ]", "[ 9.0002 10.    ]") != []
    assert differences("[255   3 254   3]", "[255   3 254   4]") != []


@pytest.mark.large
def test_walkthrough_runs_as_shown(tmp_path, monkeypatch):
    monkeypatch.setenv(WORKDIR_ENV, str(tmp_path))
    blocks = _blocks(DOC.read_text())
    assert len(blocks) >= 10
    failures = []
    for index, printed, _ in _run(blocks):
        expected = blocks[index][1]
        if expected is None:
            if printed.strip():
                failures.append(
                    f"python block {index + 1} printed, but no text block "
                    f"follows it:\n{printed}"
                )
            continue
        problems = differences(expected, printed)
        if problems:
            failures.append(
                f"python block {index + 1}: {'; '.join(problems[:5])}\n"
                f"--- expected\n{expected}--- printed\n{printed}"
            )
    assert not failures, "\n\n".join(failures)


@pytest.mark.large
def test_make_figures_draws_toy_figures(tmp_path):
    import matplotlib.image  # the test extra has it

    result = subprocess.run(
        [sys.executable, str(FIGURES), "--toy", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names = {
        "sinusoidal_encoding.png",
        "attention_encoder.png",
        "attention_cross.png",
        "training_curves.png",
    }
    assert {p.name for p in tmp_path.glob("*.png")} == names
    for name in names:
        path = tmp_path / name
        assert path.stat().st_size > 1024, name
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 100, name
        assert image.std() > 0.01, f"{name} is blank"


def write():
    """Rewrites the walkthrough's text blocks from a fresh run."""
    text = DOC.read_text()
    blocks = _blocks(text)
    replacements = []
    with tempfile.TemporaryDirectory() as workdir:
        os.environ[WORKDIR_ENV] = workdir
        for index, printed, seconds in _run(blocks):
            print(f"block {index + 1}: {seconds:.1f} s", file=sys.stderr)
            match = blocks[index][2]
            if match is None:
                if printed.strip():
                    sys.exit(
                        f"python block {index + 1} printed but has no text "
                        f"block after it:\n{printed}"
                    )
                continue
            replacements.append((match.span(2), printed))
    for (start, end), printed in reversed(replacements):
        text = text[:start] + printed + text[end:]
    DOC.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_walkthrough --write")
    write()
