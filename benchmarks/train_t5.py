"""Training throughput: keras_llm T5 vs keras-hub T5Seq2SeqLM, same machine.

T5-small shapes (batch 8, encoder 128, decoder 32 tokens), one jit-compiled
forward+backward+AdamW step per call, random token ids. Runs alternate
between the two libraries, so drift in machine speed hits both. Model FLOP
utilization (MFU) is measured against a large matmul timed in the same run.

    python benchmarks/train_t5.py [--steps 10]
        [--precisions float32,mixed_bfloat16]

Needs keras-hub: `pip install -e ".[keras-hub]"`.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

SMALL = dict(
    vocabulary_size=32128,
    num_layers=6,
    num_heads=8,
    hidden_dim=512,
    intermediate_dim=2048,
    key_value_dim=64,
    dropout=0.0,
    activation="relu",
    use_gated_activation=False,
    layer_norm_epsilon=1e-6,
    tie_embedding_weights=True,
)
BATCH, SOURCE, TARGET = 8, 128, 32


def keras_llm_model(dtype, config=SMALL):
    from keras_llm.models import T5Backbone
    from keras_llm.models import T5Seq2SeqLM

    return T5Seq2SeqLM(T5Backbone(**config, dtype=dtype))


def keras_hub_model(dtype, config=SMALL):
    import keras_hub

    backbone = keras_hub.models.T5Backbone(**config, dtype=dtype)
    return keras_hub.models.T5Seq2SeqLM(backbone=backbone, preprocessor=None)


def batch(batch_size=BATCH, source=SOURCE, target=TARGET, config=SMALL):
    rng = np.random.default_rng(0)

    def ids(n):
        return rng.integers(2, config["vocabulary_size"], (batch_size, n))

    features = {
        "encoder_token_ids": ids(source).astype("int32"),
        "encoder_padding_mask": np.ones((batch_size, source), "int32"),
        "decoder_token_ids": ids(target).astype("int32"),
        "decoder_padding_mask": np.ones((batch_size, target), "int32"),
    }
    return features, ids(target).astype("int32")


def make_step(model, micro_batches=1):
    """One AdamW step over the whole batch. With `micro_batches` > 1, XLA
    compiles one micro-batch's forward + backward; the gradients are summed
    outside it (for batches whose activations do not fit at once)."""
    optimizer = keras.optimizers.AdamW(1e-4)
    optimizer.build(model.trainable_variables)
    variables = model.trainable_variables

    def loss_and_grads(features, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(features, training=True), tf.float32)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(
                    labels, logits, from_logits=True
                )
            )
        return loss, tape.gradient(loss, variables)

    if micro_batches == 1:

        @tf.function(jit_compile=True)
        def step(features, labels):
            loss, grads = loss_and_grads(features, labels)
            optimizer.apply(grads, variables)
            return loss

        return step

    @tf.function(jit_compile=True)
    def compiled(features, labels):
        loss, grads = loss_and_grads(features, labels)
        return loss, [tf.convert_to_tensor(g) for g in grads]  # dense sums

    apply = tf.function(lambda grads: optimizer.apply(grads, variables))

    def accumulated_step(features, labels):
        size = len(labels) // micro_batches
        total_loss, total = 0.0, None
        for i in range(micro_batches):
            part = slice(i * size, (i + 1) * size)
            loss, grads = compiled(
                {k: v[part] for k, v in features.items()}, labels[part]
            )
            total_loss += loss
            total = (
                grads
                if total is None
                else [a + b for a, b in zip(total, grads)]
            )
        apply([g / micro_batches for g in total])
        return total_loss / micro_batches

    return accumulated_step


def time_steps(step, features, labels, steps):
    float(step(features, labels))  # compile + warm up
    float(step(features, labels))
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(features, labels)
    float(loss)
    return (time.perf_counter() - start) / steps


def matmul_peak(dtype, n=4096, repeats=5):
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    mm = tf.function(lambda x: tf.matmul(x, x), jit_compile=True)
    mm(a).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        out = mm(a)
    out.numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def model_flops_per_step(
    config=SMALL, batch_size=BATCH, source=SOURCE, target=TARGET
):
    """6 x (params x tokens they touch): encoder layers see S tokens,
    decoder layers and the (tied) output projection see T tokens."""
    d, f = config["hidden_dim"], config["intermediate_dim"]
    h, k = config["num_heads"], config["key_value_dim"]
    v, layers = config["vocabulary_size"], config["num_layers"]
    attention = 4 * d * h * k
    encoder = layers * (attention + 2 * d * f)
    decoder = layers * (2 * attention + 2 * d * f)
    per_example = encoder * source + (decoder + v * d) * target
    return 6 * per_example * batch_size


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    args = parser.parse_args()
    features, labels = batch()
    tokens = BATCH * (SOURCE + TARGET)
    flops = model_flops_per_step()
    peaks = {
        "float32": matmul_peak(tf.float32),
        "mixed_bfloat16": matmul_peak(tf.bfloat16),
    }
    print(
        f"matmul peak: float32 {peaks['float32'] / 1e9:.0f} GFLOP/s, "
        f"bfloat16 {peaks['mixed_bfloat16'] / 1e9:.0f} GFLOP/s"
    )
    print(f"model: {flops / 1e9:.1f} GFLOP per step, {tokens} tokens per step")
    results = {}
    for precision in args.precisions.split(","):
        dtype = None if precision == "float32" else precision
        steps = {
            "keras_llm": make_step(keras_llm_model(dtype)),
            "keras_hub": make_step(keras_hub_model(dtype)),
        }
        times = {name: [] for name in steps}
        for _ in range(args.rounds):  # alternate: A B A B
            for name, step in steps.items():
                times[name].append(
                    time_steps(step, features, labels, args.steps)
                )
        for name in steps:
            seconds = statistics.median(times[name])
            results[(precision, name)] = seconds
            mfu = flops / seconds / peaks[precision]
            print(
                f"{precision:15s} {name:10s} {tokens / seconds:9.0f} tokens/s"
                f"  {seconds * 1e3:7.1f} ms/step  MFU {mfu:5.1%}"
            )
        ratio = (
            results[(precision, "keras_hub")]
            / results[(precision, "keras_llm")]
        )
        print(
            f"{precision:15s} keras_llm / keras_hub speed ratio: {ratio:.2f}x"
        )
    if ("mixed_bfloat16", "keras_llm") in results and (
        ("float32", "keras_hub") in results
    ):
        ratio = (
            results[("float32", "keras_hub")]
            / results[("mixed_bfloat16", "keras_llm")]
        )
        print(f"keras_llm bf16 / keras_hub float32: {ratio:.2f}x")


if __name__ == "__main__":
    main()
