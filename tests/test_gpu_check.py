"""benchmarks/gpu_check.sh: every part runs at toy size on the CPU
(--cpu-smoke) and reports OK; without a GPU the real run says so. Speeds
are not asserted."""

import json
import os
import pathlib
import subprocess
import sys

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
    assert [r["part"] for r in rows] == list("abcdef")
    statuses = {r["part"]: r["status"] for r in rows}
    assert set(statuses.values()) == {"OK"}, (statuses, result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    # The printed table has the same six rows.
    printed = [line for line in result.stdout.splitlines() if line[:3] == "| ("]
    assert [line[3] for line in printed] == list("abcdef")
    # (c): one replica and two take the same three steps.
    mirrored = rows[2]["values"]
    assert (mirrored["replicas_one"], mirrored["replicas_two"]) == (1, 2)
    assert len(mirrored["losses_one"]) == 3
    np.testing.assert_allclose(
        mirrored["losses_two"], mirrored["losses_one"], rtol=1e-5
    )
    # (e): the export ran in the loader's process and matched generate.
    assert rows[4]["values"]["same_outputs"] is True
    # (f): on the CPU, XLA fuses the one-row int8 product.
    assert rows[5]["values"]["fused"] is True


@pytest.mark.large
@pytest.mark.skipif(
    bool(tf.config.list_physical_devices("GPU")), reason="a GPU is here"
)
def test_without_a_gpu_every_row_says_skip(tmp_path):
    result, report = _run(tmp_path, timeout=300)
    assert result.returncode == 1
    assert [r["status"] for r in report["rows"]] == ["SKIP"] * 6
    assert "no GPU visible to TensorFlow" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


FAKE_PARTS = r"""
import argparse, json, os, signal, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("part")
parser.add_argument("--result")
parser.add_argument("--work")
parser.add_argument("--library", default="keras_llm")
parser.add_argument("--micro-batches", type=int, default=1)
parser.add_argument("--peak", type=float)
args = parser.parse_args()
values = {}
status = "OK"
if args.part == "matmul":
    values = {"peak_flops": 1e15, "device": "Fake GPU"}
elif args.part == "train":
    if args.micro_batches < 2:
        status = "OOM"
    values = {"micro_batches": args.micro_batches, "batch_size": 128,
              "tokens_per_second": 1000.0, "mfu": 0.5}
elif args.part == "mirrored":
    time.sleep(60)
elif args.part == "decode":
    print("2026 W external/bfc_allocator.cc Out of memory", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)
elif args.part == "export":
    sys.exit(3)
elif args.part == "int8":
    values = {"new_tokens": 32, "fused": False, "tokens_per_second": {
        "greedy b1": {"int8": 3.0, "bfloat16": 2.0, "float32": 1.0}}}
with open(args.result, "w") as f:
    json.dump({"status": status, "message": "", "values": values,
               "setup": args.part}, f)
"""


def test_orchestration_retries_oom_and_reports_failures(
    tmp_path, monkeypatch, capsys
):
    """Child processes that run out of memory, hang, crash or exit without
    a result each get a status and a one-line note (no TensorFlow)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_check

    fake = tmp_path / "fake_parts.py"
    fake.write_text(FAKE_PARTS)
    monkeypatch.setattr(gpu_check, "PARTS_SCRIPT", str(fake))
    monkeypatch.setitem(
        gpu_check.CAPS, "gpu", dict(a=20, b=20, c=6, d=20, e=20, f=20)
    )
    out = tmp_path / "report.json"
    argv = ["gpu_check.py", "--out", str(out), "--work-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    assert gpu_check.main() == 1
    rows = {r["part"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["a"]["status"] == "OK"
    # (b): OOM at the whole batch, then 2 micro-batches, for both libraries.
    assert rows["b"]["status"] == "OK"
    assert "(2 x 64 accumulated)" in rows["b"]["figure"]
    assert rows["b"]["ratio"] == "1.00x"
    assert (tmp_path / "b-keras_llm-x1.log").exists()
    assert not (tmp_path / "b-keras_hub-x1.log").exists()
    assert rows["c"]["status"] == "TIMEOUT"
    assert rows["d"]["status"] == "OOM"  # a crash after an OOM message
    assert rows["e"]["status"] == "FAIL"
    assert "exit code 3" in " ".join(rows["e"]["notes"])
    assert rows["f"]["ratio"] == "1.50x"
    assert "did not fuse" in rows["f"]["notes"][0]
    assert "1.5x bf16: met" in rows["f"]["notes"][0]
    printed = capsys.readouterr().out
    assert printed.count("| (") == 6
