"""Generation throughput: keras_llm vs keras-hub vs Hugging Face, T5-small.

T5-small shapes with random weights, float32, an encoder input of 64
tokens, `--new-tokens` generated per prompt with EOS disabled (every run
makes the same number of tokens). Settings: greedy at batch 1 and 8, beam
search (5 beams) at batch 1. keras_llm and keras-hub run their
XLA-compiled loops (compiled before timing); Hugging Face runs PyTorch
eager with its KV cache. Runs alternate between the libraries, so drift in
machine speed hits all of them. New tokens per second = batch * new tokens
/ median wall time of one `generate` call.

    python benchmarks/generate_t5.py [--new-tokens 32] [--repeats 3]
        [--no-xla]

Needs keras-hub, transformers and torch: `pip install -e ".[test]"`.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

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
SOURCE = 64
SETTINGS = [("greedy", 1, 1), ("greedy", 8, 1), ("beam 5", 1, 5)]


def prompts(batch_size, source=SOURCE, config=SMALL):
    rng = np.random.default_rng(0)
    return rng.integers(2, config["vocabulary_size"], (batch_size, source))


class KerasLLM:
    """A `measure` runner: `generate_ids` of a T5 of `config` (random
    weights), or of the given `model` under the given `name`."""

    name = "keras_llm"

    def __init__(
        self, new_tokens, jit_compile=True, config=SMALL, model=None, name=None
    ):
        if model is None:
            from keras_llm.models import T5Backbone
            from keras_llm.models import T5Seq2SeqLM

            model = T5Seq2SeqLM(T5Backbone(**config))
        self.model = model
        self.new_tokens = new_tokens
        self.jit_compile = jit_compile
        if name is not None:
            self.name = name
        elif not jit_compile:
            self.name = "keras_llm (no XLA)"

    def __call__(self, ids, num_beams):
        from keras_llm.generation import GenerationConfig
        from keras_llm.generation import generate_ids

        config = GenerationConfig(
            max_new_tokens=self.new_tokens, num_beams=num_beams
        )
        out = generate_ids(
            self.model,
            ids,
            config,
            eos_id=None,
            pad_id=0,
            jit_compile=self.jit_compile,
        )
        return out.shape[1]


class KerasHub:
    name = "keras-hub"

    def __init__(self, new_tokens, config=SMALL):
        import keras_hub

        backbone = keras_hub.models.T5Backbone(**config)
        # One task model per sampler on the same backbone: `compile()`
        # drops the compiled generate function.
        self.models = {}
        for num_beams, sampler in [
            (1, keras_hub.samplers.GreedySampler()),
            (5, keras_hub.samplers.BeamSampler(num_beams=5)),
        ]:
            model = keras_hub.models.T5Seq2SeqLM(
                backbone=backbone, preprocessor=None
            )
            model.compile(sampler=sampler, jit_compile=True)
            self.models[num_beams] = model
        self.new_tokens = new_tokens

    def __call__(self, ids, num_beams):
        batch_size = len(ids)
        decoder = np.zeros((batch_size, self.new_tokens + 1), "int32")
        decoder_mask = np.zeros_like(decoder)
        decoder_mask[:, 0] = 1  # the start token; the rest is generated
        out = self.models[num_beams].generate(
            {
                "encoder_token_ids": ids.astype("int32"),
                "encoder_padding_mask": np.ones_like(ids, "int32"),
                "decoder_token_ids": decoder,
                "decoder_padding_mask": decoder_mask,
            },
            stop_token_ids=None,
        )
        return out["decoder_token_ids"].shape[1] - 1


class HuggingFace:
    name = "Hugging Face"

    def __init__(self, new_tokens):
        import torch
        import transformers

        self.torch = torch
        config = transformers.T5Config(
            vocab_size=SMALL["vocabulary_size"],
            d_model=512,
            d_kv=64,
            d_ff=2048,
            num_layers=6,
            num_heads=8,
            dropout_rate=0.0,
            feed_forward_proj="relu",
            decoder_start_token_id=0,
        )
        self.model = transformers.T5ForConditionalGeneration(config).eval()
        self.model.generation_config.eos_token_id = None  # never stop
        self.model.generation_config.pad_token_id = 0
        self.new_tokens = new_tokens

    def __call__(self, ids, num_beams):
        torch = self.torch
        with torch.no_grad():
            out = self.model.generate(
                input_ids=torch.tensor(ids),
                attention_mask=torch.ones(ids.shape, dtype=torch.long),
                max_new_tokens=self.new_tokens,
                num_beams=num_beams,
                do_sample=False,
            )
        return out.shape[1] - 1


def measure(runners, settings, new_tokens, repeats, make_prompts=prompts):
    """{(runner name, setting): [seconds per call]}: every setting compiled
    (and its token count checked) first, then `repeats` rounds with the
    runners' order rotating."""
    times = {(r.name, s): [] for r in runners for s in settings}
    for setting in settings:
        _, batch_size, num_beams = setting
        for runner in runners:
            start = time.perf_counter()
            count = runner(make_prompts(batch_size), num_beams)
            assert count == new_tokens, (runner.name, count)
            print(
                f"warm-up {runner.name:<20} {setting[0]} b{batch_size}: "
                f"{time.perf_counter() - start:.1f}s",
                flush=True,
            )
    for repeat in range(repeats):
        for setting in settings:
            _, batch_size, num_beams = setting
            ids = make_prompts(batch_size)
            order = (
                runners[repeat % len(runners) :]
                + runners[: repeat % len(runners)]
            )
            for runner in order:
                start = time.perf_counter()
                runner(ids, num_beams)
                times[runner.name, setting].append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-xla", action="store_true", help="Also time keras_llm without XLA."
    )
    args = parser.parse_args()

    runners = [
        KerasLLM(args.new_tokens),
        KerasHub(args.new_tokens),
        HuggingFace(args.new_tokens),
    ]
    if args.no_xla:
        runners.insert(1, KerasLLM(args.new_tokens, jit_compile=False))
    times = measure(runners, SETTINGS, args.new_tokens, args.repeats)

    print(
        f"\nT5-small, float32, encoder {SOURCE} tokens, {args.new_tokens} "
        f"new tokens, median of {args.repeats}; new tokens per second:"
    )
    header = f"{'setting':<14}" + "".join(f"{r.name:>20}" for r in runners)
    print(header + f"{'vs keras-hub':>14}{'vs HF':>10}")
    for setting in SETTINGS:
        name, batch_size, _ = setting
        rates = {
            r.name: batch_size
            * args.new_tokens
            / statistics.median(times[r.name, setting])
            for r in runners
        }
        row = f"{name + f' b{batch_size}':<14}" + "".join(
            f"{rates[r.name]:>20.1f}" for r in runners
        )
        ours = rates["keras_llm"]
        print(
            row + f"{ours / rates['keras-hub']:>13.2f}x"
            f"{ours / rates['Hugging Face']:>9.2f}x"
        )


if __name__ == "__main__":
    main()
