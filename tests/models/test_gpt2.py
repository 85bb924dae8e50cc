"""GPT-2: parity with Hugging Face transformers, cache, save/load."""

import keras  # noqa: E402
import numpy as np
import pytest
import torch
import transformers

from keras_llm.convert.gpt2 import load_gpt2_weights  # noqa: E402
from keras_llm.models import GPT2Backbone  # noqa: E402
from keras_llm.models import GPT2CausalLM  # noqa: E402
from tests.helpers import check_backbone
from tests.helpers import check_task

TINY = dict(
    vocabulary_size=97,
    num_layers=2,
    num_heads=4,
    hidden_dim=32,
    intermediate_dim=48,  # not 4 * D, so the converter cannot assume it
    dropout=0.0,
    max_sequence_length=16,
    layer_norm_epsilon=1e-5,
)


def hf_gpt2(seed=0):
    """A random Hugging Face GPT-2 with the TINY shape, built locally."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=TINY["vocabulary_size"],
        n_positions=TINY["max_sequence_length"],
        n_embd=TINY["hidden_dim"],
        n_layer=TINY["num_layers"],
        n_head=TINY["num_heads"],
        n_inner=TINY["intermediate_dim"],
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=TINY["layer_norm_epsilon"],
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        # GPT-2 starts with norms at (1, 0), zero biases and 0.02-scale
        # weights: randomize everything at a larger scale, so every weight
        # shows in the logits.
        for name, param in model.named_parameters():
            if "ln_" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            else:
                param.copy_(0.15 * torch.randn_like(param))
    return model


def state_dict_numpy(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def padded_batch(rng, lengths, total, vocab=TINY["vocabulary_size"]):
    ids = rng.integers(1, vocab, size=(len(lengths), total)).astype("int32")
    mask = (np.arange(total)[None] < np.array(lengths)[:, None]).astype("int32")
    return ids * mask, mask


def test_logits_match_hugging_face():
    reference = hf_gpt2()
    backbone = GPT2Backbone(**TINY)
    load_gpt2_weights(backbone, state_dict_numpy(reference))
    model = GPT2CausalLM(backbone)

    ids, mask = padded_batch(np.random.default_rng(0), [9, 5, 1], 9)
    with torch.no_grad():
        expected = reference(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask),
        ).logits.numpy()
    logits = keras.ops.convert_to_numpy(
        model({"token_ids": ids, "padding_mask": mask})
    )
    real = mask.astype(bool)
    np.testing.assert_allclose(logits[real], expected[real], atol=1e-4, rtol=0)
    assert np.ptp(expected[real]) > 1.0  # not trivially flat


def test_converter_accepts_base_model_and_reports_mismatches():
    reference = hf_gpt2()
    weights = state_dict_numpy(reference)
    # A GPT2Model checkpoint: the same names without `transformer.`.
    base = {
        k.removeprefix("transformer."): v
        for k, v in weights.items()
        if k != "lm_head.weight"
    }
    backbone = GPT2Backbone(**TINY)
    load_gpt2_weights(backbone, base)
    table = backbone.position_embedding.position_embeddings
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(table), base["wpe.weight"]
    )

    fresh = GPT2Backbone(**TINY)
    before = keras.ops.convert_to_numpy(fresh.token_embedding.embeddings)
    base["h.0.attn.c_attn.weight"] = base["h.0.attn.c_attn.weight"][:, :64]
    del base["ln_f.bias"]
    with pytest.raises(ValueError) as info:
        load_gpt2_weights(fresh, base)
    message = str(info.value)
    assert "ln_f.bias" in message
    assert "h.0.attn.c_attn.weight: checkpoint (32, 64)" in message
    np.testing.assert_array_equal(  # nothing assigned on failure
        keras.ops.convert_to_numpy(fresh.token_embedding.embeddings), before
    )


def tiny_inputs(seed=0, lengths=(6, 6)):
    ids, mask = padded_batch(np.random.default_rng(seed), list(lengths), 6)
    return {"token_ids": ids, "padding_mask": mask}


def test_cached_decoding_equals_full_forward():
    model = GPT2CausalLM(GPT2Backbone(**TINY))
    inputs = tiny_inputs()
    ids = inputs["token_ids"]
    full = keras.ops.convert_to_numpy(model(inputs))
    cache = model.build_cache(ids, max_length=10)
    assert tuple(cache.shape) == (2, 2, 2, 10, 4, 8)
    # A two-token prompt in one call, then one token per step.
    logits, _, cache = model.call_with_cache(ids[:, :2], cache, 0)
    steps = [keras.ops.convert_to_numpy(logits)]
    for i in range(2, 6):
        logits, hidden, cache = model.call_with_cache(
            ids[:, i : i + 1], cache, i
        )
        steps.append(keras.ops.convert_to_numpy(logits))
    assert tuple(hidden.shape) == (2, 1, TINY["hidden_dim"])
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-5)


def test_future_tokens_never_change_earlier_logits():
    model = GPT2CausalLM(GPT2Backbone(**TINY))
    inputs = tiny_inputs()
    changed = {k: v.copy() for k, v in inputs.items()}
    changed["token_ids"][:, 4:] = (changed["token_ids"][:, 4:] + 1) % 97
    a = keras.ops.convert_to_numpy(model(inputs))
    b = keras.ops.convert_to_numpy(model(changed))
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert np.abs(a[:, 4:] - b[:, 4:]).max() > 1e-3


def test_decode_step_compiles_once_with_xla():
    import tensorflow as tf

    model = GPT2CausalLM(GPT2Backbone(**TINY))
    inputs = tiny_inputs()
    ids = inputs["token_ids"]
    # One compiled program serves every position (cache_index a tensor).
    decode_step = tf.function(model.call_with_cache, jit_compile=True)
    cache = model.build_cache(ids, max_length=8)
    steps = []
    for i in range(3):
        logits, _, cache = decode_step(ids[:, i : i + 1], cache, tf.constant(i))
        steps.append(keras.ops.convert_to_numpy(logits))
    assert decode_step.experimental_get_tracing_count() == 1
    full = keras.ops.convert_to_numpy(model(inputs))
    np.testing.assert_allclose(np.concatenate(steps, 1), full[:, :3], atol=1e-4)


def test_backbone_and_task_contracts(tmp_path):
    inputs = tiny_inputs(lengths=(6, 3))
    check_backbone(GPT2Backbone, TINY, inputs, tmp_path)
    check_task(GPT2CausalLM, GPT2Backbone, TINY, inputs, tmp_path)
