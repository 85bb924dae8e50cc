"""Latency of an exported T5-small through TF Serving's loading path.

Builds a T5-small-shaped run dir (random weights; EOS never wins, so every
request generates exactly --max-new-tokens), exports it with `kllm export`
(greedy, no XLA), then times `serving_default` in a fresh process that
imports only tensorflow + tensorflow_text and loads with the TF1 session
loader (what TF Serving's C++ loader does), beside keras_llm's in-process
`generate` (with and without XLA) in the same run.

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

# Prints one JSON line: {"latency": {batch size: median seconds},
# "outputs": the strings served for the first batch, "devices": {device:
# ops run there in one traced request}}.
CLIENT = r"""
import collections, json, statistics, sys, time
import tensorflow as tf
import tensorflow_text  # noqa: F401
path, batches, repeats = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    signature = meta.signature_def["serving_default"]
    feed = signature.inputs["inputs"].name
    fetch = signature.outputs["outputs"].name
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
    latency = {}
    for batch in batches:
        session.run(fetch, {feed: batch})  # warm up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(fetch, {feed: batch})
            times.append(time.perf_counter() - start)
        latency[str(len(batch))] = statistics.median(times)
print(json.dumps({
    "latency": latency,
    "outputs": [text.decode() for text in outputs],
    "devices": dict(devices),
}))
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


def serve(export_dir, batches, repeats):
    """Runs CLIENT (TF1 session loader, no keras_llm) in a fresh process
    on `export_dir`; returns its JSON result."""
    served = subprocess.run(
        [
            sys.executable,
            "-c",
            CLIENT,
            export_dir,
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
    export_dir = keras_llm.export(
        run_dir, os.path.join(work, "models"), config=config
    )
    prompt = "The for statement is used to iterate over the elements of a"
    batches = [[prompt], [prompt] * 8]
    rows = []
    for batch in batches:
        for jit in (False, True):
            model.generate(batch, config, jit_compile=jit)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model.generate(batch, config, jit_compile=jit)
                times.append(time.perf_counter() - start)
            name = "keras_llm generate" + (" (XLA)" if jit else "")
            rows.append((name, len(batch), statistics.median(times)))
    served = serve(export_dir, batches, args.repeats)
    for size, seconds in served["latency"].items():
        rows.append(("export, TF1 session loader", int(size), seconds))
    print(f"T5-small shapes, greedy, {args.max_new_tokens} new tokens")
    print(f"{'path':32s} {'batch':>5s} {'latency':>10s} {'new tokens/s':>13s}")
    for name, size, seconds in sorted(rows, key=lambda r: (r[1], r[0])):
        rate = size * args.max_new_tokens / seconds
        print(f"{name:32s} {size:5d} {seconds * 1e3:8.0f} ms {rate:13.0f}")


if __name__ == "__main__":
    main()
