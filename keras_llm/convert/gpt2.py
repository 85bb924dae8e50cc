"""Hugging Face `GPT2LMHeadModel` / `GPT2Model` weights → `GPT2Backbone`."""

from keras_llm.convert import weights
from keras_llm.convert.weights import assign_weights
from keras_llm.convert.weights import find_prefix


def gpt2_weight_pairs(backbone, prefix=""):
    """`(variable, hf_name, transform)` for every weight of a GPT-2 backbone.

    HF GPT-2 uses `Conv1D` layers, whose weights are stored `(in, out)` like
    our kernels, and one fused `c_attn` `(D, 3D)` for queries, keys and
    values (ours are `(D, H*K)` each, with `H*K = D`).
    """
    d = backbone.hidden_dim
    pairs = [
        (backbone.token_embedding.embeddings, f"{prefix}wte.weight", None),
        (
            backbone.position_embedding.position_embeddings,
            f"{prefix}wpe.weight",
            None,
        ),
        (backbone.layer_norm.gamma, f"{prefix}ln_f.weight", None),
        (backbone.layer_norm.beta, f"{prefix}ln_f.bias", None),
    ]
    for i, block in enumerate(backbone.transformer_blocks):
        p = f"{prefix}h.{i}."
        attention = block.self_attention
        for j, dense in enumerate(
            (attention.query_dense, attention.key_dense, attention.value_dense)
        ):
            pairs += [
                (
                    dense.kernel,
                    f"{p}attn.c_attn.weight",
                    weights.columns(j * d, d, (d, 3 * d), (d, d)),
                ),  # (D, H*K)
                (
                    dense.bias,
                    f"{p}attn.c_attn.bias",
                    weights.columns(j * d, d, (3 * d,), (d,)),
                ),
            ]
        feedforward = block.feedforward
        pairs += [
            (attention.output_dense.kernel, f"{p}attn.c_proj.weight", None),
            (attention.output_dense.bias, f"{p}attn.c_proj.bias", None),
            (block.self_attention_norm.gamma, f"{p}ln_1.weight", None),
            (block.self_attention_norm.beta, f"{p}ln_1.bias", None),
            (feedforward.inner_dense.kernel, f"{p}mlp.c_fc.weight", None),
            (feedforward.inner_dense.bias, f"{p}mlp.c_fc.bias", None),
            (feedforward.output_dense.kernel, f"{p}mlp.c_proj.weight", None),
            (feedforward.output_dense.bias, f"{p}mlp.c_proj.bias", None),
            (block.feedforward_norm.gamma, f"{p}ln_2.weight", None),
            (block.feedforward_norm.beta, f"{p}ln_2.bias", None),
        ]
    return pairs


def load_gpt2_weights(backbone, state_dict):
    """Copies a Hugging Face GPT-2 state dict (name → numpy array) into
    `backbone`, checking every name and shape first.

    Accepts `GPT2LMHeadModel` checkpoints (names under `transformer.`; the
    `lm_head` is the tied embedding) and `GPT2Model` ones (no prefix).

    Raises:
        ValueError: listing every missing or misshapen weight; nothing is
            assigned then.
    """
    prefix = find_prefix(state_dict, "wte.weight", ("transformer.",))
    assign_weights(gpt2_weight_pairs(backbone, prefix), state_dict)


# --- Out: keras_llm → Hugging Face -------------------------------------------

HF_ARCHITECTURE = "GPT2LMHeadModel"


def hf_config(model_config, tokenizer):
    """The `config.json` entries of `GPT2LMHeadModel` for a `GPT2Config`."""
    c = model_config
    return {
        "vocab_size": c.vocabulary_size,
        "n_positions": c.max_sequence_length,
        "n_embd": c.hidden_dim,
        "n_layer": c.num_layers,
        "n_head": c.num_heads,
        "n_inner": c.intermediate_dim,
        "activation_function": "gelu_new",
        "resid_pdrop": c.dropout,
        "embd_pdrop": c.dropout,
        "attn_pdrop": c.dropout,
        "layer_norm_epsilon": c.layer_norm_epsilon,
        "bos_token_id": tokenizer.bos_id
        if tokenizer.bos_id is not None
        else tokenizer.eos_id,
        "eos_token_id": tokenizer.eos_id,
        "tie_word_embeddings": True,
    }


def hf_weight_pairs(model):
    """Every weight of a `GPT2CausalLM` under `GPT2LMHeadModel`'s names
    (its `lm_head` is the tied token embedding)."""
    return gpt2_weight_pairs(model.backbone, "transformer.")
