"""Hugging Face `BertModel` / `BertForMaskedLM` weights → `BertBackbone`,
`BertMaskedLM`."""

import logging

from keras_llm.convert import weights
from keras_llm.convert.weights import assign_weights
from keras_llm.convert.weights import find_prefix

logger = logging.getLogger(__name__)

_POOLER = "pooler.dense.weight"


_transpose = weights.transposed()


def bert_weight_pairs(backbone, prefix="", with_pooler=True):
    """`(variable, hf_name, transform)` for every weight of a BERT backbone.

    torch `Linear` weights are `(out, in)`, our kernels `(in, out)` (the
    attention's too: `(D, H*K)` and `(H*K, D)`).
    """

    def norm(layer, name):
        return [
            (layer.gamma, f"{name}.weight", None),
            (layer.beta, f"{name}.bias", None),
        ]

    e = f"{prefix}embeddings."
    pairs = [
        (
            backbone.token_embedding.embeddings,
            f"{e}word_embeddings.weight",
            None,
        ),
        (
            backbone.position_embedding.position_embeddings,
            f"{e}position_embeddings.weight",
            None,
        ),
        (
            backbone.segment_embedding.embeddings,
            f"{e}token_type_embeddings.weight",
            None,
        ),
        *norm(backbone.embeddings_layer_norm, f"{e}LayerNorm"),
    ]
    for i, block in enumerate(backbone.transformer_blocks):
        p = f"{prefix}encoder.layer.{i}."
        attention = block.self_attention
        for dense, name in (
            (attention.query_dense, "query"),
            (attention.key_dense, "key"),
            (attention.value_dense, "value"),
        ):
            pairs += [
                (dense.kernel, f"{p}attention.self.{name}.weight", _transpose),
                (dense.bias, f"{p}attention.self.{name}.bias", None),
            ]
        feedforward = block.feedforward
        pairs += [
            (
                attention.output_dense.kernel,
                f"{p}attention.output.dense.weight",
                _transpose,
            ),
            (
                attention.output_dense.bias,
                f"{p}attention.output.dense.bias",
                None,
            ),
            *norm(block.self_attention_norm, f"{p}attention.output.LayerNorm"),
            (
                feedforward.inner_dense.kernel,
                f"{p}intermediate.dense.weight",
                _transpose,
            ),
            (feedforward.inner_dense.bias, f"{p}intermediate.dense.bias", None),
            (
                feedforward.output_dense.kernel,
                f"{p}output.dense.weight",
                _transpose,
            ),
            (feedforward.output_dense.bias, f"{p}output.dense.bias", None),
            *norm(block.feedforward_norm, f"{p}output.LayerNorm"),
        ]
    if with_pooler:
        pairs += [
            (
                backbone.pooled_dense.kernel,
                f"{prefix}pooler.dense.weight",
                _transpose,
            ),
            (backbone.pooled_dense.bias, f"{prefix}pooler.dense.bias", None),
        ]
    return pairs


def bert_mlm_head_pairs(masked_lm):
    """`(variable, hf_name, transform)` for the head of a `BertMaskedLM`.

    The decoder matrix is the tied token embedding; only its bias is here.
    """
    return [
        (
            masked_lm.transform_dense.kernel,
            "cls.predictions.transform.dense.weight",
            _transpose,
        ),
        (
            masked_lm.transform_dense.bias,
            "cls.predictions.transform.dense.bias",
            None,
        ),
        (
            masked_lm.transform_layer_norm.gamma,
            "cls.predictions.transform.LayerNorm.weight",
            None,
        ),
        (
            masked_lm.transform_layer_norm.beta,
            "cls.predictions.transform.LayerNorm.bias",
            None,
        ),
        (masked_lm.output_bias.bias, "cls.predictions.bias", None),
    ]


def load_bert_weights(model, state_dict, with_mlm_head=None):
    """Copies a Hugging Face BERT state dict (name → numpy array) into a
    `BertBackbone` or a `BertMaskedLM`, checking every name and shape first.

    Accepts `BertModel` checkpoints (no prefix) and `BertForMaskedLM` /
    `BertForPreTraining` ones (backbone under `bert.`, head under
    `cls.predictions.`). `BertForMaskedLM` has no pooler: when the checkpoint
    holds none, the pooler keeps its initialization (logged). Layer norms
    named the original TF way (`LayerNorm.gamma` / `.beta`, as in the files
    of bert-base-uncased) are read as `.weight` / `.bias`, as Hugging Face
    does.

    Args:
        model: `BertBackbone`, or `BertMaskedLM` (its backbone is loaded).
        state_dict: mapping from Hugging Face names to numpy arrays.
        with_mlm_head: bool. Also load the masked-LM head (`model` must be
            a `BertMaskedLM`). Defaults to `True` for a `BertMaskedLM`,
            `False` for a backbone.

    Raises:
        ValueError: listing every missing or misshapen weight; nothing is
            assigned then.
    """
    is_task = hasattr(model, "backbone")
    backbone = model.backbone if is_task else model
    if with_mlm_head is None:
        with_mlm_head = is_task
    if with_mlm_head and not is_task:
        raise ValueError(
            "`with_mlm_head=True` needs a `BertMaskedLM`. Received: "
            f"{type(model).__name__}"
        )
    state_dict = {
        name.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
            "LayerNorm.beta", "LayerNorm.bias"
        ): value
        for name, value in state_dict.items()
    }
    prefix = find_prefix(
        state_dict, "embeddings.word_embeddings.weight", ("bert.",)
    )
    with_pooler = prefix + _POOLER in state_dict
    if not with_pooler:
        logger.info(
            "The checkpoint has no %s (BertForMaskedLM drops it): the "
            "pooler keeps its initialization.",
            prefix + _POOLER,
        )
    pairs = bert_weight_pairs(backbone, prefix, with_pooler)
    if with_mlm_head:
        pairs += bert_mlm_head_pairs(model)
    assign_weights(pairs, state_dict)


# --- Out: keras_llm → Hugging Face -------------------------------------------

HF_ARCHITECTURE = "BertForMaskedLM"


def hf_config(model_config, tokenizer):
    """The `config.json` entries of `BertForMaskedLM` for a `BertConfig`."""
    c = model_config
    return {
        "vocab_size": c.vocabulary_size,
        "hidden_size": c.hidden_dim,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "intermediate_size": c.intermediate_dim,
        # transformers' name for the tanh approximation ours runs.
        "hidden_act": {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh"}[
            c.activation
        ],
        "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.dropout,
        "max_position_embeddings": c.max_sequence_length,
        "type_vocab_size": c.num_segments,
        "layer_norm_eps": c.layer_norm_epsilon,
        "pad_token_id": tokenizer.pad_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }


def hf_weight_pairs(model):
    """Every weight of a `BertMaskedLM` under `BertForMaskedLM`'s names.

    `BertForMaskedLM` has no pooler, so ours (unused by the masked-LM
    head) is not written: `kllm convert to-hf` says so.
    """
    return bert_weight_pairs(
        model.backbone, "bert.", with_pooler=False
    ) + bert_mlm_head_pairs(model)


def hf_notes(model_config):
    """Warnings for `kllm convert to-hf`.

    Hugging Face's BERT has one `layer_norm_eps` and one `hidden_act`, so
    a masked-LM head setting of its own (keras-hub's exact GELU and 1e-5
    under a tanh-GELU encoder) cannot be written: Hugging Face's head runs
    the encoder's, and its logits move a little (about 1e-3 for keras-hub's
    settings). A warning, not a refusal: the encoder is written exactly.
    """
    notes = [
        "BertForMaskedLM has no pooler: the pooler's weights (unused by the "
        "masked-LM head) are not written."
    ]
    c = model_config
    for key, shared, value in (
        ("head_activation", "hidden_act", c.activation),
        ("head_layer_norm_epsilon", "layer_norm_eps", c.layer_norm_epsilon),
    ):
        head = getattr(c, key)
        if head is not None and head != value:
            notes.append(
                f"model.{key}={head} is not written: Hugging Face's BERT "
                f"has one {shared} ({value}), which its masked-LM head uses "
                "too, so its logits differ slightly from ours (about 1e-3)."
            )
    return notes
