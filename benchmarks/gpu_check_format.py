"""gpu_check.py's table: the parts' numbers as rows (figure, peer figure,
ratio, status) and the rows as Markdown."""

MIRRORED_TOLERANCE = 1e-4  # (c): max |loss 2 - loss 1| / |loss 1|
NOT_OK = ("FAIL", "OOM", "TIMEOUT", "NOT RUN", "SKIP")


def rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def flops(x):
    return f"{x / 1e12:.1f} TFLOP/s" if x >= 1e12 else f"{x / 1e9:.1f} GFLOP/s"


def device(runs):
    first = (runs.get("a") or [{}])[0]
    if first.get("status") == "SKIP":
        return "no GPU found"
    return first.get("values", {}).get("device", "unknown device")


def row(letter, name, runs, mode):
    """A table row from a part's child results (two for (b)); `mode` is
    "gpu" or "cpu-smoke"."""
    setup = runs[0].get("setup")
    out = {
        "part": letter,
        "name": f"{name} ({setup})" if setup else name,
        "figure": "",
        "peer": "",
        "ratio": "",
        "status": runs[0]["status"],
        "notes": [],
        "values": runs[0].get("values", {}),
        "runs": runs,
    }
    for run in runs:
        if run.get("message"):
            log = f" (log: {run['log']})" if run.get("log") else ""
            out["notes"].append(
                f"{run.get('label', letter)}: {run['message']}{log}"
            )
    if out["status"] in NOT_OK:
        return out
    FORMATTERS[letter](out, runs, mode)
    return out


def _matmul(out, runs, mode):
    values = runs[0]["values"]
    out["figure"] = f"{flops(values['peak_flops'])} on {values['device']}"


def _train_figure(values):
    figure = f"{rate(values['tokens_per_second'])} tokens/s"
    if values.get("mfu") is not None:
        figure += f", MFU {values['mfu']:.0%}"
    if values["micro_batches"] > 1:
        micro = values["micro_batches"]
        figure += f" ({micro} x {values['batch_size'] // micro} accumulated)"
    return figure


def _train(out, runs, mode):
    ours, peer = runs
    out["figure"] = _train_figure(ours["values"])
    out["values"] = {"keras_llm": ours["values"], "keras_hub": peer["values"]}
    if peer["status"] == "OK":
        out["peer"] = _train_figure(peer["values"])
        ratio = (
            ours["values"]["tokens_per_second"]
            / peer["values"]["tokens_per_second"]
        )
        out["ratio"] = f"{ratio:.2f}x"
    else:
        out["status"] = _peer_status(peer["status"])
        out["peer"] = peer["message"]


def _peer_status(status):
    return status if status == "NO PEER" else f"PEER {status}"


def _mirrored(out, runs, mode):
    values = runs[0]["values"]
    one, two = values["losses_one"], values["losses_two"]
    worst = max(
        (abs(b - a) / abs(a) for a, b in zip(one, two)), default=float("nan")
    )
    values["max_relative_difference"] = worst
    steps = len(one)
    out["figure"] = f"{values['replicas_two']} replicas: loss {two[-1]:.6f}"
    out["peer"] = f"{values['replicas_one']} replica: loss {one[-1]:.6f}"
    out["ratio"] = f"max rel. diff {worst:.1e} over {steps} steps"
    if (
        (values["replicas_one"], values["replicas_two"]) != (1, 2)
        or len(two) != steps
        or not worst <= MIRRORED_TOLERANCE
    ):
        out["status"] = "FAIL"
        out["notes"].append(
            f"c: losses differ (1 replica {one}, 2 replicas {two}); "
            f"tolerance {MIRRORED_TOLERANCE:g}"
        )


def _decode(out, runs, mode):
    rates = runs[0]["values"]["tokens_per_second"]

    def line(name):
        return "; ".join(
            f"{setting} {rate(by_name[name])}"
            for setting, by_name in rates.items()
        )

    out["figure"] = line("keras_llm")
    if runs[0]["status"] == "OK":
        out["peer"] = line("keras-hub")
        out["ratio"] = "; ".join(
            f"{by_name['keras_llm'] / by_name['keras-hub']:.2f}x"
            for by_name in rates.values()
        )
    else:
        out["peer"] = runs[0]["message"]


def _ms(seconds):
    return "; ".join(f"b{size} {s * 1e3:.0f} ms" for size, s in seconds.items())


def _export(out, runs, mode):
    values = runs[0]["values"]
    ops = values["served_ops_by_device"]
    on_gpu = sum(n for name, n in ops.items() if "GPU" in name.upper())
    total = sum(ops.values())
    where = f"GPU ran {on_gpu:,} of {total:,} ops" if on_gpu else "CPU only"
    out["figure"] = f"served ({where}): {_ms(values['served_seconds'])}"
    out["peer"] = f"in-process generate: {_ms(values['in_process_seconds'])}"
    out["ratio"] = "; ".join(
        f"{values['in_process_seconds'][size] / served:.2f}x"
        for size, served in values["served_seconds"].items()
    )
    problems = []
    if not values["same_outputs"]:
        problems.append("served strings differ from in-process generate")
    if mode == "gpu" and not on_gpu:
        problems.append("no op of the served graph ran on the GPU")
    if problems:
        out["status"] = "FAIL"
        out["notes"].append("e: " + "; ".join(problems))


def _int8(out, runs, mode):
    values = runs[0]["values"]
    rates = values["tokens_per_second"]

    def line(name):
        return "; ".join(f"{s} {rate(r[name])}" for s, r in rates.items())

    out["figure"] = f"int8: {line('int8')}"
    out["peer"] = f"bf16: {line('bfloat16')}; float32: {line('float32')}"
    out["ratio"] = "; ".join(
        f"{r['int8'] / r['bfloat16']:.2f}x" for r in rates.values()
    )
    fused = "fused" if values["fused"] else "did not fuse"
    first = next(iter(rates.values()))
    goal = "met" if first["int8"] >= 1.5 * first["bfloat16"] else "not met"
    out["notes"].append(
        f"f: XLA {fused} the int8 -> bf16 conversion into the one-row "
        f"product; goal batch 1 >= 1.5x bf16: {goal}"
    )


FORMATTERS = {
    "a": _matmul,
    "b": _train,
    "c": _mirrored,
    "d": _decode,
    "e": _export,
    "f": _int8,
}


def table(report):
    versions = report["versions"]
    lines = [
        f"GPU check ({report['mode']}), {report['date']}, "
        f"{report['device']}; TensorFlow {versions['tensorflow']}, "
        f"Keras {versions['keras']}, keras-hub {versions['keras-hub']}; "
        f"{report['seconds']:.0f} s",
        "",
        "| part | figure | peer figure | ratio | status |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in report["rows"]:
        cells = [f"({r['part']}) {r['name']}", r["figure"], r["peer"]]
        cells += [r["ratio"], r["status"]]
        lines.append("| " + " | ".join(c or "-" for c in cells) + " |")
    notes = [note for r in report["rows"] for note in r["notes"]]
    if notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in notes]
    lines += ["", f"Logs: {report['work_dir']}"]
    return "\n".join(lines)
