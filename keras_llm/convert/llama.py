"""Hugging Face Llama (`LlamaForCausalLM` / `LlamaModel`) ↔ `LlamaBackbone`.

Both ways: `llama_model_config` maps a `config.json` onto `LlamaConfig` and
`llama_hf_config` maps it back; `llama_weight_pairs` lists every weight
with a `Layout`, so the same pairs load a checkpoint (`load_llama_weights`)
and write one (`weights.read_weights(llama_weight_pairs(model))`).
"""

import json
import os

from keras_llm import config as config_lib
from keras_llm.convert import weights
from keras_llm.convert.weights import assign_weights
from keras_llm.convert.weights import find_prefix

# Hugging Face `rope_type` → our `rope_scaling`.
_ROPE_SCALINGS = {"default": None, "linear": "linear", "llama3": "llama3"}
_SILU = ("silu", "swish")
# End-of-text tokens of Llama 3, Llama 2 and GPT-2, tried in this order.
_EOS_TOKENS = ("<|end_of_text|>", "</s>", "<|endoftext|>")


def llama_weight_pairs(model, prefix="model."):
    """`(variable, hf_name, layout)` for every weight of a Llama model.

    Args:
        model: a `LlamaCausalLM` or its `LlamaBackbone`.
        prefix: where the checkpoint keeps the backbone: `"model."`
            (`LlamaForCausalLM`) or `""` (`LlamaModel`).

    torch `Linear` weights are `(out, in)`: queries `(H*K, D)`, keys and
    values `(H_kv*K, D)`, the output `(D, H*K)`; our kernels are their
    transposes. A tied output layer has no `lm_head.weight` of its own (the
    checkpoint's is the embedding).
    """
    backbone = getattr(model, "backbone", model)
    transposed = weights.transposed()
    embedding = backbone.token_embedding
    pairs = [
        (embedding.embeddings, f"{prefix}embed_tokens.weight", None),
        (backbone.layer_norm.scale, f"{prefix}norm.weight", None),
    ]
    if not backbone.tie_embedding_weights:
        pairs.append(
            (embedding.reverse_embeddings, "lm_head.weight", transposed)
        )  # (D, V)
    for i, block in enumerate(backbone.transformer_blocks):
        p = f"{prefix}layers.{i}."
        attention, feedforward = block.self_attention, block.feedforward
        pairs += [
            (attention.query_dense.kernel, f"{p}self_attn.q_proj.weight",
             transposed),
            (attention.key_dense.kernel, f"{p}self_attn.k_proj.weight",
             transposed),
            (attention.value_dense.kernel, f"{p}self_attn.v_proj.weight",
             transposed),
            (attention.output_dense.kernel, f"{p}self_attn.o_proj.weight",
             transposed),
            (feedforward.inner_dense.kernel, f"{p}mlp.gate_proj.weight",
             transposed),
            (feedforward.linear_dense.kernel, f"{p}mlp.up_proj.weight",
             transposed),
            (feedforward.output_dense.kernel, f"{p}mlp.down_proj.weight",
             transposed),
            (block.self_attention_norm.scale, f"{p}input_layernorm.weight",
             None),
            (block.feedforward_norm.scale,
             f"{p}post_attention_layernorm.weight", None),
        ]  # fmt: skip
    return pairs


def load_llama_weights(model, state_dict):
    """Copies a Hugging Face Llama state dict (name → numpy array) into
    `model` (a `LlamaCausalLM` or its backbone), checking every name and
    shape first.

    Accepts `LlamaForCausalLM` checkpoints (names under `model.`) and
    `LlamaModel` ones (no prefix; an untied model then misses its
    `lm_head.weight`, which the error names).

    Raises:
        ValueError: listing every missing or misshapen weight; nothing is
            assigned then.
    """
    prefix = find_prefix(state_dict, "embed_tokens.weight", ("model.",))
    assign_weights(llama_weight_pairs(model, prefix), state_dict)


def _rope(c):
    """`(rope_theta, rope_scaling, its parameters)` of an HF config: the
    transformers 5 `rope_parameters`, or the older top-level `rope_theta`
    and `rope_scaling`."""
    params = c.get("rope_parameters") or c.get("rope_scaling") or {}
    if any(isinstance(value, dict) for value in params.values()):
        raise ValueError(
            "rope_parameters per layer type is not supported (keras_llm's "
            "Llama rotates every layer alike)."
        )
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in _ROPE_SCALINGS:
        raise ValueError(
            f"rope_type {rope_type!r} is not supported (keras_llm's Llama "
            f"reads {', '.join(_ROPE_SCALINGS)})."
        )
    partial = params.get(
        "partial_rotary_factor", c.get("partial_rotary_factor", 1.0)
    )
    if partial != 1.0:
        raise ValueError(
            f"partial_rotary_factor={partial!r} is not supported "
            "(keras_llm's Llama rotates whole heads)."
        )
    theta = params.get("rope_theta", c.get("rope_theta", 10000.0))
    return float(theta), _ROPE_SCALINGS[rope_type], params


def llama_model_config(c):
    """A Hugging Face Llama `config.json` (a dict) → `LlamaConfig`.

    Missing keys take transformers' `LlamaConfig` defaults.

    Raises:
        ValueError: a setting keras_llm's Llama lacks (biases, another
            activation, another rotary scaling), or query heads that the
            key/value heads do not divide; the message names the key.
    """
    activation = c.get("hidden_act", "silu")
    if activation not in _SILU:
        raise ValueError(
            "keras_llm's Llama uses a SwiGLU (silu) feed-forward. Received: "
            f"hidden_act={activation!r}"
        )
    for key in ("attention_bias", "mlp_bias"):
        if c.get(key, False):
            raise ValueError(
                f"{key}={c[key]!r} is not supported (keras_llm's Llama has "
                f"no biases: set {key} to false only for a checkpoint "
                "without them)."
            )
    num_heads = c.get("num_attention_heads", 32)
    num_kv_heads = c.get("num_key_value_heads") or num_heads
    if num_heads % num_kv_heads:
        raise ValueError(
            f"num_attention_heads={num_heads} is not a multiple of "
            f"num_key_value_heads={num_kv_heads}: each key/value head must "
            "serve a whole group of query heads."
        )
    hidden_dim = c.get("hidden_size", 4096)
    head_dim = c.get("head_dim")
    if head_dim == hidden_dim // num_heads:
        head_dim = None  # the default: hidden_size / num_attention_heads
    max_length = c.get("max_position_embeddings", 2048)
    theta, scaling, params = _rope(c)
    rope = {"rope_scaling_factor": float(params.get("factor", 1.0))}
    if scaling == "llama3":
        rope.update(
            rope_low_freq_factor=float(params.get("low_freq_factor", 1.0)),
            rope_high_freq_factor=float(params.get("high_freq_factor", 4.0)),
            rope_original_max_sequence_length=params.get(
                "original_max_position_embeddings", max_length
            ),
        )
    return config_lib.LlamaConfig(
        vocabulary_size=c.get("vocab_size", 32000),
        num_layers=c.get("num_hidden_layers", 32),
        num_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=c.get("intermediate_size", 11008),
        key_value_dim=head_dim,
        dropout=float(c.get("attention_dropout", 0.0) or 0.0),
        max_sequence_length=max_length,
        rope_theta=theta,
        rope_scaling=scaling,
        layer_norm_epsilon=c.get("rms_norm_eps", 1e-6),
        tie_embedding_weights=bool(c.get("tie_word_embeddings", False)),
        **rope,
    )


def llama_hf_config(model_config):
    """`LlamaConfig` → a Hugging Face `config.json` dict for
    `LlamaForCausalLM`: the inverse of `llama_model_config`.

    Written in the form every transformers release reads (top-level
    `rope_theta`, `rope_scaling`); token ids (`bos_token_id`, ...) belong
    to the tokenizer and are left to the caller.
    """
    m = model_config
    head_dim = m.key_value_dim or m.hidden_dim // m.num_heads
    rope_scaling = None
    if m.rope_scaling == "linear":
        rope_scaling = {"rope_type": "linear", "factor": m.rope_scaling_factor}
    elif m.rope_scaling == "llama3":
        rope_scaling = {
            "rope_type": "llama3",
            "factor": m.rope_scaling_factor,
            "low_freq_factor": m.rope_low_freq_factor,
            "high_freq_factor": m.rope_high_freq_factor,
            "original_max_position_embeddings": (
                m.rope_original_max_sequence_length
            ),
        }
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": m.vocabulary_size,
        "hidden_size": m.hidden_dim,
        "intermediate_size": m.intermediate_dim,
        "num_hidden_layers": m.num_layers,
        "num_attention_heads": m.num_heads,
        "num_key_value_heads": m.num_key_value_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": m.max_sequence_length,
        "rms_norm_eps": m.layer_norm_epsilon,
        "rope_theta": m.rope_theta,
        "rope_scaling": rope_scaling,
        "attention_bias": False,
        "attention_dropout": m.dropout,
        "mlp_bias": False,
        "tie_word_embeddings": m.tie_embedding_weights,
    }


# --- `kllm convert to-hf` (keras_llm.convert.to_hf) ------------------------

HF_ARCHITECTURE = "LlamaForCausalLM"


def hf_config(model_config, tokenizer):
    """The `config.json` of `LlamaForCausalLM` for a `LlamaConfig`, with
    the tokenizer's special ids."""
    bos = tokenizer.bos_id if tokenizer.bos_id is not None else tokenizer.eos_id
    return {
        **llama_hf_config(model_config),
        "bos_token_id": bos,
        "eos_token_id": tokenizer.eos_id,
        "pad_token_id": tokenizer.pad_id,
    }


def hf_weight_pairs(model):
    """Every weight of a `LlamaCausalLM` under `LlamaForCausalLM`'s names
    (no `lm_head.weight` when the head is tied)."""
    return llama_weight_pairs(model, "model.")


# --- `kllm convert hf` (hf_archs.ARCHS["llama"]) ---------------------------


def llama_tokenizer(src_dir, tokenizer_config):
    """The tokenizer of a Llama folder, read by `hf_tokenizer`: its
    `tokenizer.json` (Llama 3's byte-level BPE, or Llama 2's
    SentencePiece-style BPE), else Llama 2's `tokenizer.model`; or legacy
    GPT-2-style `vocab.json` + `merges.txt` (which must then agree with
    `tokenizer.json`). The legacy files' `eos_token` comes from
    `tokenizer_config.json`, else it is the first of Llama 3's, Llama 2's
    and GPT-2's end tokens in the vocabulary."""
    from keras_llm.convert import hf_archs
    from keras_llm.convert import hf_tokenizer
    from keras_llm.data import tokenizer as tokenizer_lib

    legacy_files = ("vocab.json", "merges.txt")
    present = [
        name
        for name in (*legacy_files, hf_tokenizer.TOKENIZER_FILE)
        if os.path.isfile(os.path.join(src_dir, name))
    ]
    model_file = os.path.join(src_dir, hf_tokenizer.LLAMA_MODEL_FILE)
    if not present and os.path.isfile(model_file):  # Llama 2's layout
        return hf_tokenizer.load_hf_tokenizer(src_dir)

    def legacy():
        vocabulary = os.path.join(src_dir, "vocab.json")
        eos = tokenizer_config.get("eos_token")
        if eos is None:
            with open(vocabulary, encoding="utf-8") as file:
                tokens = json.load(file)
            eos = next((t for t in _EOS_TOKENS if t in tokens), _EOS_TOKENS[0])
        return tokenizer_lib.BytePairTokenizer(
            vocabulary,
            os.path.join(src_dir, "merges.txt"),
            eos_token=hf_archs._content(eos),
        )

    return hf_tokenizer.checkpoint_tokenizer(
        src_dir,
        legacy_files,
        legacy,
        tokenizer_config,
        "llama",
        f", or Llama 2's {hf_tokenizer.LLAMA_MODEL_FILE}",
    )


def llama_weights(model, state_dict, hf_config):
    """`_Arch.weights`: loads the state dict; no notes."""
    load_llama_weights(model, state_dict)
    return []


def llama_data(model_config, tokenizer):
    """`_Arch.data`: causal LM examples of 512 tokens (or the model's
    maximum), no sentinels."""
    return config_lib.DataConfig(
        sequence_length=min(512, model_config.max_sequence_length),
        num_sentinels=0,
    )
