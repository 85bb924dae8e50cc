"""Llama: contracts, rotary frequencies against Hugging Face's, the
grouped-query KV cache, left-padded decoding and the config checks.

Parity with `LlamaForCausalLM` (logits and generation) goes through
`kllm convert hf`: tests/test_convert_llama.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_llm import config
from keras_llm.models import LlamaBackbone
from keras_llm.models import LlamaCausalLM
from keras_llm.models.llama import rope_inverse_frequencies
from tests.helpers import check_backbone
from tests.helpers import check_task

TINY = dict(
    vocabulary_size=97,
    num_layers=2,
    num_heads=6,
    hidden_dim=48,
    intermediate_dim=80,
    num_key_value_heads=2,  # 3 query heads per key/value head
    max_sequence_length=32,
    tie_embedding_weights=False,
)


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def tiny_inputs(seed=0, lengths=(6, 6), total=6):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 97, size=(len(lengths), total)).astype("int32")
    mask = (np.arange(total)[None] < np.array(lengths)[:, None]).astype("int32")
    return {"token_ids": ids * mask, "padding_mask": mask}


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return LlamaCausalLM(LlamaBackbone(**TINY))


@pytest.mark.parametrize(
    "tie, extra",
    [
        (False, {}),
        # ~9 s; tied weights and llama3 scaling are also in
        # tests/test_convert_llama.py's parity and generation tests.
        pytest.param(
            True, dict(key_value_dim=10, rope_scaling="llama3",
                       rope_scaling_factor=8.0,
                       rope_original_max_sequence_length=16),
            marks=pytest.mark.large,
        ),
    ],
    ids=["untied", "tied_llama3"],
)  # fmt: skip
def test_backbone_and_task_contracts(tmp_path, tie, extra):
    kwargs = {**TINY, "tie_embedding_weights": tie, **extra}
    inputs = tiny_inputs(lengths=(6, 3))
    check_backbone(LlamaBackbone, kwargs, inputs, tmp_path)
    task = check_task(LlamaCausalLM, LlamaBackbone, kwargs, inputs, tmp_path)
    # Tied: the output layer is the embedding; untied: one more matrix.
    extra_matrix = 0 if tie else kwargs["hidden_dim"] * 97
    assert task.count_params() == _count(kwargs) + extra_matrix


def _count(kwargs):
    """Parameters of a tied Llama, by hand."""
    d, f = kwargs["hidden_dim"], kwargs["intermediate_dim"]
    h, h_kv = kwargs["num_heads"], kwargs["num_key_value_heads"]
    k = kwargs.get("key_value_dim") or d // h
    attention = d * h * k * 2 + d * h_kv * k * 2  # q, o; k, v
    block = attention + 3 * d * f + 2 * d  # SwiGLU, two norms
    return 97 * d + kwargs["num_layers"] * block + d


@pytest.mark.parametrize(
    "rope",
    [
        dict(rope_type="default", rope_theta=10000.0),
        dict(rope_type="linear", rope_theta=10000.0, factor=4.0),
        dict(rope_type="llama3", rope_theta=500000.0, factor=32.0,
             low_freq_factor=1.0, high_freq_factor=4.0,
             original_max_position_embeddings=8192),
        # A short original context, so every band of the rule is used.
        dict(rope_type="llama3", rope_theta=10000.0, factor=8.0,
             low_freq_factor=1.0, high_freq_factor=4.0,
             original_max_position_embeddings=16),
    ],
    ids=["default", "linear", "llama3_2_1b", "llama3_short"],
)  # fmt: skip
def test_rope_frequencies_equal_hugging_face(rope):
    import transformers
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    head_dim = 64 if rope["rope_theta"] == 500000.0 else 10
    hf_config = transformers.LlamaConfig(
        hidden_size=head_dim * 2, num_attention_heads=2, head_dim=head_dim,
        max_position_embeddings=8192, rope_parameters=dict(rope),
    )  # fmt: skip
    rope_type = rope["rope_type"]
    if rope_type == "default":
        init = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding
        expected, _ = init.compute_default_rope_parameters(hf_config)
    else:
        expected, _ = ROPE_INIT_FUNCTIONS[rope_type](hf_config)
    ours = rope_inverse_frequencies(
        head_dim,
        theta=rope["rope_theta"],
        scaling=None if rope_type == "default" else rope_type,
        factor=rope.get("factor", 1.0),
        low_freq_factor=rope.get("low_freq_factor", 1.0),
        high_freq_factor=rope.get("high_freq_factor", 4.0),
        original_max_sequence_length=rope.get(
            "original_max_position_embeddings", 8192
        ),
    )
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-6)
    plain = rope_inverse_frequencies(head_dim, theta=rope["rope_theta"])
    assert (rope_type == "default") == np.array_equal(ours, plain)


def test_cache_holds_the_key_value_heads_only(model):
    inputs = tiny_inputs()
    ids = inputs["token_ids"]
    full = numpy(model(inputs))
    cache = model.build_cache(ids, max_length=10)
    assert tuple(cache.shape) == (2, 2, 2, 10, 2, 8)  # 2 KV heads, not 6
    # A two-token prompt in one call, then one token per step.
    logits, _, cache = model.call_with_cache(ids[:, :2], cache, 0)
    steps = [numpy(logits)]
    for i in range(2, 6):
        logits, hidden, cache = model.call_with_cache(
            ids[:, i : i + 1], cache, i
        )
        steps.append(numpy(logits))
    assert tuple(hidden.shape) == (2, 1, TINY["hidden_dim"])
    np.testing.assert_allclose(
        np.concatenate(steps, 1), full, atol=1e-5, rtol=1e-5
    )


def test_left_padded_prompt_decodes_as_it_would_alone(model):
    """`position_offset` rotates a left-padded prompt by its positions in
    the prompt, as Hugging Face derives them from the attention mask."""
    ids = tiny_inputs()["token_ids"][:1, :4]  # (1, 4)
    alone, _, _ = model.call_with_cache(ids, model.build_cache(ids, 4), 0)
    pads = 3
    padded = np.concatenate([np.zeros((1, pads), "int32"), ids], axis=1)
    mask = (np.arange(7) >= pads).astype("int32")[None]
    logits, _, _ = model.call_with_cache(
        padded,
        model.build_cache(padded, 7),
        0,
        padding_mask=mask,
        position_offset=np.array([pads], "int32"),
    )
    np.testing.assert_allclose(
        numpy(logits)[:, pads:], numpy(alone), atol=1e-5, rtol=1e-5
    )


def test_future_tokens_never_change_earlier_logits(model):
    inputs = tiny_inputs()
    changed = {k: v.copy() for k, v in inputs.items()}
    changed["token_ids"][:, 4:] = (changed["token_ids"][:, 4:] + 1) % 97
    a, b = numpy(model(inputs)), numpy(model(changed))
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert np.abs(a[:, 4:] - b[:, 4:]).max() > 1e-3


def test_decode_step_compiles_once_with_xla(model):
    inputs = tiny_inputs()
    ids = inputs["token_ids"]
    decode_step = tf.function(model.call_with_cache, jit_compile=True)
    cache = model.build_cache(ids, max_length=8)
    steps = []
    for i in range(3):
        logits, _, cache = decode_step(ids[:, i : i + 1], cache, tf.constant(i))
        steps.append(numpy(logits))
    assert decode_step.experimental_get_tracing_count() == 1
    full = numpy(model(inputs))
    np.testing.assert_allclose(np.concatenate(steps, 1), full[:, :3], atol=1e-4)


# --- Config checks ----------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(num_heads=6, num_key_value_heads=4),
         "model.num_key_value_heads: must divide model.num_heads (6)"),
        (dict(hidden_dim=36, num_heads=4), "model.hidden_dim: gives an odd "
         "head size 9"),
        (dict(key_value_dim=7), "model.key_value_dim: gives an odd head "
         "size 7"),
        (dict(rope_scaling="yarn"), "model.rope_scaling: unknown value"),
        (dict(rope_low_freq_factor=4.0),
         "model.rope_high_freq_factor: must be above"),
        (dict(num_key_value_heads=0),
         "model.num_key_value_heads: must be positive"),
    ],
)  # fmt: skip
def test_config_refuses_what_the_model_cannot_build(changes, message):
    with pytest.raises(config.ConfigError) as info:
        config.LlamaConfig(vocabulary_size=8, **changes)
    assert message in str(info.value)


def test_defaults_are_llama_3_2_1b():
    """The dataclass's defaults are the zoo's Llama 3.2 1B (its file also
    states head_dim)."""
    defaults = config.LlamaConfig(vocabulary_size=128256)
    zoo = config.load_config("llama_3_2_1b").model
    assert zoo == config.LlamaConfig(**{**vars(defaults), "key_value_dim": 64})


def test_backbone_refuses_a_bad_rope_scaling_and_head_grouping():
    with pytest.raises(ValueError, match="rope_scaling"):
        LlamaBackbone(**{**TINY, "rope_scaling": "yarn"})
    with pytest.raises(ValueError, match="multiple of `num_key_value_heads`"):
        LlamaBackbone(**{**TINY, "num_key_value_heads": 4})
