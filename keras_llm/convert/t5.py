"""Hugging Face `T5ForConditionalGeneration` weights → `T5Backbone`."""

from keras_llm.convert import weights
from keras_llm.convert.weights import assign_weights


def _attention_pairs(attention, prefix):
    # torch Linear stores (out, in): (H*K, D) for q/k/v and (D, H*K) for the
    # output; our kernels are (in, out).
    transpose = weights.transposed()
    return [
        (attention.query_dense.kernel, f"{prefix}.q.weight", transpose),
        (attention.key_dense.kernel, f"{prefix}.k.weight", transpose),
        (attention.value_dense.kernel, f"{prefix}.v.weight", transpose),
        (attention.output_dense.kernel, f"{prefix}.o.weight", transpose),
    ]


def _feedforward_pairs(feedforward, prefix, gated):
    transpose = weights.transposed()

    if gated:
        pairs = [
            (
                feedforward.inner_dense.kernel,
                f"{prefix}.wi_0.weight",
                transpose,
            ),
            (
                feedforward.linear_dense.kernel,
                f"{prefix}.wi_1.weight",
                transpose,
            ),
        ]
    else:
        pairs = [
            (feedforward.inner_dense.kernel, f"{prefix}.wi.weight", transpose)
        ]
    return pairs + [
        (feedforward.output_dense.kernel, f"{prefix}.wo.weight", transpose)
    ]


def t5_weight_pairs(backbone):
    """`(variable, hf_name, transform)` for every weight of a T5 backbone."""
    gated = backbone.use_gated_activation
    pairs = [(backbone.token_embedding.embeddings, "shared.weight", None)]
    if not backbone.tie_embedding_weights:
        pairs.append(
            (
                backbone.token_embedding.reverse_embeddings,
                "lm_head.weight",
                weights.transposed(),
            )
        )
    for side in ("encoder", "decoder"):
        bias = getattr(backbone, f"{side}_relative_bias")
        pairs.append(
            (
                bias.embeddings,
                f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                None,
            )
        )
        final_norm = getattr(backbone, f"{side}_final_norm")
        pairs.append(
            (final_norm.scale, f"{side}.final_layer_norm.weight", None)
        )
        for i, block in enumerate(getattr(backbone, f"{side}_blocks")):
            prefix = f"{side}.block.{i}.layer"
            pairs += _attention_pairs(
                block.self_attention, f"{prefix}.0.SelfAttention"
            )
            pairs.append(
                (
                    block.self_attention_norm.scale,
                    f"{prefix}.0.layer_norm.weight",
                    None,
                )
            )
            ff_layer = 1
            if side == "decoder":
                pairs += _attention_pairs(
                    block.cross_attention, f"{prefix}.1.EncDecAttention"
                )
                pairs.append(
                    (
                        block.cross_attention_norm.scale,
                        f"{prefix}.1.layer_norm.weight",
                        None,
                    )
                )
                ff_layer = 2
            pairs += _feedforward_pairs(
                block.feedforward, f"{prefix}.{ff_layer}.DenseReluDense", gated
            )
            pairs.append(
                (
                    block.feedforward_norm.scale,
                    f"{prefix}.{ff_layer}.layer_norm.weight",
                    None,
                )
            )
    return pairs


def load_t5_weights(backbone, state_dict):
    """Copies a Hugging Face T5 state dict (name → numpy array) into
    `backbone`, checking every name and shape first."""
    assign_weights(t5_weight_pairs(backbone), state_dict)


# --- Out: keras_llm → Hugging Face -------------------------------------------

HF_ARCHITECTURE = "T5ForConditionalGeneration"
# Our activation names → Hugging Face's (`feed_forward_proj`).
_HF_ACTIVATIONS = {
    "relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new", "silu": "silu",
}  # fmt: skip


def hf_config(model_config, tokenizer):
    """The `config.json` entries of `T5ForConditionalGeneration` for a
    `T5Config` (the inverse of `kllm convert hf`'s mapping)."""
    c = model_config
    activation = _HF_ACTIVATIONS[c.activation]
    if c.use_gated_activation:
        # HF reads "gated-gelu" as gelu_new (T5 v1.1's activation).
        activation = "gated-" + (
            "gelu" if activation == "gelu_new" else activation
        )
    head_dim = c.key_value_dim or c.hidden_dim // c.num_heads
    return {
        "vocab_size": c.vocabulary_size,
        "d_model": c.hidden_dim,
        "d_kv": head_dim,
        "d_ff": c.intermediate_dim,
        "num_layers": c.num_layers,
        "num_decoder_layers": c.num_decoder_layers or c.num_layers,
        "num_heads": c.num_heads,
        "relative_attention_num_buckets": c.num_buckets,
        "relative_attention_max_distance": c.max_distance,
        "dropout_rate": c.dropout,
        "layer_norm_epsilon": c.layer_norm_epsilon,
        "feed_forward_proj": activation,
        "tie_word_embeddings": c.tie_embedding_weights,
        "is_encoder_decoder": True,
        # Our decoders start from the pad id, as T5's.
        "decoder_start_token_id": tokenizer.pad_id,
        "pad_token_id": tokenizer.pad_id,
        "eos_token_id": tokenizer.eos_id,
    }


def hf_weight_pairs(model):
    """The pairs `kllm convert to-hf` writes: every weight of the task
    model under `T5ForConditionalGeneration`'s names."""
    return t5_weight_pairs(model.backbone)
