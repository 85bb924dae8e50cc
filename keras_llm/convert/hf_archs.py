"""Per-architecture rules for `convert_hf`: Hugging Face config → our model
dataclass, tokenizer files → our tokenizer, state dict → our weights.

Hugging Face names fall back to its own defaults when a config omits them.
"""

import logging
import os
from collections.abc import Callable
from typing import NamedTuple

from keras_llm import config as config_lib
from keras_llm.convert import llama
from keras_llm.convert import marian
from keras_llm.convert.bert import load_bert_weights
from keras_llm.convert.gpt2 import load_gpt2_weights
from keras_llm.convert.t5 import load_t5_weights

logger = logging.getLogger(__name__)

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
T5_SENTINELS = 100  # T5Tokenizer's default `extra_ids`
# Hugging Face activation names → ours.
_ACTIVATIONS = {
    "relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh", "silu": "silu", "swish": "silu",
}  # fmt: skip
_BERT_HEADS = ("BertForMaskedLM", "BertForPreTraining")


# --- T5 ----------------------------------------------------------------------


def _t5_model_config(c):
    if "T5EncoderModel" in (c.get("architectures") or []):
        raise ValueError(
            "T5EncoderModel checkpoints have no decoder: kllm convert hf "
            "needs T5ForConditionalGeneration (or T5Model)."
        )
    proj = str(c.get("feed_forward_proj", "relu"))
    parts = proj.split("-")
    gated = parts[0] == "gated" and len(parts) == 2
    name = "gelu_new" if proj == "gated-gelu" else parts[-1]  # as HF reads it
    if len(parts) != (2 if gated else 1) or name not in _ACTIVATIONS:
        raise ValueError(
            f"feed_forward_proj {proj!r} is not supported (expected "
            f"'ACT' or 'gated-ACT', ACT one of {', '.join(_ACTIVATIONS)})."
        )
    num_layers = c.get("num_layers", 6)
    # HF writes num_decoder_layers = num_layers when they are equal.
    num_decoder_layers = c.get("num_decoder_layers")
    if num_decoder_layers == num_layers:
        num_decoder_layers = None
    return config_lib.T5Config(
        vocabulary_size=c.get("vocab_size", 32128),
        num_layers=num_layers,
        num_heads=c.get("num_heads", 8),
        hidden_dim=c.get("d_model", 512),
        intermediate_dim=c.get("d_ff", 2048),
        key_value_dim=c.get("d_kv", 64),
        dropout=c.get("dropout_rate", 0.1),
        activation=_ACTIVATIONS[name],
        use_gated_activation=gated,
        layer_norm_epsilon=c.get("layer_norm_epsilon", 1e-6),
        # transformers 5 reads `false` here only as "do not scale the
        # decoder output"; v1.1 checkpoints also hold their own lm_head.
        tie_embedding_weights=c.get("tie_word_embeddings", True),
        num_buckets=c.get("relative_attention_num_buckets", 32),
        max_distance=c.get("relative_attention_max_distance", 128),
        num_decoder_layers=num_decoder_layers,
    )


def _t5_tokenizer(src_dir, tokenizer_config):
    from keras_llm.convert import hf_tokenizer

    # spiece.model, else tokenizer.json (sentinels: its <extra_id_N>).
    return hf_tokenizer.checkpoint_tokenizer(
        src_dir, ("spiece.model",),
        lambda: _t5_legacy_tokenizer(src_dir, tokenizer_config),
        tokenizer_config, "t5",
    )  # fmt: skip


def _t5_legacy_tokenizer(src_dir, tokenizer_config):
    from keras_llm.data import tokenizer as tokenizer_lib

    path = os.path.join(src_dir, "spiece.model")
    # As T5Tokenizer counts them: the <extra_id_i> tokens it lists, else
    # `extra_ids` (default 100).
    listed = {
        token for key in ("additional_special_tokens", "extra_special_tokens")
        for token in _tokens(tokenizer_config.get(key))
        if token.startswith("<extra_id_")
    }  # fmt: skip
    num_sentinels = len(listed) or tokenizer_config.get(
        "extra_ids", T5_SENTINELS
    )
    tokenizer = tokenizer_lib.SentencePieceTokenizer(
        path,
        num_sentinels,
        clean_up_tokenization_spaces=bool(
            tokenizer_config.get("clean_up_tokenization_spaces", False)
        ),
    )
    # Where the checkpoint numbers its sentinels, ours must agree.
    for token_id, token in (
        tokenizer_config.get("added_tokens_decoder") or {}
    ).items():
        token = _content(token)
        if token.startswith("<extra_id_") and token[10:-1].isdigit():
            i = int(token[10:-1])
            ours = tokenizer.sentinel_id(i) if i < num_sentinels else None
            if ours != int(token_id):
                raise ValueError(
                    f"{os.path.join(src_dir, TOKENIZER_CONFIG_FILE)} puts "
                    f"{token} at id {token_id}; a SentencePiece model of "
                    f"{tokenizer.num_pieces} pieces with {num_sentinels} "
                    f"sentinels puts it at {ours}."
                )
    return tokenizer


def _t5_weights(model, state_dict, hf_config):
    load_t5_weights(model.backbone, state_dict)
    return []


def _t5_data(model_config, tokenizer):
    return config_lib.DataConfig(num_sentinels=tokenizer.num_sentinels)


# --- GPT-2 -------------------------------------------------------------------


def _gpt2_model_config(c):
    activation = c.get("activation_function", "gelu_new")
    if _ACTIVATIONS.get(activation) != "gelu_tanh":
        raise ValueError(
            "keras_llm's GPT-2 uses gelu_new (tanh GELU). Received: "
            f"activation_function={activation!r}"
        )
    for key, expected in (
        ("scale_attn_weights", True),
        ("scale_attn_by_inverse_layer_idx", False),
        ("add_cross_attention", False),
    ):
        if c.get(key, expected) != expected:
            raise ValueError(
                f"{key}={c[key]!r} is not supported (keras_llm's GPT-2 is "
                f"the original: {key}={expected})."
            )
    hidden_dim = c.get("n_embd", 768)
    return config_lib.GPT2Config(
        vocabulary_size=c.get("vocab_size", 50257),
        num_layers=c.get("n_layer", 12),
        num_heads=c.get("n_head", 12),
        hidden_dim=hidden_dim,
        intermediate_dim=c.get("n_inner") or 4 * hidden_dim,
        dropout=c.get("resid_pdrop", 0.1),
        max_sequence_length=c.get("n_positions", 1024),
        layer_norm_epsilon=c.get("layer_norm_epsilon", 1e-5),
    )


def _gpt2_tokenizer(src_dir, tokenizer_config):
    from keras_llm.convert import hf_tokenizer
    from keras_llm.data import tokenizer as tokenizer_lib

    def legacy():
        eos = _content(tokenizer_config.get("eos_token") or "<|endoftext|>")
        return tokenizer_lib.BytePairTokenizer(
            os.path.join(src_dir, "vocab.json"),
            os.path.join(src_dir, "merges.txt"),
            eos_token=eos,
        )

    return hf_tokenizer.checkpoint_tokenizer(
        src_dir, ("vocab.json", "merges.txt"), legacy, tokenizer_config, "gpt2"
    )


def _gpt2_weights(model, state_dict, hf_config):
    load_gpt2_weights(model.backbone, state_dict)
    return []


# --- BERT --------------------------------------------------------------------


# Hugging Face's BERT `hidden_act` → ours (`gelu_new` and
# `gelu_pytorch_tanh` are the same tanh approximation).
_BERT_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
}


def _bert_model_config(c):
    hidden_act = c.get("hidden_act", "gelu")
    if hidden_act not in _BERT_ACTIVATIONS:
        raise ValueError(
            "keras_llm's BERT runs exact GELU (gelu) or its tanh "
            "approximation (gelu_new, gelu_pytorch_tanh). Received: "
            f"hidden_act={hidden_act!r}"
        )
    position = c.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise ValueError(
            "keras_llm's BERT has learned absolute positions. Received: "
            f"position_embedding_type={position!r}"
        )
    if c.get("is_decoder") or c.get("add_cross_attention"):
        raise ValueError("BERT as a decoder (is_decoder) is not supported.")
    return config_lib.BertConfig(
        vocabulary_size=c.get("vocab_size", 30522),
        num_layers=c.get("num_hidden_layers", 12),
        num_heads=c.get("num_attention_heads", 12),
        hidden_dim=c.get("hidden_size", 768),
        intermediate_dim=c.get("intermediate_size", 3072),
        dropout=c.get("hidden_dropout_prob", 0.1),
        max_sequence_length=c.get("max_position_embeddings", 512),
        num_segments=c.get("type_vocab_size", 2),
        layer_norm_epsilon=c.get("layer_norm_eps", 1e-12),
        activation=_BERT_ACTIVATIONS[hidden_act],
    )


def _bert_tokenizer(src_dir, tokenizer_config):
    from keras_llm.convert import hf_tokenizer
    from keras_llm.data import tokenizer as tokenizer_lib

    def legacy():
        strip = tokenizer_config.get("strip_accents")
        return tokenizer_lib.WordPieceTokenizer(
            os.path.join(src_dir, "vocab.txt"),
            lowercase=bool(tokenizer_config.get("do_lower_case", True)),
            strip_accents=None if strip is None else bool(strip),
            clean_up_tokenization_spaces=bool(
                tokenizer_config.get("clean_up_tokenization_spaces", False)
            ),
        )

    return hf_tokenizer.checkpoint_tokenizer(
        src_dir, ("vocab.txt",), legacy, tokenizer_config, "bert"
    )


def _bert_weights(model, state_dict, hf_config):
    # Some checkpoints name the output bias after the (tied) decoder.
    if (
        "cls.predictions.bias" not in state_dict
        and "cls.predictions.decoder.bias" in state_dict
    ):
        state_dict = dict(state_dict)
        state_dict["cls.predictions.bias"] = state_dict[
            "cls.predictions.decoder.bias"
        ]
    architectures = hf_config.get("architectures") or []
    with_head = "cls.predictions.bias" in state_dict or any(
        name in _BERT_HEADS for name in architectures
    )
    load_bert_weights(model, state_dict, with_mlm_head=with_head)
    if with_head:
        return []
    return [
        f"The checkpoint ({', '.join(architectures) or 'BertModel'}) has no "
        "masked-LM head: the head of BertMaskedLM keeps its random "
        "initialization (the backbone's outputs are the checkpoint's)."
    ]


def _learned_positions_data(model_config, tokenizer):
    # GPT-2 and BERT: no sentinels, no longer than the learned positions.
    return config_lib.DataConfig(
        sequence_length=min(512, model_config.max_sequence_length),
        num_sentinels=0,
    )


class _Arch(NamedTuple):
    model_config: Callable  # HF config dict → our model dataclass
    tokenizer: Callable  # (src_dir, tokenizer_config) → Tokenizer
    weights: Callable  # (task model, state dict, HF config) → notes
    data: Callable  # (model dataclass, tokenizer) → DataConfig


ARCHS = {
    "t5": _Arch(_t5_model_config, _t5_tokenizer, _t5_weights, _t5_data),
    "gpt2": _Arch(_gpt2_model_config, _gpt2_tokenizer, _gpt2_weights,
                  _learned_positions_data),
    "bert": _Arch(_bert_model_config, _bert_tokenizer, _bert_weights,
                  _learned_positions_data),
    "llama": _Arch(llama.llama_model_config, llama.llama_tokenizer,
                   llama.llama_weights, llama.llama_data),
    "marian": _Arch(marian.model_config, marian.tokenizer,
                    marian.load_weights, marian.data),
}  # fmt: skip


def fine_tuning(model_type):
    """Fine-tuning defaults: T5's (Adafactor at a constant 1e-3, Raffel et
    al.), else AdamW at 5e-5 with warmup and cosine decay (as for BERT)."""
    common = dict(global_batch_size=32, train_steps=10_000)
    if model_type == "t5":
        return config_lib.TrainConfig(
            optimizer="adafactor", learning_rate=1e-3, schedule="constant",
            warmup_steps=0, **common,
        )  # fmt: skip
    return config_lib.TrainConfig(
        optimizer="adamw", learning_rate=5e-5, schedule="cosine",
        warmup_steps=500, weight_decay=0.01, **common,
    )  # fmt: skip


# --- Helpers ----------------------------------------------------------------


def _content(token):
    """A special token as text (tokenizer configs may store `{content}`)."""
    return token.get("content", "") if isinstance(token, dict) else str(token)


def _tokens(value):
    """The tokens of a list (or a name → token mapping) of special tokens."""
    if isinstance(value, dict):
        value = value.values()
    return [_content(token) for token in value or []]


def _tokenizer_file(src_dir, name, model_type, hint=""):
    path = os.path.join(src_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing: a {model_type} checkpoint needs its "
            f"tokenizer files{hint}."
        )
    return path
