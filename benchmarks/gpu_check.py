"""GPU check: six measurements in one run, one table (under 8 min on an H200).

    python benchmarks/gpu_check.py [--cpu-smoke] [--out FILE] [--parts abcdef]
        [--work-dir DIR] [--budget SECONDS]

(benchmarks/gpu_check.sh wraps this with the machine's details and a
timeout.) Rows:

(a) the peak of an XLA bfloat16 matmul (8192^3), timed in this run: the
    denominator of (b)'s MFU.
(b) T5-base (223M parameters) training step, mixed_bfloat16, XLA, batch
    128 x 512 encoder / 114 decoder tokens: tokens/s and MFU of keras_llm
    beside keras-hub's `T5Seq2SeqLM` (train_t5.py's step; a batch that does
    not fit is split into 2, 4 or 8 accumulated micro-batches, noted, and
    keras-hub starts at keras_llm's split).
(c) `keras_llm.train` on t5_tiny for 3 steps, MirroredStrategy over 2
    logical GPUs (one H200 split) against one device: the losses must agree
    (relative difference <= 1e-4).
(d) T5-small decode, float32, XLA loops, 64-token prompts, 32 new tokens:
    greedy and beam 5 at batch 1 and 32, new tokens/s beside keras-hub.
(e) a T5-small run dir exported with `keras_llm.export`, loaded in a fresh
    process by the TF1 session loader (TF Serving's path) and run on the
    GPU: latency beside in-process `generate` (no XLA), same outputs.
(f) T5-small greedy decode, XLA, batch 1 and 32: int8 weights
    (`keras_llm.quantization`, bfloat16 activations) beside bfloat16 and
    float32 weights, and whether XLA fused the int8 -> bfloat16 conversion
    into the product (the goal: batch 1 >= 1.5x bfloat16). It runs last;
    `--parts f` runs it (after (a)) alone.

Each part runs in its own process (a crash or out-of-memory in one leaves
the others; (c) splits the GPU before TensorFlow starts), with its own time
budget. `--cpu-smoke` runs every part at toy size on the CPU (2 logical CPU
devices for (c)). Status per row: OK; SKIP (no GPU); NO PEER (keras-hub not
installed); PEER <status> (keras-hub failed, keras_llm measured); OOM;
TIMEOUT; FAIL; NOT RUN. Exit status 0 when every row is OK.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import gpu_check_format as fmt

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS_SCRIPT = os.path.join(HERE, "gpu_check_parts.py")
PARTS = {
    "a": ("matmul", "bf16 matmul peak, XLA"),
    "b": ("train", "train step, bf16 + XLA, tokens/s"),
    "c": ("mirrored", "MirroredStrategy 2 vs 1 device, loss"),
    "d": ("decode", "decode new tokens/s, XLA"),
    "e": ("export", "export run by the TF1 session loader"),
    "f": ("int8", "int8 weights: decode new tokens/s, XLA"),
}
# Seconds a part may take at most (the GPU caps are estimates, not yet
# measured on an H200). The whole run stops at --budget (450 s on a GPU),
# so a part after slow ones gets only what is left.
CAPS = {
    "gpu": dict(a=40, b=200, c=90, d=120, e=90, f=120),
    "cpu-smoke": dict(a=90, b=240, c=300, d=300, e=240, f=300),
}


class Stopped(Exception):
    """SIGTERM (e.g. the wrapper's timeout): report what ran so far."""


def _on_sigterm(signum, frame):
    raise Stopped()


class Runner:
    """Runs parts in child processes, each in its own process group."""

    def __init__(self, args):
        self.args = args
        self.mode = "cpu-smoke" if args.cpu_smoke else "gpu"
        self.deadline = time.monotonic() + args.budget
        self.env = {
            **os.environ,
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        if args.cpu_smoke:
            self.env["CUDA_VISIBLE_DEVICES"] = "-1"

    def part_deadline(self, letter):
        cap = CAPS[self.mode][letter]
        return min(time.monotonic() + cap, self.deadline)

    def run(self, label, part, deadline, extra=()):
        """One child; returns {status, message, values, seconds, log}."""
        work = self.args.work_dir
        log_path = os.path.join(work, f"{label}.log")
        result_path = os.path.join(work, f"{label}.json")
        scratch = os.path.join(work, label)
        os.makedirs(scratch, exist_ok=True)
        timeout = deadline - time.monotonic()
        run = {"label": label, "values": {}, "log": log_path, "seconds": 0}
        if timeout < 5:
            return {**run, "status": "NOT RUN", "message": "no time left"}
        command = [sys.executable, PARTS_SCRIPT, part, "--result"]
        command += [result_path, "--work", scratch, *extra]
        if self.args.cpu_smoke:
            command.append("--cpu-smoke")
        start = time.monotonic()
        print(f"{label}: running (up to {timeout:.0f} s)", flush=True)
        with open(log_path, "w") as log:
            child = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
            try:
                code = child.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
            except Stopped:
                _kill(child)
                raise
            finally:
                if child.poll() is None:
                    _kill(child)
                shutil.rmtree(scratch, ignore_errors=True)
        run["seconds"] = time.monotonic() - start
        if code is None:
            run.update(status="TIMEOUT", message=f"{timeout:.0f} s budget")
        elif os.path.exists(result_path):
            with open(result_path) as f:
                run.update(json.load(f))
        else:
            run.update(_crash(code, log_path))
        print(f"{label}: {run['status']} in {run['seconds']:.0f} s", flush=True)
        return run


def _kill(child):
    try:
        os.killpg(child.pid, signal.SIGKILL)  # the child and its loader
    except ProcessLookupError:
        pass
    child.wait()


def _crash(code, log_path):
    """The child died without a result (a segfault after an OOM, ...)."""
    with open(log_path, errors="replace") as f:
        tail = f.read()[-20000:]
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    message = f"the process ended ({how}) without a result"
    if any(sign in tail for sign in ("Out of memory", "RESOURCE_EXHAUSTED")):
        return {"status": "OOM", "message": message + ", out of memory"}
    return {"status": "FAIL", "message": message}


def run_parts(runner, letters, runs):
    """Fills `runs` {letter: [child results]} in order (what finished stays
    there if SIGTERM stops the run); SKIP all once (a) finds no GPU."""
    peak, micro = None, 1
    for letter in letters:
        part = PARTS[letter][0]
        deadline = runner.part_deadline(letter)
        if runs.get("a") and runs["a"][0]["status"] == "SKIP":
            skipped = {"status": "SKIP", "message": "no GPU: see (a)"}
            runs[letter] = [skipped]
        elif letter == "b":
            ours = run_train(runner, "keras_llm", deadline, peak, micro)
            # keras-hub runs the same micro-batches: the same shapes.
            micro = ours["micro_batches"]
            peer = run_train(runner, "keras_hub", deadline, peak, micro)
            runs[letter] = [ours, peer]
        else:
            runs[letter] = [runner.run(letter, part, deadline)]
        if letter == "a" and runs[letter][0]["status"] == "OK":
            peak = runs[letter][0]["values"]["peak_flops"]


def run_train(runner, library, deadline, peak, micro):
    """(b) for one library: `micro` micro-batches, twice as many on OOM."""
    extra = ["--library", library] + (["--peak", str(peak)] if peak else [])
    while True:
        run = runner.run(
            f"b-{library}-x{micro}",
            "train",
            deadline,
            [*extra, "--micro-batches", str(micro)],
        )
        if run["status"] != "OOM" or micro == 8:
            return {**run, "micro_batches": micro}
        micro *= 2


def versions():
    found = {}
    for name in ("tensorflow", "keras", "keras-hub", "keras_llm"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="Every part at toy size on the CPU.",
    )
    parser.add_argument("--out", help="Also write the table as JSON here.")
    parser.add_argument(
        "--parts",
        default="abcdef",
        help="Which rows to run (default abcdef); (a) always runs.",
    )
    parser.add_argument(
        "--work-dir", help="Logs (and scratch) go here; default a temp dir."
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="Seconds for all parts (default: 450 GPU, 1200 CPU smoke).",
    )
    args = parser.parse_args()
    if not args.parts or set(args.parts) - set(PARTS):
        parser.error(f"--parts takes letters of abcdef. Received: {args.parts}")
    # (a) always runs: it finds the GPU and times the peak (b) divides by.
    letters = sorted(set(args.parts) | {"a"})
    if args.budget is None:
        args.budget = 1200.0 if args.cpu_smoke else 450.0
    args.work_dir = os.path.abspath(
        args.work_dir or tempfile.mkdtemp(prefix="gpu_check_")
    )
    os.makedirs(args.work_dir, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc)
    runner = Runner(args)
    runs = {}
    try:
        run_parts(runner, letters, runs)
    except Stopped:
        print("stopped (SIGTERM): reporting what finished", flush=True)
    for letter in letters:  # parts the stop cut short
        if letter not in runs:
            message = "stopped before it finished"
            runs[letter] = [{"status": "NOT RUN", "message": message}]
    rows = [
        fmt.row(letter, PARTS[letter][1], runs[letter], runner.mode)
        for letter in letters
    ]
    report = {
        "date": date.strftime("%Y-%m-%d %H:%M UTC"),
        "mode": runner.mode,
        "device": fmt.device(runs),
        "versions": versions(),
        "seconds": round(time.monotonic() - started, 1),
        "work_dir": args.work_dir,
        "rows": rows,
    }
    print("\n" + fmt.table(report), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if all(r["status"] == "OK" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
