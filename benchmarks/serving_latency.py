"""Latency of an exported T5-small through TF Serving's loading path.

Builds a T5-small-shaped run dir (random weights; EOS never wins, so every
request generates exactly --max-new-tokens), exports it twice with `kllm
export` (greedy; the default, without XLA, and `--xla`), then times
`serving_default` of both in one fresh process that imports only
tensorflow + tensorflow_text and loads with the TF1 session loader (what TF
Serving's C++ loader does), the two exports' requests interleaved, beside
keras_llm's in-process `generate` (with and without XLA) in the same run.
Prints wall-clock medians, the CPU time of the same calls (steadier than
wall time when other jobs share the cores) and the load average.

    python benchmarks/serving_latency.py [--max-new-tokens 32] [--repeats 5]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Prints one JSON line, a list with one entry per export path:
# {"latency": {batch size: median seconds}, "cpu": {batch size: median CPU
# seconds of the client process}, "outputs": the strings served for the
# first batch, "devices": {device: ops run there in one traced request}}.
# Each round runs every export once, so load changes hit them alike.
CLIENT = r"""
import collections, json, statistics, sys, time
import tensorflow as tf
import tensorflow_text  # noqa: F401
paths, batches = json.loads(sys.argv[1]), json.loads(sys.argv[2])
repeats = int(sys.argv[3])
served = []
for path in paths:
    session = tf.compat.v1.Session(graph=tf.Graph())
    with session.graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    signature = meta.signature_def["serving_default"]
    served.append((
        session,
        signature.inputs["inputs"].name,
        signature.outputs["outputs"].name,
    ))
results = []
for session, feed, fetch in served:
    options = tf.compat.v1.RunOptions(
        trace_level=tf.compat.v1.RunOptions.SOFTWARE_TRACE
    )
    metadata = tf.compat.v1.RunMetadata()
    outputs = session.run(  # also the warm-up of the first batch
        fetch, {feed: batches[0]}, options=options, run_metadata=metadata
    )
    devices = collections.Counter()
    for stats in metadata.step_stats.dev_stats:
        devices[stats.device] += len(stats.node_stats)
    results.append({
        "latency": {},
        "cpu": {},
        "outputs": [text.decode() for text in outputs],
        "devices": dict(devices),
    })
for batch in batches:
    wall = [[] for _ in served]
    cpu = [[] for _ in served]
    for session, feed, fetch in served:
        session.run(fetch, {feed: batch})  # warm up
    for _ in range(repeats):
        for i, (session, feed, fetch) in enumerate(served):
            start, start_cpu = time.perf_counter(), time.process_time()
            session.run(fetch, {feed: batch})
            wall[i].append(time.perf_counter() - start)
            cpu[i].append(time.process_time() - start_cpu)
    for i, result in enumerate(results):
        result["latency"][str(len(batch))] = statistics.median(wall[i])
        result["cpu"][str(len(batch))] = statistics.median(cpu[i])
print(json.dumps(results))
"""


def build_run_dir(path, zoo_name="t5_small"):
    """A run dir of a zoo T5 (random weights, EOS and pad never win) with a
    SentencePiece vocabulary of up to 8000 ids trained on the built-in
    text. Returns `(model, tokenizer)`."""
    import keras_llm
    from keras_llm import config as config_lib
    from keras_llm import rundir
    from keras_llm.data import sources
    from keras_llm.data import tokenizer as tokenizer_lib

    cfg = config_lib.load_config(config_lib.zoo_path(zoo_name))
    tokenizer = tokenizer_lib.train_sentencepiece(
        sources.pydoc_documents(),
        min(8000, cfg.model.vocabulary_size),
        os.path.join(path, "tokenizer"),
        num_sentinels=cfg.data.num_sentinels,
        seed=0,
    )
    model = keras_llm.build(cfg)
    table = model.backbone.token_embedding.embeddings
    values = table.numpy()
    values[[tokenizer.pad_id, tokenizer.eos_id]] = 0.0
    table.assign(values)
    rundir.write_config(cfg, path)
    rundir.save_model(model, path)
    model.tokenizer, model.config = tokenizer, cfg
    return model, tokenizer


def serve_all(export_dirs, batches, repeats):
    """Runs CLIENT (TF1 session loader, no keras_llm) in one fresh process
    on every export of `export_dirs`, their requests interleaved; returns
    its JSON result per export."""
    served = subprocess.run(
        [
            sys.executable,
            "-c",
            CLIENT,
            json.dumps(list(export_dirs)),
            json.dumps(batches),
            str(repeats),
        ],
        capture_output=True,
        text=True,
    )
    if served.returncode:
        lines = served.stderr.strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"the TF1 session loader failed: {lines[-1]}")
    return json.loads(served.stdout.splitlines()[-1])


def serve(export_dir, batches, repeats):
    """`serve_all` of one export: `{"latency", "cpu", "outputs",
    "devices"}`."""
    return serve_all([export_dir], batches, repeats)[0]


def _load():
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


EXPORT = "export, TF1 session loader"
EXPORT_XLA = "export --xla, TF1 session loader"
GENERATE = "keras_llm generate"
GENERATE_XLA = "keras_llm generate (XLA)"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import keras_llm
    from keras_llm.generation import GenerationConfig

    work = tempfile.mkdtemp(prefix="kllm_latency_")
    run_dir = os.path.join(work, "t5_small")
    model, tokenizer = build_run_dir(run_dir)
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    exports = {
        EXPORT: keras_llm.export(
            run_dir, os.path.join(work, "models"), config=config
        ),
        EXPORT_XLA: keras_llm.export(
            run_dir,
            os.path.join(work, "models"),
            name="t5_small_xla",
            config=config,
            xla=True,
        ),
    }
    prompt = "The for statement is used to iterate over the elements of a"
    batches = [[prompt], [prompt] * 8]
    load_before = _load()
    rows = {}  # (path, batch size) -> (seconds, CPU seconds)
    for batch in batches:
        for jit in (False, True):
            model.generate(batch, config, jit_compile=jit)
            times, cpu = [], []
            for _ in range(args.repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                model.generate(batch, config, jit_compile=jit)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            name = GENERATE_XLA if jit else GENERATE
            rows[name, len(batch)] = (
                statistics.median(times),
                statistics.median(cpu),
            )
    served = serve_all(exports.values(), batches, args.repeats)
    for name, result in zip(exports, served):
        for size, seconds in result["latency"].items():
            rows[name, int(size)] = (seconds, result["cpu"][size])
    print(f"T5-small shapes, greedy, {args.max_new_tokens} new tokens")
    print(f"load average (1, 5, 15 min): {load_before} before, {_load()} after")
    print(
        f"{'path':36s} {'batch':>5s} {'latency':>10s} {'new tokens/s':>13s}"
        f" {'CPU time':>10s}"
    )
    for (name, size), (seconds, cpu) in sorted(
        rows.items(), key=lambda item: (item[0][1], item[0][0])
    ):
        rate = size * args.max_new_tokens / seconds
        print(
            f"{name:36s} {size:5d} {seconds * 1e3:8.0f} ms {rate:13.0f}"
            f" {cpu * 1e3:7.0f} ms"
        )
    for batch in batches:
        size = len(batch)
        export = rows[EXPORT, size][0]
        print(
            f"batch {size}: the export's speed is "
            f"{rows[GENERATE_XLA, size][0] / export:.2f}x keras_llm's XLA "
            f"loop and {rows[EXPORT_XLA, size][0] / export:.2f}x the --xla "
            "export's"
        )
    same = served[0]["outputs"] == served[1]["outputs"]
    print(f"the two exports served the same strings: {same}")


if __name__ == "__main__":
    main()
