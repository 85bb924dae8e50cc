"""int8 weights against float32: decode speed, export size, served memory.

T5-small shapes (random weights, EOS never wins, so every call makes
exactly --new-tokens):

1. decode: `generate_ids` of the float32 model and of an int8 copy
   (`keras_llm.quantization`, same weights), alternating, XLA-compiled
   (and without XLA with --no-xla): greedy at batch 1 and 8, beam 5 at
   batch 1; new tokens/s, medians of --repeats.
2. export: `keras_llm.export` with and without `quantize="int8"`: bytes of
   `variables/` and `saved_model.pb`; each served in a fresh process by the
   TF1 session loader (what TF Serving's loader does, no keras_llm):
   resident memory after loading, its peak after requests of batch 1 and
   8, and their latency.
3. with --run-dir RUN --data FILE: greedy agreement of the run's int8 model
   with its float32 model on the first --examples inputs of FILE (`kllm
   evaluate`'s reader): tokens equal at the same position and outputs
   equal whole; for seq2seq runs also teacher-forced (the int8 model's
   choice after float32's own output so far).

    python benchmarks/quantize_t5.py [--new-tokens 32] [--repeats 3]
        [--no-xla] [--skip-decode] [--skip-export]
        [--run-dir RUN --data test.tsv --examples 200]
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

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate_t5  # noqa: E402
import serving_latency  # noqa: E402

MODES = (None, "int8")  # float32 (the weights as trained), int8
# Prints one JSON line: memory (MiB) after loading and at its peak, and
# the median latency (s) of each batch size.
CLIENT = r"""
import json, statistics, sys, time
import tensorflow as tf
import tensorflow_text  # noqa: F401

def memory(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024

path, batches, repeats = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    loaded = memory("VmRSS")
    signature = meta.signature_def["serving_default"]
    feed = signature.inputs["inputs"].name
    fetch = signature.outputs["outputs"].name
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
    "rss_loaded_mib": loaded,
    "rss_peak_mib": memory("VmHWM"),
    "latency": latency,
}))
"""


def runner(name, model, new_tokens, jit_compile):
    """A `generate_t5.measure` runner: `generate_ids` of one model."""
    return generate_t5.KerasLLM(
        new_tokens, jit_compile, model=model, name=name
    )


def decode(args):
    import keras

    from keras_llm import quantization
    from keras_llm.models import T5Backbone
    from keras_llm.models import T5Seq2SeqLM

    keras.utils.set_random_seed(0)
    float_model = T5Seq2SeqLM(T5Backbone(**generate_t5.SMALL))
    int8_model = T5Seq2SeqLM(T5Backbone(**generate_t5.SMALL))
    int8_model.set_weights(float_model.get_weights())
    quantization.quantize(int8_model)
    runners = []
    for jit_compile in (True, False) if args.no_xla else (True,):
        suffix = "" if jit_compile else " (no XLA)"
        for name, model in (("float32", float_model), ("int8", int8_model)):
            runners.append(
                runner(name + suffix, model, args.new_tokens, jit_compile)
            )
    times = generate_t5.measure(
        runners, generate_t5.SETTINGS, args.new_tokens, args.repeats
    )
    print(
        f"\nT5-small, encoder {generate_t5.SOURCE} tokens, "
        f"{args.new_tokens} new tokens, median of {args.repeats}; "
        "new tokens per second:"
    )
    print(f"{'setting':<14}" + "".join(f"{r.name:>20}" for r in runners))
    for setting in generate_t5.SETTINGS:
        name, batch_size, _ = setting
        rates = [
            batch_size
            * args.new_tokens
            / statistics.median(times[runner.name, setting])
            for runner in runners
        ]
        ratios = [
            f"{rates[i + 1] / rates[i]:.2f}x" for i in range(0, len(rates), 2)
        ]
        print(
            f"{name + f' b{batch_size}':<14}"
            + "".join(f"{rate:>20.1f}" for rate in rates)
            + "   int8/float32: "
            + ", ".join(ratios)
        )


def _bytes(directory):
    variables = os.path.join(directory, "variables")
    return (
        sum(
            os.path.getsize(os.path.join(variables, name))
            for name in os.listdir(variables)
        ),
        os.path.getsize(os.path.join(directory, "saved_model.pb")),
    )


def export(args):
    import keras_llm
    from keras_llm.generation import GenerationConfig

    work = tempfile.mkdtemp(prefix="kllm_int8_")
    run_dir = os.path.join(work, "t5_small")
    serving_latency.build_run_dir(run_dir)
    config = GenerationConfig(max_new_tokens=args.new_tokens)
    prompt = "The for statement is used to iterate over the elements of a"
    batches = [[prompt], [prompt] * 8]
    print(f"\nExport of T5-small ({args.new_tokens} new tokens, greedy):")
    print(
        f"{'weights':<8} {'variables/':>12} {'saved_model.pb':>15} "
        f"{'RSS loaded':>11} {'RSS peak':>9} {'batch 1':>9} {'batch 8':>9}"
    )
    for quantize in (None, "int8"):
        path = keras_llm.export(
            run_dir,
            os.path.join(work, "models"),
            name=quantize or "float32",
            config=config,
            quantize=quantize,
        )
        variables, graph = _bytes(path)
        served = subprocess.run(
            [
                sys.executable,
                "-c",
                CLIENT,
                path,
                json.dumps(batches),
                str(args.repeats),
            ],
            capture_output=True,
            text=True,
        )
        if served.returncode:
            raise RuntimeError(served.stderr.strip().splitlines()[-1])
        result = json.loads(served.stdout.splitlines()[-1])
        latency = result["latency"]
        print(
            f"{quantize or 'float32':<8} {variables / 2**20:>8.1f} MiB "
            f"{graph / 2**20:>11.1f} MiB "
            f"{result['rss_loaded_mib']:>7.0f} MiB "
            f"{result['rss_peak_mib']:>5.0f} MiB "
            f"{latency['1'] * 1e3:>6.0f} ms {latency['8'] * 1e3:>6.0f} ms"
        )


def agreement(args):
    import tensorflow as tf

    import keras_llm
    from keras_llm import evaluation
    from keras_llm import kinds
    from keras_llm import rundir
    from keras_llm.generation import GenerationConfig
    from keras_llm.generation import generate_ids

    cfg = rundir.read_config(args.run_dir)
    data = evaluation.read_data(args.data, cfg.data)
    texts = list(data.inputs[: args.examples])
    config = GenerationConfig(max_new_tokens=cfg.data.target_sequence_length)
    models = {q: keras_llm.load(args.run_dir, quantize=q) for q in MODES}
    tokenizer = models[None].tokenizer
    input_format = models[None].make_format()
    prompts = input_format.prompt_ids(tf.constant(texts), config.max_new_tokens)
    outputs = {
        quantize: generate_ids(
            lm,
            prompts,
            config,
            eos_id=tokenizer.eos_id,
            pad_id=tokenizer.pad_id,
        )
        for quantize, lm in models.items()
    }
    expected, got = outputs[None], outputs["int8"]
    # Up to the longer output's end (pads after both EOS would agree).
    pad = tokenizer.pad_id
    real = (expected != pad) | (got != pad)
    tokens = ((expected == got) & real).sum() / real.sum()
    whole = np.mean([(e == g).all() for e, g in zip(expected, got)])
    print(
        f"\nGreedy agreement, {args.run_dir}, {len(texts)} inputs of "
        f"{args.data}, up to {config.max_new_tokens} new tokens:\n"
        f"  free-running: {100 * tokens:.1f}% of the tokens at the same "
        f"position, {100 * whole:.1f}% of the outputs whole"
    )
    if models[None].kind != kinds.SEQ2SEQ:
        return
    # Teacher-forced: given float32's output so far, does the int8 model
    # pick float32's next token? (One early flip changes every later
    # position above; this counts each step once.)
    ids, mask = input_format.pad_prompts(prompts)
    start = np.full((len(expected), 1), pad, np.int32)  # the decoder start
    features = {
        "encoder_token_ids": np.asarray(ids),
        "encoder_padding_mask": np.asarray(mask),
        "decoder_token_ids": np.concatenate([start, expected[:, :-1]], 1),
        "decoder_padding_mask": np.ones(expected.shape, np.int32),
    }
    # Steps up to and with float32's EOS.
    steps = np.cumsum(expected == tokenizer.eos_id, 1) - (
        expected == tokenizer.eos_id
    )
    steps = steps == 0
    picks = {}
    for quantize, lm in models.items():
        picks[quantize] = np.concatenate(
            [
                np.argmax(
                    lm({k: v[i : i + 50] for k, v in features.items()}), -1
                )
                for i in range(0, len(expected), 50)
            ]
        )
    assert ((picks[None] == expected) | ~steps).all(), "not float's greedy"
    forced = ((picks["int8"] == expected) & steps).sum() / steps.sum()
    print(
        f"  teacher-forced: {100 * forced:.1f}% of float32's "
        f"{steps.sum()} greedy tokens are the int8 model's choice too"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--run-dir")
    parser.add_argument("--data")
    parser.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print("load average at the start:", " ".join(f.read().split()[:3]))
    start = time.perf_counter()
    if not args.skip_decode:
        decode(args)
    if not args.skip_export:
        export(args)
    if args.run_dir:
        agreement(args)
    with open("/proc/loadavg") as f:
        print(
            f"load average at the end ({time.perf_counter() - start:.0f} s):",
            " ".join(f.read().split()[:3]),
        )


if __name__ == "__main__":
    main()
