"""The parts of benchmarks/gpu_check.py, one per process.

    python benchmarks/gpu_check_parts.py PART --result FILE [--cpu-smoke]
        [--work DIR] [--library keras_llm|keras_hub] [--micro-batches N]
        [--peak FLOPS]

PART is one of matmul, train, mirrored, decode, export, int8. The
measurements reuse train_t5.py, generate_t5.py, serving_latency.py and
quantize_t5.py. FILE receives a
JSON object: `status` (OK, OOM, SKIP, NO PEER or FAIL), `message` (one
line, for anything but OK) and `values` (the numbers; gpu_check.py makes
the table). Tracebacks go to stderr, which gpu_check.py keeps in a log.
Nothing is downloaded: configs, random weights and the SentencePiece
vocabulary are made here.
"""

import argparse
import json
import logging
import os
import statistics
import sys
import time
import traceback

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import generate_t5  # noqa: E402  (numpy only: TensorFlow loads per part)

# T5 shapes as keras-hub's T5Backbone arguments, which keras_llm's share.
T5_SMALL = generate_t5.SMALL
T5_BASE = dict(
    T5_SMALL, num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072
)
T5_TINY = dict(
    T5_SMALL,
    vocabulary_size=256,
    num_layers=2,
    num_heads=4,
    hidden_dim=64,
    intermediate_dim=128,
    key_value_dim=16,
)

# Per mode: the GPU run's sizes and the CPU smoke run's toy sizes; `setup`
# names them in the table. Matmul: n, products timed; train: (batch,
# encoder tokens, decoder tokens).
SIZES = {
    "gpu": dict(
        matmul=dict(n=8192, repeats=50, setup="8192^3"),
        train=dict(
            config=T5_BASE,
            shape=(128, 512, 114),
            steps=5,
            rounds=2,
            setup="T5-base, batch 128 x 512/114",
        ),
        mirrored=dict(global_batch_size=16, setup="t5_tiny, 2 logical GPUs"),
        decode=dict(
            config=T5_SMALL,
            source=64,
            new_tokens=32,
            repeats=3,
            setup="T5-small float32, 32 new tokens",
        ),
        export=dict(
            zoo="t5_small",
            new_tokens=32,
            repeats=5,
            setup="T5-small greedy, 32 new tokens",
        ),
        int8=dict(
            config=T5_SMALL,
            source=64,
            new_tokens=32,
            batch_sizes=(1, 32),
            repeats=3,
            setup="T5-small greedy, 32 new tokens",
        ),
    ),
    "cpu-smoke": dict(
        matmul=dict(n=256, repeats=5, setup="256^3"),
        train=dict(
            config=T5_TINY,
            shape=(8, 64, 16),
            steps=2,
            rounds=1,
            setup="toy T5, batch 8 x 64/16",
        ),
        mirrored=dict(global_batch_size=8, setup="t5_tiny, 2 logical CPUs"),
        decode=dict(
            config=T5_TINY,
            source=16,
            new_tokens=4,
            repeats=1,
            setup="toy T5, 4 new tokens",
        ),
        export=dict(
            zoo="t5_tiny",
            new_tokens=8,
            repeats=2,
            setup="t5_tiny greedy, 8 new tokens",
        ),
        int8=dict(
            config=T5_TINY,
            source=16,
            new_tokens=4,
            batch_sizes=(1, 8),
            repeats=1,
            setup="toy T5 greedy, 4 new tokens",
        ),
    ),
}
DECODE_SETTINGS = [
    ("greedy", 1, 1),
    ("greedy", 32, 1),
    ("beam 5", 1, 5),
    ("beam 5", 32, 5),
]
MIRRORED_STEPS = 3
PROMPT = "The for statement is used to iterate over the elements of a"


class Skip(Exception):
    """The part cannot run here (the message says why)."""


class NoPeer(Exception):
    """keras-hub is missing: the part measured keras_llm only."""


def matmul(args, size):
    import tensorflow as tf
    import train_t5

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.cpu_smoke:
        raise Skip(
            "no GPU visible to TensorFlow (a CUDA build: pip install "
            "'tensorflow[and-cuda]'); --cpu-smoke runs every part on the CPU"
        )
    device = "CPU"
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = details.get("device_name", "GPU")
    n, repeats = size["matmul"]["n"], size["matmul"]["repeats"]
    # Best of three: the first timing can still include clock ramp-up.
    peak = max(train_t5.matmul_peak(tf.bfloat16, n, repeats) for _ in "abc")
    return {"peak_flops": peak, "device": device}


def train(args, size):
    import train_t5

    spec = size["train"]
    config, (batch_size, source, target) = spec["config"], spec["shape"]
    if args.library == "keras_hub":
        try:
            import keras_hub  # noqa: F401
        except ImportError:
            raise NoPeer("keras-hub is not installed") from None
        model = train_t5.keras_hub_model("mixed_bfloat16", config)
    else:
        model = train_t5.keras_llm_model("mixed_bfloat16", config)
    features, labels = train_t5.batch(batch_size, source, target, config)
    step = train_t5.make_step(model, args.micro_batches)
    seconds = statistics.median(
        train_t5.time_steps(step, features, labels, spec["steps"])
        for _ in range(spec["rounds"])
    )
    flops = train_t5.model_flops_per_step(config, batch_size, source, target)
    return {
        "library": args.library,
        "micro_batches": args.micro_batches,
        "batch_size": batch_size,
        "seconds_per_step": seconds,
        "tokens_per_second": batch_size * (source + target) / seconds,
        "mfu": flops / seconds / args.peak if args.peak else None,
    }


def mirrored(args, size):
    import tensorflow as tf

    if args.cpu_smoke:
        from keras_llm import distribute

        distribute.split_cpu(2)
    else:  # before TensorFlow initializes the GPU
        gpus = tf.config.list_physical_devices("GPU")
        tf.config.set_logical_device_configuration(
            gpus[0],
            [tf.config.LogicalDeviceConfiguration(memory_limit=16384)] * 2,
        )
        # Compare float32 sums, not TF32's 10-bit products.
        tf.config.experimental.enable_tensor_float_32_execution(False)
    import keras_llm
    from keras_llm import config as config_lib

    sets = [
        f"train.train_steps={MIRRORED_STEPS}",
        # AdamW moves a weight whose gradient is ~0 by a whole learning rate
        # either way, so summation-order noise (1e-7) grows into loss
        # differences of ~1e-5 at t5_tiny's 3e-3; at 1e-4 they stay ~1e-6.
        "train.learning_rate=1.0e-4",
        "train.log_interval_steps=1",
        "train.eval_interval_steps=100",
        f"train.checkpoint_interval_steps={MIRRORED_STEPS}",
        f"train.global_batch_size={size['mirrored']['global_batch_size']}",
        "runtime.jit_compile=true",
    ]
    if args.cpu_smoke:
        # Compiling the step twice would be most of the smoke run's time;
        # the mirrored tests of the suite compare 1 and 2 replicas with XLA.
        sets += ["runtime.num_cpu_devices=2", "runtime.jit_compile=false"]
    values = {}
    for name, strategy in [("one", "one_device"), ("two", "mirrored")]:
        cfg = config_lib.load_config(
            "t5_tiny", overrides=[*sets, f"runtime.strategy={strategy}"]
        )
        run_dir = os.path.join(args.work, name)
        keras_llm.train(cfg, run_dir)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        with open(os.path.join(run_dir, "run_info.json")) as f:
            values[f"replicas_{name}"] = json.load(f)["replicas"]
        values[f"losses_{name}"] = [
            row["loss"] for row in rows if "loss" in row
        ]
    values["devices"] = [d.name for d in tf.config.list_logical_devices()]
    return values


def decode(args, size):
    spec = size["decode"]
    config, new_tokens = spec["config"], spec["new_tokens"]
    runners = [generate_t5.KerasLLM(new_tokens, config=config)]
    try:
        runners.append(generate_t5.KerasHub(new_tokens, config=config))
    except ImportError:
        pass
    times = generate_t5.measure(
        runners,
        DECODE_SETTINGS,
        new_tokens,
        spec["repeats"],
        make_prompts=lambda b: generate_t5.prompts(b, spec["source"], config),
    )
    rates = {
        f"{name} b{batch_size}": {
            runner.name: batch_size
            * new_tokens
            / statistics.median(times[runner.name, (name, batch_size, beams)])
            for runner in runners
        }
        for name, batch_size, beams in DECODE_SETTINGS
    }
    values = {"new_tokens": new_tokens, "tokens_per_second": rates}
    if len(runners) == 1:
        raise NoPeer("keras-hub is not installed", values)
    return values


def export(args, size):
    import serving_latency

    import keras_llm
    from keras_llm.generation import GenerationConfig

    spec = size["export"]
    run_dir = os.path.join(args.work, "run")
    model, _ = serving_latency.build_run_dir(run_dir, spec["zoo"])
    config = GenerationConfig(max_new_tokens=spec["new_tokens"])
    export_dir = keras_llm.export(
        run_dir, os.path.join(args.work, "models"), config=config
    )
    batches = [[PROMPT], [PROMPT] * 8]
    served = serving_latency.serve(export_dir, batches, spec["repeats"])
    expected = model.generate(batches[0], config, jit_compile=False)
    in_process = {}
    for batch in batches:
        model.generate(batch, config, jit_compile=False)  # warm up
        times = []
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            model.generate(batch, config, jit_compile=False)
            times.append(time.perf_counter() - start)
        in_process[str(len(batch))] = statistics.median(times)
    return {
        "served_seconds": served["latency"],
        "in_process_seconds": in_process,
        "served_ops_by_device": served["devices"],
        "same_outputs": served["outputs"] == list(expected),
        "new_tokens": spec["new_tokens"],
    }


def int8(args, size):
    """Greedy decoding with int8 weights (`keras_llm.quantization`) and
    bfloat16 activations beside the bfloat16 and float32 models (same
    weights), XLA; and whether XLA fuses the int8 conversion into the
    product (in the output layer's one-row product; its HLO goes to the
    log)."""
    import keras
    from quantize_t5 import runner

    from keras_llm import quantization
    from keras_llm.models import T5Backbone
    from keras_llm.models import T5Seq2SeqLM

    spec = size["int8"]
    config, new_tokens = spec["config"], spec["new_tokens"]
    keras.utils.set_random_seed(0)
    weights = T5Seq2SeqLM(T5Backbone(**config)).get_weights()
    runners = []
    for name, dtype, quantize in (
        ("int8", "bfloat16", "int8"),
        ("bfloat16", "bfloat16", None),
        ("float32", "float32", None),
    ):
        model = T5Seq2SeqLM(T5Backbone(**config, dtype=dtype))
        model.set_weights(weights)
        quantization.quantize(model, quantize)
        runners.append(runner(name, model, new_tokens, jit_compile=True))
    settings = [("greedy", batch, 1) for batch in spec["batch_sizes"]]
    times = generate_t5.measure(
        runners,
        settings,
        new_tokens,
        spec["repeats"],
        make_prompts=lambda b: generate_t5.prompts(b, spec["source"], config),
    )
    rates = {
        f"{name} b{batch_size}": {
            runner.name: batch_size
            * new_tokens
            / statistics.median(times[runner.name, setting])
            for runner in runners
        }
        for setting in settings
        for name, batch_size, _ in [setting]
    }
    return {
        "new_tokens": new_tokens,
        "tokens_per_second": rates,
        "fused": _int8_fused(config),
    }


def _int8_fused(config):
    """Whether a fusion of the compiled one-row int8 product holds both the
    int8 -> bfloat16 conversion and the dot (else XLA writes a converted
    copy of the kernel first)."""
    import numpy as np
    import tensorflow as tf

    from keras_llm.layers import int8 as int8_layers

    values, scale = int8_layers.quantize_kernel(
        np.ones((config["vocabulary_size"], config["hidden_dim"])), 1
    )
    # Variables, not constants: XLA would fold a constant's conversion.
    kernel, scale = tf.Variable(values), tf.Variable(scale)
    product = tf.function(
        lambda x: int8_layers.int8_matmul(x, kernel, scale),
        jit_compile=True,
        autograph=False,
    )
    x = tf.ones((1, config["hidden_dim"]), tf.bfloat16)
    hlo = product.experimental_get_compiler_ir(x)(stage="optimized_hlo")
    print(hlo, file=sys.stderr)
    return any(
        "s8[" in block and "convert(" in block and "dot(" in block
        for block in hlo.split("\n\n")
        if not block.lstrip().startswith("ENTRY")
    )


PARTS = {
    "matmul": matmul,
    "train": train,
    "mirrored": mirrored,
    "decode": decode,
    "export": export,
    "int8": int8,
}


def is_out_of_memory(error):
    text = f"{type(error).__name__} {error}"
    return any(
        sign in text
        for sign in ("ResourceExhausted", "RESOURCE_EXHAUSTED", "Out of memory")
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=sorted(PARTS))
    parser.add_argument("--result", required=True)
    parser.add_argument("--cpu-smoke", action="store_true")
    parser.add_argument("--work", default=".")
    parser.add_argument("--library", default="keras_llm")
    parser.add_argument("--micro-batches", type=int, default=1)
    parser.add_argument("--peak", type=float, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.part == "export":  # the loader's process needs GPU memory too
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    size = SIZES["cpu-smoke" if args.cpu_smoke else "gpu"]
    result = {
        "status": "OK",
        "message": "",
        "values": {},
        "setup": size[args.part]["setup"],
    }
    try:
        result["values"] = PARTS[args.part](args, size)
    except Skip as error:
        result.update(status="SKIP", message=str(error))
    except NoPeer as error:
        message, *values = error.args
        result.update(status="NO PEER", message=message)
        result["values"] = values[0] if values else {}
    except Exception as error:  # one line in the table, the rest in the log
        traceback.print_exc()
        first = (str(error).strip().splitlines() or [""])[0][:300]
        status = "OOM" if is_out_of_memory(error) else "FAIL"
        result.update(status=status, message=f"{type(error).__name__}: {first}")
    with open(args.result, "w") as f:
        json.dump(result, f)
    return 0 if result["status"] == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
