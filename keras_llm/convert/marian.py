"""The original Transformer ↔ Hugging Face `MarianMTModel`.

Marian is the Transformer of Vaswani et al. as Hugging Face has it:
post-norm blocks, sinusoidal positions, one embedding shared by source,
target and output, scaled by `sqrt(D)` on the way in. Two differences are
bridged here:

- Marian lays its sinusoids out as `[sin | cos]` (all sines, then all
  cosines); ours interleave them (`sin, cos, sin, cos, ...`). Marian does
  not save its position table (it recomputes it), so instead the whole
  model is written with its `D` channels permuted: channel `i` of Marian's
  residual stream is our channel `PERM[i]` (even channels first, then the
  odd ones). Every weight that reads or writes the residual stream (the
  embedding, the attention and feed-forward kernels, the layer norms) is
  permuted the same way, so the two models compute the same logits.
- Marian's layer norms have epsilon 1e-5, fixed; a model of another
  epsilon is written with a warning (its outputs differ slightly).
"""

import os

import numpy as np

from keras_llm import config as config_lib
from keras_llm.convert import weights
from keras_llm.convert.weights import Layout

HF_ARCHITECTURE = "MarianMTModel"
HF_LAYER_NORM_EPSILON = 1e-5  # nn.LayerNorm's default: Marian's, fixed


def channel_order(hidden_dim):
    """`PERM`: Marian's channel `i` is our channel `PERM[i]`."""
    return np.concatenate(
        [np.arange(0, hidden_dim, 2), np.arange(1, hidden_dim, 2)]
    )


def transformer_weight_pairs(backbone):
    """`(variable, hf_name, Layout)` for every weight of a
    `TransformerBackbone`, under `MarianMTModel`'s names."""
    perm = channel_order(backbone.hidden_dim)
    inv = np.argsort(perm)  # our channel j is Marian's inv[j]

    # Our layout ← Hugging Face's (forward), and back (inverse).
    vector = Layout(lambda w: w[inv], lambda v: v[perm])
    embedding = Layout(lambda w: w[:, inv], lambda v: v[:, perm])
    # A torch Linear (out, in) that reads the residual stream: (N, D) ↔ our
    # kernel (D, N) (queries, keys and values: N = H*K; fc1: N = F).
    reads = Layout(lambda w: w.T[inv], lambda v: v[perm].T)
    # One that writes it: (D, N) ↔ (N, D) (the attention output, fc2).
    writes = Layout(lambda w: w[inv].T, lambda v: v[:, perm].T)

    def attention(layer, prefix):
        pairs = []
        for dense, name in (
            (layer.query_dense, "q_proj"),
            (layer.key_dense, "k_proj"),
            (layer.value_dense, "v_proj"),
        ):
            pairs += [
                (dense.kernel, f"{prefix}.{name}.weight", reads),
                (dense.bias, f"{prefix}.{name}.bias", None),
            ]
        return pairs + [
            (layer.output_dense.kernel, f"{prefix}.out_proj.weight", writes),
            (layer.output_dense.bias, f"{prefix}.out_proj.bias", vector),
        ]

    def norm(layer, prefix):
        return [
            (layer.gamma, f"{prefix}.weight", vector),
            (layer.beta, f"{prefix}.bias", vector),
        ]

    def feedforward(block, prefix):
        ff = block.feedforward
        return [
            (ff.inner_dense.kernel, f"{prefix}.fc1.weight", reads),
            (ff.inner_dense.bias, f"{prefix}.fc1.bias", None),
            (ff.output_dense.kernel, f"{prefix}.fc2.weight", writes),
            (ff.output_dense.bias, f"{prefix}.fc2.bias", vector),
            *norm(block.feedforward_norm, f"{prefix}.final_layer_norm"),
        ]

    pairs = [
        (backbone.token_embedding.embeddings, "model.shared.weight", embedding)
    ]
    for i, block in enumerate(backbone.encoder_blocks):
        p = f"model.encoder.layers.{i}"
        pairs += attention(block.self_attention, f"{p}.self_attn")
        pairs += norm(block.self_attention_norm, f"{p}.self_attn_layer_norm")
        pairs += feedforward(block, p)
    for i, block in enumerate(backbone.decoder_blocks):
        p = f"model.decoder.layers.{i}"
        pairs += attention(block.self_attention, f"{p}.self_attn")
        pairs += norm(block.self_attention_norm, f"{p}.self_attn_layer_norm")
        pairs += attention(block.cross_attention, f"{p}.encoder_attn")
        pairs += norm(
            block.cross_attention_norm, f"{p}.encoder_attn_layer_norm"
        )
        pairs += feedforward(block, p)
    return pairs


# --- In: Hugging Face → keras_llm --------------------------------------------


def model_config(c):
    """A `MarianConfig` dict → our `TransformerConfig`.

    Raises:
        ValueError: a Marian setting the original Transformer does not have
            (named, with the value it needs).
    """
    required = {
        "activation_function": "relu",
        "scale_embedding": True,
        "static_position_embeddings": True,
        "normalize_embedding": False,
        "share_encoder_decoder_embeddings": True,
        "add_final_layer_norm": False,
        "normalize_before": False,
    }
    for key, expected in required.items():
        if c.get(key, expected) != expected:
            raise ValueError(
                f"{key}={c[key]!r} is not supported (keras_llm's Transformer "
                f"needs {key}={expected!r})."
            )
    layers = c.get("encoder_layers", 12)
    heads = c.get("encoder_attention_heads", 16)
    ffn = c.get("encoder_ffn_dim", 4096)
    vocabulary = c.get("vocab_size", 58101)
    for key, value in (
        ("decoder_layers", layers),
        ("decoder_attention_heads", heads),
        ("decoder_ffn_dim", ffn),
        ("decoder_vocab_size", vocabulary),
    ):
        if c.get(key) not in (None, value):
            encoder_key = (
                "vocab_size"
                if key == "decoder_vocab_size"
                else (key.replace("decoder", "encoder"))
            )
            raise ValueError(
                f"keras_llm's Transformer has the same {key[8:]} in encoder "
                f"and decoder. Received: {encoder_key}={value}, "
                f"{key}={c[key]}"
            )
    hidden_dim = c.get("d_model", 1024)
    if hidden_dim % 2:
        raise ValueError(f"d_model must be even. Received: {hidden_dim}")
    return config_lib.TransformerConfig(
        vocabulary_size=vocabulary,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=hidden_dim,
        intermediate_dim=ffn,
        dropout=c.get("dropout", 0.1),
        layer_norm_epsilon=HF_LAYER_NORM_EPSILON,
    )


def load_weights(model, state_dict, hf_config):
    """Copies a `MarianMTModel` state dict into a `TransformerSeq2SeqLM`.

    Returns:
        Notes for the user (none).

    Raises:
        ValueError: every missing or misshapen weight, or a non-zero
            `final_logits_bias` (our Transformer's output has no bias).
    """
    bias = state_dict.get("final_logits_bias")
    if bias is not None and np.any(bias):
        raise ValueError(
            "final_logits_bias is not zero: keras_llm's Transformer has no "
            "output bias."
        )
    weights.assign_weights(transformer_weight_pairs(model.backbone), state_dict)
    return []


def tokenizer(src_dir, tokenizer_config):
    """The tokenizer of a Marian folder: its `tokenizer.json` (as
    `kllm convert to-hf` writes it). The legacy `source.spm` /
    `target.spm` pair with its own `vocab.json` ids is not read."""
    from keras_llm.convert import hf_tokenizer

    path = os.path.join(src_dir, hf_tokenizer.TOKENIZER_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing: keras_llm reads a Marian checkpoint's "
            "tokenizer from tokenizer.json (source.spm/target.spm with "
            "vocab.json are not supported)."
        )
    return hf_tokenizer.load_hf_tokenizer(src_dir)


def data(model_config, tokenizer):
    return config_lib.DataConfig(num_sentinels=0)


# --- Out: keras_llm → Hugging Face -------------------------------------------


def hf_config(model_config, tokenizer):
    """The `config.json` entries of `MarianMTModel` for a
    `TransformerConfig`."""
    c = model_config
    return {
        "vocab_size": c.vocabulary_size,
        "decoder_vocab_size": c.vocabulary_size,
        "d_model": c.hidden_dim,
        "encoder_layers": c.num_layers,
        "decoder_layers": c.num_layers,
        "encoder_attention_heads": c.num_heads,
        "decoder_attention_heads": c.num_heads,
        "encoder_ffn_dim": c.intermediate_dim,
        "decoder_ffn_dim": c.intermediate_dim,
        "activation_function": "relu",
        "dropout": c.dropout,
        "attention_dropout": c.dropout,
        "activation_dropout": c.dropout,
        "scale_embedding": True,
        "static_position_embeddings": True,
        "share_encoder_decoder_embeddings": True,
        "tie_word_embeddings": True,
        # Sinusoids have no length limit; Marian's table needs one.
        "max_position_embeddings": 1024,
        "is_encoder_decoder": True,
        "pad_token_id": tokenizer.pad_id,
        "decoder_start_token_id": tokenizer.pad_id,
        "eos_token_id": tokenizer.eos_id,
        "forced_eos_token_id": tokenizer.eos_id,
        "bos_token_id": tokenizer.bos_id,
    }


def hf_weight_pairs(model):
    return transformer_weight_pairs(model.backbone)


def hf_notes(model_config):
    """Warnings for `kllm convert to-hf`."""
    if model_config.layer_norm_epsilon == HF_LAYER_NORM_EPSILON:
        return []
    return [
        f"Marian's layer norms use epsilon {HF_LAYER_NORM_EPSILON:g}; this "
        f"model's use {model_config.layer_norm_epsilon:g}, so the Hugging "
        "Face model's outputs differ slightly from ours."
    ]
