"""benchmarks/gpu_check.sh: every part runs at toy size on the CPU
(--cpu-smoke) and reports OK; without a GPU the real run says so. Speeds
are not asserted."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _run(tmp_path, *args, timeout):
    out = tmp_path / "gpu_check.json"
    result = subprocess.run(
        ["bash", str(SCRIPT), *args, "--out", str(out)]
        + ["--work-dir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    report = json.loads(out.read_text()) if out.exists() else None
    return result, report


@pytest.mark.large
def test_cpu_smoke_runs_every_part(tmp_path):
    result, report = _run(tmp_path, "--cpu-smoke", timeout=1500)
    assert report is not None, result.stdout + result.stderr
    rows = report["rows"]
    assert [r["part"] for r in rows] == list("abcde")
    statuses = {r["part"]: r["status"] for r in rows}
    assert set(statuses.values()) == {"OK"}, (statuses, result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    # The printed table has the same five rows.
    printed = [line for line in result.stdout.splitlines() if line[:3] == "| ("]
    assert [line[3] for line in printed] == list("abcde")
    # (c): one replica and two take the same three steps.
    mirrored = rows[2]["values"]
    assert (mirrored["replicas_one"], mirrored["replicas_two"]) == (1, 2)
    assert len(mirrored["losses_one"]) == 3
    np.testing.assert_allclose(
        mirrored["losses_two"], mirrored["losses_one"], rtol=1e-5
    )
    # (e): the export ran in the loader's process and matched generate.
    assert rows[4]["values"]["same_outputs"] is True


@pytest.mark.large
@pytest.mark.skipif(
    bool(tf.config.list_physical_devices("GPU")), reason="a GPU is here"
)
def test_without_a_gpu_every_row_says_skip(tmp_path):
    result, report = _run(tmp_path, timeout=300)
    assert result.returncode == 1
    assert [r["status"] for r in report["rows"]] == ["SKIP"] * 5
    assert "no GPU visible to TensorFlow" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
