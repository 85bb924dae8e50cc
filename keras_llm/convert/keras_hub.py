"""keras-hub presets ↔ keras_llm run directories, both ways.

```
PRESET/config.json        T5Backbone | GPT2Backbone | BertBackbone
                          ⇄ RUN_DIR/config.yaml (model; data and train hold
                            fine-tuning defaults)
PRESET/model.weights.h5   (+ task.weights.h5: BertMaskedLM's head)
                          ⇄ RUN_DIR/checkpoints/ (model only, step 0)
PRESET/tokenizer.json + assets/tokenizer/ (vocabulary.spm |
  vocabulary.json + merges.txt | vocabulary.txt)
                          ⇄ RUN_DIR/tokenizer/
PRESET/task.json, preprocessor.json, metadata.json: written by keras-hub
```
keras-hub itself reads and writes the presets (`from_preset`,
`save_to_preset`), so a preset converts exactly as keras-hub would load it.
Weights go variable by variable through one table per architecture,
`(our variable, keras-hub attribute path, Layout)`: the path names the
keras-hub variable by attributes (`transformer_layers.0.
_self_attention_layer._query_dense.kernel`), because keras-hub's variable
paths depend on how many layers were built before. Every name and shape is
checked before anything is assigned, both ways, and every mismatch is
listed. keras-hub is the optional extra `keras_llm[keras-hub]`.
"""

import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from keras_llm import config as config_lib
from keras_llm import rundir
from keras_llm.convert import files
from keras_llm.convert import hf_archs
from keras_llm.convert import weights

logger = logging.getLogger(__name__)

INSTALL = "pip install 'keras_llm[keras-hub]'"
CONFIG_FILE = "config.json"  # keras-hub's names (keras_hub.src.utils)
TASK_CONFIG_FILE = "task.json"
TASK_WEIGHTS_FILE = "task.weights.h5"
TOKENIZER_CONFIG_FILE = "tokenizer.json"
WEIGHTS_FILES = ("model.weights.h5", "model.weights.json")  # whole, sharded
# keras-hub's T5 fixes its relative-position buckets (T5MultiHeadAttention).
HUB_T5_BUCKETS, HUB_T5_MAX_DISTANCE = 32, 128
HUB_GPT2_EPSILON, HUB_BERT_EPSILON = 1e-5, 1e-12  # fixed by keras-hub too
# keras-hub's BERT, fixed too: tanh GELU in the encoder; exact GELU and a
# layer-norm epsilon of 1e-5 in BertMaskedLM's head (MaskedLMHead).
HUB_BERT_SETTINGS = dict(
    layer_norm_epsilon=HUB_BERT_EPSILON,
    activation="gelu_tanh",
    head_activation="gelu",
    head_layer_norm_epsilon=1e-5,
)


def import_keras_hub():
    """`keras_hub`, or a `ValueError` naming the extra to install (the CLI
    prints it as one line)."""
    try:
        import keras_hub
    except ImportError:
        raise ValueError(
            f"Converting keras-hub presets needs keras-hub: {INSTALL}"
        ) from None
    return keras_hub


# --- T5 ----------------------------------------------------------------------


def _hub_activation_name(backbone):
    """The name of a keras-hub backbone's activation function, in ours."""
    name = backbone.get_config()["activation"]
    if isinstance(name, dict):  # a registered function, e.g. gelu_approximate
        name = str(name.get("config", ""))
    name = name.split(">")[-1]
    return {"gelu_approximate": "gelu_tanh", "swish": "silu"}.get(name, name)


def _t5_model_config(backbone):
    activation = _hub_activation_name(backbone)
    if activation not in ("relu", "gelu", "gelu_tanh", "silu"):
        raise ValueError(
            f"T5Backbone activation {activation!r} is not supported "
            "(keras_llm's T5 has relu, gelu, gelu_tanh or silu)."
        )
    return config_lib.T5Config(
        vocabulary_size=backbone.vocabulary_size,
        num_layers=backbone.num_layers,
        num_heads=backbone.num_heads,
        hidden_dim=backbone.hidden_dim,
        intermediate_dim=backbone.intermediate_dim,
        key_value_dim=backbone.key_value_dim,
        dropout=backbone.dropout,
        activation=activation,
        use_gated_activation=backbone.use_gated_activation,
        layer_norm_epsilon=backbone.layer_norm_epsilon,
        tie_embedding_weights=backbone.tie_embedding_weights,
        num_buckets=HUB_T5_BUCKETS,
        max_distance=HUB_T5_MAX_DISTANCE,
    )


def _t5_hub_backbone(keras_hub, c):
    if c.num_decoder_layers not in (None, c.num_layers):
        raise ValueError(
            "keras-hub's T5 has as many decoder as encoder layers. Received: "
            f"num_layers={c.num_layers}, "
            f"num_decoder_layers={c.num_decoder_layers}"
        )
    if (c.num_buckets, c.max_distance) != (HUB_T5_BUCKETS, HUB_T5_MAX_DISTANCE):
        raise ValueError(
            "keras-hub's T5 has 32 relative-position buckets and max distance "
            f"128. Received: num_buckets={c.num_buckets}, "
            f"max_distance={c.max_distance}"
        )
    if c.activation == "gelu_tanh":
        from keras_hub.src.utils.keras_utils import gelu_approximate

        activation = gelu_approximate
    else:
        activation = c.activation
    return keras_hub.models.T5Backbone(
        vocabulary_size=c.vocabulary_size,
        num_layers=c.num_layers,
        num_heads=c.num_heads,
        hidden_dim=c.hidden_dim,
        intermediate_dim=c.intermediate_dim,
        key_value_dim=c.key_value_dim,
        dropout=c.dropout,
        activation=activation,
        use_gated_activation=c.use_gated_activation,
        layer_norm_epsilon=c.layer_norm_epsilon,
        tie_embedding_weights=c.tie_embedding_weights,
    )


def t5_pairs(model, with_head=True):
    """`(our variable, keras-hub path, Layout)` for every weight of a
    `T5Seq2SeqLM`. Its head is the token embedding (tied, or its
    `reverse_embeddings`): it has no weights of its own, so `with_head`
    changes nothing."""
    b = model.backbone
    # keras-hub projects with Dense (D, H*K) and (H*K, D), as we do.
    pairs = [(b.token_embedding.embeddings, "token_embedding.embeddings", None)]
    if not b.tie_embedding_weights:
        pairs.append(
            (
                b.token_embedding.reverse_embeddings,
                "token_embedding.reverse_embeddings",
                None,
            )
        )
    for side in ("encoder", "decoder"):
        layers = f"{side}_transformer_layers"
        pairs += [
            (
                getattr(b, f"{side}_relative_bias").embeddings,
                f"{layers}.0.self_attention.relative_attention_bias",
                None,
            ),
            (
                getattr(b, f"{side}_final_norm").scale,
                f"{side}_layer_norm.weight",
                None,
            ),
        ]
        for i, block in enumerate(getattr(b, f"{side}_blocks")):
            p = f"{layers}.{i}"
            attentions = [("self_attention", block.self_attention_norm)]
            if side == "decoder":
                attentions.append(
                    ("cross_attention", block.cross_attention_norm)
                )
            for name, norm in attentions:
                attention = getattr(block, name)
                pairs += [
                    (
                        getattr(attention, f"{ours}_dense").kernel,
                        f"{p}.{name}.{theirs}_projector.kernel",
                        None,
                    )
                    for ours, theirs in (
                        ("query", "query"),
                        ("key", "key"),
                        ("value", "value"),
                        ("output", "output"),
                    )
                ]
                pairs.append(
                    (norm.scale, f"{p}.{name}_layer_norm.weight", None)
                )
            feedforward = block.feedforward
            # The activated projection is the first; the gate is linear.
            pairs.append(
                (
                    feedforward.inner_dense.kernel,
                    f"{p}.input_projector.kernel",
                    None,
                )
            )
            if b.use_gated_activation:
                pairs.append(
                    (
                        feedforward.linear_dense.kernel,
                        f"{p}.gate_projector.kernel",
                        None,
                    )
                )
            pairs += [
                (
                    feedforward.output_dense.kernel,
                    f"{p}.output_projector.kernel",
                    None,
                ),
                (block.feedforward_norm.scale, f"{p}.layer_norm.weight", None),
            ]
    return pairs


def _t5_tokenizer_in(hub_tokenizer, model_config):
    from keras_llm.data import tokenizer as tokenizer_lib

    proto = hub_tokenizer.proto
    pieces = tokenizer_lib.SentencePieceTokenizer(proto).num_pieces
    # keras-hub's T5Tokenizer has no sentinels; T5 puts 100 above the
    # pieces (as Hugging Face's T5Tokenizer), where the vocabulary has room.
    room = model_config.vocabulary_size - pieces
    num_sentinels = (
        hf_archs.T5_SENTINELS if room >= hf_archs.T5_SENTINELS else 0
    )
    tokenizer = tokenizer_lib.SentencePieceTokenizer(proto, num_sentinels)
    if num_sentinels:
        note = (
            f"The tokenizer has {num_sentinels} sentinels <extra_id_i> above "
            f"the {pieces} SentencePiece pieces (ids {pieces}-"
            f"{pieces + num_sentinels - 1}, as T5 numbers them); keras-hub's "
            "T5Tokenizer reads <extra_id_i> in text as plain text."
        )
    else:
        note = (
            f"The tokenizer has no sentinels: vocabulary_size "
            f"{model_config.vocabulary_size} leaves no room for "
            f"{hf_archs.T5_SENTINELS} above the {pieces} pieces, so span "
            "corruption (data.objective) is not available."
        )
    return tokenizer, [note]


def _t5_tokenizer_out(keras_hub, tokenizer, tokenizer_dir):
    notes = []
    if tokenizer.num_sentinels:
        notes.append(
            f"keras-hub's T5Tokenizer has no sentinels: the model keeps the "
            f"ids of our {tokenizer.num_sentinels} <extra_id_i>, but "
            "keras-hub tokenizes <extra_id_i> in text as plain text."
        )
    return keras_hub.models.T5Tokenizer(proto=tokenizer.model), notes


def _t5_tokenizer_problem(tokenizer):
    if tokenizer.kind != "sentencepiece":
        return (
            f"holds a {tokenizer.kind} tokenizer; keras-hub's T5Tokenizer "
            "is a SentencePiece model"
        )
    return None


def _t5_task(keras_hub, backbone, tokenizer, data):
    preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer,
        encoder_sequence_length=data.sequence_length,
        decoder_sequence_length=data.target_sequence_length,
    )
    return keras_hub.models.T5Seq2SeqLM(backbone, preprocessor=preprocessor)


def _t5_data(model_config, tokenizer):
    return config_lib.DataConfig(num_sentinels=tokenizer.num_sentinels)


# --- GPT-2 and BERT: keras-hub's TransformerDecoder / TransformerEncoder ----


def _block_pairs(block, prefix):
    """Pairs of one of our blocks with a keras-hub TransformerDecoder (no
    cross-attention) or TransformerEncoder, whose Keras `MultiHeadAttention`
    has EinsumDense kernels `(D, H, K)` and `(H, K, D)` and biases `(H, K)`
    where ours are `(D, H*K)`, `(H*K, D)` and `(H*K,)`."""
    attention = block.self_attention
    h, k = attention.num_heads, attention.head_dim
    d = attention.output_dense.units
    heads = weights.reshaped((d, h * k), (d, h, k))
    head_bias = weights.reshaped((h * k,), (h, k))
    a = f"{prefix}._self_attention_layer"
    pairs = []
    for ours, theirs in (
        (attention.query_dense, "_query_dense"),
        (attention.key_dense, "_key_dense"),
        (attention.value_dense, "_value_dense"),
    ):
        pairs += [
            (ours.kernel, f"{a}.{theirs}.kernel", heads),
            (ours.bias, f"{a}.{theirs}.bias", head_bias),
        ]
    pairs += [
        (
            attention.output_dense.kernel,
            f"{a}._output_dense.kernel",
            weights.reshaped((h * k, d), (h, k, d)),
        ),
        (attention.output_dense.bias, f"{a}._output_dense.bias", None),
    ]
    feedforward = block.feedforward
    for ours, theirs in (
        (block.self_attention_norm, "_self_attention_layer_norm"),
        (block.feedforward_norm, "_feedforward_layer_norm"),
    ):
        pairs += _norm_pairs(ours, f"{prefix}.{theirs}")
    for ours, theirs in (
        (feedforward.inner_dense, "_feedforward_intermediate_dense"),
        (feedforward.output_dense, "_feedforward_output_dense"),
    ):
        pairs += [
            (ours.kernel, f"{prefix}.{theirs}.kernel", None),
            (ours.bias, f"{prefix}.{theirs}.bias", None),
        ]
    return pairs


def _norm_pairs(norm, path):
    return [
        (norm.gamma, f"{path}.gamma", None),
        (norm.beta, f"{path}.beta", None),
    ]


def _learned_positions_task(task):
    """`hub_task` of GPT-2 and BERT: keras-hub's `task` with its
    preprocessor (`<task>Preprocessor`), at most the position table long."""

    def hub_task(keras_hub, backbone, tokenizer, data):
        preprocessor = getattr(keras_hub.models, f"{task}Preprocessor")(
            tokenizer,
            sequence_length=min(
                data.sequence_length, backbone.max_sequence_length
            ),
        )
        return getattr(keras_hub.models, task)(
            backbone, preprocessor=preprocessor
        )

    return hub_task


def _learned_positions_data(model_config, tokenizer):
    # As for Hugging Face's GPT-2 and BERT: no longer than the positions.
    return config_lib.DataConfig(
        sequence_length=min(512, model_config.max_sequence_length),
        num_sentinels=0,
    )


# --- GPT-2 -------------------------------------------------------------------


def _gpt2_model_config(backbone):
    return config_lib.GPT2Config(
        vocabulary_size=backbone.vocabulary_size,
        num_layers=backbone.num_layers,
        num_heads=backbone.num_heads,
        hidden_dim=backbone.hidden_dim,
        intermediate_dim=backbone.intermediate_dim,
        dropout=backbone.dropout,
        max_sequence_length=backbone.max_sequence_length,
        layer_norm_epsilon=HUB_GPT2_EPSILON,
    )


def _gpt2_hub_backbone(keras_hub, c):
    if c.layer_norm_epsilon != HUB_GPT2_EPSILON:
        raise ValueError(
            "keras-hub's GPT2Backbone fixes layer_norm_epsilon at 1e-05. "
            f"Received: layer_norm_epsilon={c.layer_norm_epsilon}"
        )
    return keras_hub.models.GPT2Backbone(
        vocabulary_size=c.vocabulary_size,
        num_layers=c.num_layers,
        num_heads=c.num_heads,
        hidden_dim=c.hidden_dim,
        intermediate_dim=c.intermediate_dim,
        dropout=c.dropout,
        max_sequence_length=c.max_sequence_length,
    )


def gpt2_pairs(model, with_head=True):
    """`(our variable, keras-hub path, Layout)` for every weight of a
    `GPT2CausalLM`. Its head is the tied token embedding: `with_head`
    changes nothing."""
    b = model.backbone
    pairs = [
        (b.token_embedding.embeddings, "token_embedding.embeddings", None),
        (
            b.position_embedding.position_embeddings,
            "position_embedding.position_embeddings",
            None,
        ),
        *_norm_pairs(b.layer_norm, "layer_norm"),
    ]
    for i, block in enumerate(b.transformer_blocks):
        pairs += _block_pairs(block, f"transformer_layers.{i}")
    return pairs


def _gpt2_tokenizer_in(hub_tokenizer, model_config):
    from keras_llm.data import tokenizer as tokenizer_lib

    # keras-hub keeps a merges file's "#version" line as a merge (one that
    # never applies).
    merges = [m for m in hub_tokenizer.merges if not m.startswith("#version")]
    tokenizer = tokenizer_lib.BytePairTokenizer(
        hub_tokenizer.vocabulary, merges
    )
    return tokenizer, []


def _gpt2_tokenizer_out(keras_hub, tokenizer, tokenizer_dir):
    from keras_llm.data import bpe_tokenizer

    hub_tokenizer = keras_hub.models.GPT2Tokenizer(
        vocabulary=os.path.join(tokenizer_dir, bpe_tokenizer.VOCAB_FILE),
        merges=os.path.join(tokenizer_dir, bpe_tokenizer.MERGES_FILE),
    )
    return hub_tokenizer, []


def _gpt2_tokenizer_problem(tokenizer):
    if tokenizer.kind != "bpe":
        return (
            f"holds a {tokenizer.kind} tokenizer; keras-hub's GPT2Tokenizer "
            "is a byte-level BPE (vocab.json + merges.txt)"
        )
    config = tokenizer.get_config()
    if config != {"eos_token": "<|endoftext|>"}:
        settings = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return (
            f"holds a BPE tokenizer with {settings}; keras-hub's "
            "GPT2Tokenizer has GPT-2's settings only (eos <|endoftext|>, "
            "GPT-2's split)"
        )
    return None


# --- BERT --------------------------------------------------------------------


def _bert_model_config(backbone):
    return config_lib.BertConfig(
        vocabulary_size=backbone.vocabulary_size,
        num_layers=backbone.num_layers,
        num_heads=backbone.num_heads,
        hidden_dim=backbone.hidden_dim,
        intermediate_dim=backbone.intermediate_dim,
        dropout=backbone.dropout,
        max_sequence_length=backbone.max_sequence_length,
        num_segments=backbone.num_segments,
        **HUB_BERT_SETTINGS,
    )


def _bert_settings(c):
    """The settings keras-hub fixes, as `c` resolves them (`null` head
    settings are the encoder's)."""
    return dict(
        layer_norm_epsilon=c.layer_norm_epsilon,
        activation=c.activation,
        head_activation=c.head_activation or c.activation,
        head_layer_norm_epsilon=(
            c.layer_norm_epsilon
            if c.head_layer_norm_epsilon is None
            else c.head_layer_norm_epsilon
        ),
    )


def _bert_hub_backbone(keras_hub, c):
    settings = _bert_settings(c)
    if settings["layer_norm_epsilon"] != HUB_BERT_EPSILON:
        raise ValueError(
            "keras-hub's BERT fixes layer_norm_epsilon 1e-12. Received: "
            f"layer_norm_epsilon={settings['layer_norm_epsilon']!r}"
        )
    wrong = [k for k, v in HUB_BERT_SETTINGS.items() if settings[k] != v]
    if wrong:
        # Every BERT trained here or converted from Hugging Face (exact
        # GELU, one epsilon) differs so: written, with the difference said.
        received = ", ".join(f"{k}={settings[k]!r}" for k in wrong)
        logger.warning(
            "keras-hub's BERT runs tanh GELU in its encoder and exact GELU "
            "with layer-norm epsilon 1e-5 in its masked-LM head; this model "
            "has %s, so keras-hub's logits differ from ours by about 1e-3.",
            received,
        )
    return keras_hub.models.BertBackbone(
        vocabulary_size=c.vocabulary_size,
        num_layers=c.num_layers,
        num_heads=c.num_heads,
        hidden_dim=c.hidden_dim,
        intermediate_dim=c.intermediate_dim,
        dropout=c.dropout,
        max_sequence_length=c.max_sequence_length,
        num_segments=c.num_segments,
    )


def bert_pairs(model, with_head=True):
    """`(our variable, keras-hub path, Layout)` for every weight of a
    `BertMaskedLM`: the backbone's, and the masked-LM head's unless
    `with_head` is False (a keras-hub preset of the backbone alone)."""
    b = model.backbone
    pairs = [
        (b.token_embedding.embeddings, "token_embedding.embeddings", None),
        (
            b.position_embedding.position_embeddings,
            "position_embedding.position_embeddings",
            None,
        ),
        (b.segment_embedding.embeddings, "segment_embedding.embeddings", None),
        *_norm_pairs(b.embeddings_layer_norm, "embeddings_layer_norm"),
    ]
    for i, block in enumerate(b.transformer_blocks):
        pairs += _block_pairs(block, f"transformer_layers.{i}")
    pairs += [
        (b.pooled_dense.kernel, "pooled_dense.kernel", None),
        (b.pooled_dense.bias, "pooled_dense.bias", None),
    ]
    if with_head:
        # keras-hub's MaskedLMHead; the vocabulary projection is the tied
        # token embedding.
        head = "masked_lm_head"
        pairs += [
            (
                model.transform_dense.kernel,
                f"{head}._intermediate_dense.kernel",
                None,
            ),
            (
                model.transform_dense.bias,
                f"{head}._intermediate_dense.bias",
                None,
            ),
            *_norm_pairs(
                model.transform_layer_norm, f"{head}._intermediate_layer_norm"
            ),
            (model.output_bias.bias, f"{head}._bias", None),
        ]
    return pairs


def _bert_tokenizer_in(hub_tokenizer, model_config):
    from keras_llm.data import tokenizer as tokenizer_lib

    tokenizer = tokenizer_lib.WordPieceTokenizer(
        hub_tokenizer.get_vocabulary(),
        lowercase=bool(hub_tokenizer.lowercase),
        strip_accents=bool(hub_tokenizer.strip_accents),
    )
    return tokenizer, []


def _bert_tokenizer_out(keras_hub, tokenizer, tokenizer_dir):
    from keras_llm.data import wordpiece_tokenizer

    strip_accents = tokenizer.strip_accents
    hub_tokenizer = keras_hub.models.BertTokenizer(
        vocabulary=os.path.join(tokenizer_dir, wordpiece_tokenizer.VOCAB_FILE),
        lowercase=tokenizer.lowercase,
        # Ours follows `lowercase` unless told; keras-hub's defaults to off.
        strip_accents=(
            tokenizer.lowercase if strip_accents is None else strip_accents
        ),
    )
    return hub_tokenizer, []


def _bert_tokenizer_problem(tokenizer):
    if tokenizer.kind != "wordpiece":
        return (
            f"holds a {tokenizer.kind} tokenizer; keras-hub's BertTokenizer "
            "is a WordPiece vocabulary"
        )
    return None


def _bert_notes(with_head):
    # keras-hub's settings (tanh GELU in the encoder, the head's 1e-5) are
    # in the model config (HUB_BERT_SETTINGS): nothing to say about them.
    notes = []
    if not with_head:
        notes.append(
            "The preset (BertBackbone) has no masked-LM head: the head of "
            "BertMaskedLM keeps its random initialization (the backbone's "
            "outputs are the preset's)."
        )
    return notes


def _no_notes(with_head):
    return []


# --- The table of architectures ---------------------------------------------


class _Arch(NamedTuple):
    arch: str  # ours
    backbone: str  # keras-hub's backbone class
    task: str  # keras-hub's task class: what to-keras-hub writes
    tokenizer: str  # the keras_hub.tokenizers base class its tokenizer has
    model_config: Callable  # keras-hub backbone → our model dataclass
    hub_backbone: Callable  # (keras_hub, our model dataclass) → backbone
    pairs: Callable  # (our task model, with_head) → (variable, path, Layout)
    # The keras-hub task has weights of its own (BertMaskedLM's head): a
    # preset holds them only if it was saved from that task.
    task_has_weights: bool
    notes: Callable  # with_head → how keras-hub's model differs from ours
    tokenizer_in: Callable  # (keras-hub tokenizer, model config) → ours, notes
    tokenizer_out: Callable  # (keras_hub, ours, its folder) → theirs, notes
    # Our tokenizer → why keras-hub's tokenizer cannot be it (or None).
    tokenizer_problem: Callable
    hub_task: Callable  # (keras_hub, backbone, tokenizer, DataConfig) → task
    data: Callable  # (model dataclass, tokenizer) → DataConfig


ARCHS = (
    _Arch(
        arch="t5",
        backbone="T5Backbone",
        task="T5Seq2SeqLM",
        tokenizer="SentencePieceTokenizer",
        model_config=_t5_model_config,
        hub_backbone=_t5_hub_backbone,
        pairs=t5_pairs,
        task_has_weights=False,
        notes=_no_notes,
        tokenizer_in=_t5_tokenizer_in,
        tokenizer_out=_t5_tokenizer_out,
        tokenizer_problem=_t5_tokenizer_problem,
        hub_task=_t5_task,
        data=_t5_data,
    ),
    _Arch(
        arch="gpt2",
        backbone="GPT2Backbone",
        task="GPT2CausalLM",
        tokenizer="BytePairTokenizer",
        model_config=_gpt2_model_config,
        hub_backbone=_gpt2_hub_backbone,
        pairs=gpt2_pairs,
        task_has_weights=False,
        notes=_no_notes,
        tokenizer_in=_gpt2_tokenizer_in,
        tokenizer_out=_gpt2_tokenizer_out,
        tokenizer_problem=_gpt2_tokenizer_problem,
        hub_task=_learned_positions_task("GPT2CausalLM"),
        data=_learned_positions_data,
    ),
    _Arch(
        arch="bert",
        backbone="BertBackbone",
        task="BertMaskedLM",
        tokenizer="WordPieceTokenizer",
        model_config=_bert_model_config,
        hub_backbone=_bert_hub_backbone,
        pairs=bert_pairs,
        task_has_weights=True,
        notes=_bert_notes,
        tokenizer_in=_bert_tokenizer_in,
        tokenizer_out=_bert_tokenizer_out,
        tokenizer_problem=_bert_tokenizer_problem,
        hub_task=_learned_positions_task("BertMaskedLM"),
        data=_learned_positions_data,
    ),
)
BY_BACKBONE = {arch.backbone: arch for arch in ARCHS}
BY_ARCH = {arch.arch: arch for arch in ARCHS}
# Our archs keras-hub has no model for (the original Transformer of Vaswani
# et al.: post-norm, sinusoids, one embedding for source, target and output).
NO_KERAS_HUB_MODEL = ("transformer",)


# --- keras-hub preset → run directory ----------------------------------------


def convert_keras_hub(
    preset_dir: str, out_dir: str, *, overwrite: bool = False
) -> str:
    """Converts a local keras-hub preset into a run directory.

    keras-hub loads the preset (`Backbone.from_preset`; `BertMaskedLM`'s
    `from_preset` when the preset holds that head; the tokenizer's
    `from_preset`); our config is built from the backbone's, its weights are
    copied variable by variable, and our tokenizer is built from the
    preset's vocabulary. Afterwards `keras_llm.load(out_dir)` gives the task
    model and `kllm train out_dir/config.yaml` fine-tunes it.

    Args:
        preset_dir: a folder written by keras-hub's `save_to_preset`:
            `config.json`, `model.weights.h5`, `tokenizer.json` and
            `assets/tokenizer/`.
        out_dir: the run directory to create.
        overwrite: replace `out_dir` if it exists (the old one is deleted
            only once the new one is in place).

    Returns:
        `out_dir`.

    Raises:
        FileExistsError: `out_dir` exists and `overwrite` is False.
        FileNotFoundError: `preset_dir` or one of its files is missing.
        ValueError: not a keras-hub preset, an unsupported backbone or
            setting, keras-hub not installed, or weights that do not fit
            (every mismatch listed).
    """
    preset_dir, out_dir = os.fspath(preset_dir), os.fspath(out_dir)
    files.check_target(out_dir, overwrite)
    if not os.path.isdir(preset_dir):
        raise FileNotFoundError(f"Preset folder not found: {preset_dir}")
    if os.path.realpath(preset_dir) == os.path.realpath(out_dir):
        raise ValueError(f"--out must differ from the preset: {preset_dir}")
    config_path = os.path.join(preset_dir, CONFIG_FILE)
    backbone_class = _preset_class(config_path, preset_dir)
    arch = BY_BACKBONE.get(backbone_class)
    if arch is None:
        raise ValueError(
            f"{config_path}: keras-hub backbone {backbone_class} is not "
            "supported. "
            "kllm convert keras-hub supports "
            f"{', '.join(BY_BACKBONE)}."
        )
    if not any(
        os.path.isfile(os.path.join(preset_dir, name)) for name in WEIGHTS_FILES
    ):
        raise FileNotFoundError(
            f"{os.path.join(preset_dir, WEIGHTS_FILES[0])} is missing: the "
            "preset has no weights (write them with `save_to_preset`)."
        )
    tokenizer_path = os.path.join(preset_dir, TOKENIZER_CONFIG_FILE)
    if not os.path.isfile(tokenizer_path):
        raise FileNotFoundError(
            f"{tokenizer_path} is missing: the preset has no tokenizer (save "
            "the task, or `tokenizer.save_to_preset(PRESET)`)."
        )
    keras_hub = import_keras_hub()
    load_task = arch.task_has_weights and _holds_task(preset_dir, arch.task)
    with_head = load_task or not arch.task_has_weights
    with _keras_hub_errors(f"load the preset {preset_dir}"):
        if load_task:
            hub_model = getattr(keras_hub.models, arch.task).from_preset(
                preset_dir, preprocessor=None
            )
            backbone = hub_model.backbone
        else:
            backbone = keras_hub.models.Backbone.from_preset(preset_dir)
            hub_model = backbone
        hub_tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset_dir)
    if not isinstance(
        hub_tokenizer, getattr(keras_hub.tokenizers, arch.tokenizer)
    ):
        raise ValueError(
            f"{tokenizer_path}: a {type(hub_tokenizer).__name__}; a "
            f"{arch.backbone} preset needs a {arch.tokenizer}."
        )
    try:
        model_config = arch.model_config(backbone)
    except ValueError as error:  # ConfigError too: one line per problem
        problems = "; ".join(str(error).splitlines())
        raise ValueError(f"{config_path}: {problems}") from None
    tokenizer, notes = arch.tokenizer_in(hub_tokenizer, model_config)
    if tokenizer.vocabulary_size > model_config.vocabulary_size:
        raise ValueError(
            f"The tokenizer in {preset_dir} emits {tokenizer.vocabulary_size} "
            f"ids, more than the backbone's vocabulary_size "
            f"{model_config.vocabulary_size} in {config_path}."
        )
    from keras_llm.models import build_model  # TensorFlow

    model = build_model(model_config)
    pairs = arch.pairs(model, with_head)
    try:
        weights.assign_weights(pairs, _hub_arrays(hub_model, pairs))
    except ValueError as error:
        raise ValueError(
            f"The weights in {preset_dir} do not fit {config_path}: {error}"
        ) from None
    notes = [*arch.notes(with_head), *notes]
    for note in notes:
        logger.warning(note)
    cfg = config_lib.ExperimentConfig(
        model=model_config,
        data=arch.data(model_config, tokenizer),
        train=hf_archs.fine_tuning(arch.arch),
    )
    header = [
        f"Converted by `kllm convert keras-hub` from "
        f"{os.path.abspath(preset_dir)} ({type(hub_model).__name__}).",
        *notes,
        "data and train hold fine-tuning defaults: edit them, then run "
        f"`kllm train {os.path.join(out_dir, rundir.CONFIG_FILE)}`.",
    ]

    def write(run_dir):
        rundir.write_config(cfg, run_dir)
        files.prepend_comments(rundir.config_path(run_dir), header)
        tokenizer.save(os.path.join(run_dir, rundir.TOKENIZER_DIR))
        rundir.save_model(model, run_dir)

    files.write_atomically(out_dir, overwrite, write)
    logger.info("Converted %s into %s.", preset_dir, out_dir)
    return out_dir


def _holds_task(preset_dir, task):
    """Whether the preset was saved from `task` with the task's weights."""
    task_path = os.path.join(preset_dir, TASK_CONFIG_FILE)
    if not os.path.isfile(os.path.join(preset_dir, TASK_WEIGHTS_FILE)):
        return False
    return _preset_class(task_path, preset_dir) == task


def _preset_class(config_path, preset_dir):
    """The class name in a keras-hub config file (`config.json`,
    `task.json`), checking that it is one."""
    if not os.path.isfile(config_path):
        raise FileNotFoundError(
            f"{config_path} is missing: {preset_dir} is not a keras-hub "
            "preset (write one with `save_to_preset`)."
        )
    try:
        with open(config_path, encoding="utf-8") as file:
            config = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{config_path} is not valid JSON: {error}") from None
    if isinstance(config, dict) and "class_name" in config:
        return str(config["class_name"])
    if isinstance(config, dict) and "model_type" in config:
        raise ValueError(
            f"{config_path} is a Hugging Face config, not a keras-hub "
            f"preset's: convert {preset_dir} with `kllm convert hf`."
        )
    raise ValueError(
        f"{config_path} names no class_name: {preset_dir} is not a keras-hub "
        "preset (write one with `save_to_preset`)."
    )


@contextlib.contextmanager
def _keras_hub_errors(doing):
    """keras-hub's own errors, as one line saying what it could not do
    (`doing`: "load the preset PATH")."""
    try:
        yield
    except Exception as error:  # keras-hub raises many kinds on a bad preset
        lines = str(error).strip().splitlines() or [type(error).__name__]
        raise ValueError(f"keras-hub could not {doing}: {lines[0]}") from error


def _hub_variable(model, path):
    """The keras-hub variable at attribute path `path` (`a.0.b`) of a task
    or backbone, or None. The tables name backbone weights from the backbone
    and head weights from the task: a path that a task lacks is looked up on
    its backbone."""
    variable = _resolve(model, path)
    if variable is None and hasattr(model, "backbone"):
        variable = _resolve(model.backbone, path)
    return variable


def _resolve(model, path):
    node = model
    for part in path.split("."):
        if part.isdigit():
            index = int(part)
            ok = isinstance(node, (list, tuple)) and index < len(node)
            node = node[index] if ok else None
        else:
            node = getattr(node, part, None)
        if node is None:
            return None
    return node


def _hub_arrays(hub_model, pairs):
    """The keras-hub values the pairs name, as numpy arrays (a missing
    path is left out, so `assign_weights` lists it)."""
    arrays = {}
    for _, path, _ in pairs:
        variable = _hub_variable(hub_model, path)
        if variable is not None and hasattr(variable, "numpy"):
            arrays[path] = np.asarray(variable.numpy())
    return arrays


# --- Run directory → keras-hub preset ----------------------------------------


def convert_to_keras_hub(
    run_dir: str, out_dir: str, *, overwrite: bool = False
) -> str:
    """Writes a run directory's model and tokenizer as a keras-hub preset.

    The keras-hub task (`T5Seq2SeqLM`, `GPT2CausalLM`, `BertMaskedLM`) and
    its preprocessor are built from our config and tokenizer, our latest
    weights are copied into it through the same tables as
    `convert_keras_hub`, in reverse, and `save_to_preset` writes it; then
    `keras_hub.models.<task>.from_preset(out_dir)` loads it.

    Args:
        run_dir: a run directory (trained or converted) with a tokenizer.
        out_dir: the preset folder to create.
        overwrite: replace `out_dir` if it exists (only once the new one is
            complete).

    Returns:
        `out_dir`.

    Raises:
        FileExistsError: `out_dir` exists and `overwrite` is False.
        FileNotFoundError: no run directory, checkpoint or tokenizer.
        ValueError: an arch keras-hub has no model for (the original
            Transformer), a setting keras-hub's model lacks, or keras-hub
            not installed.
    """
    run_dir, out_dir = os.fspath(run_dir), os.fspath(out_dir)
    files.check_target(out_dir, overwrite)
    if os.path.isdir(run_dir) and os.path.realpath(run_dir) == (
        os.path.realpath(out_dir)
    ):
        raise ValueError(f"--out must differ from the run directory: {run_dir}")
    cfg = rundir.read_config(run_dir)
    if config_lib.kind_of(cfg) != cfg.model.kind:
        raise ValueError(
            f"{rundir.config_path(run_dir)}: a {config_lib.kind_of(cfg)} run "
            f"(data.objective: {cfg.data.objective}) is not converted to "
            f"keras-hub yet; kllm convert to-keras-hub writes the arch's "
            f"{cfg.model.kind} model."
        )
    name = config_lib.arch_of(cfg.model)
    arch = BY_ARCH.get(name)
    if arch is None:
        reason = (
            "has no keras-hub equivalent"
            if name in NO_KERAS_HUB_MODEL
            else "is not converted to keras-hub yet"
        )
        raise ValueError(
            f"{rundir.config_path(run_dir)}: arch {name!r} {reason}; kllm "
            f"convert to-keras-hub writes {', '.join(BY_ARCH)} "
            f"({', '.join(BY_BACKBONE)})."
        )
    tokenizer_dir = os.path.join(run_dir, rundir.TOKENIZER_DIR)
    if not os.path.isdir(tokenizer_dir):
        raise FileNotFoundError(
            f"{tokenizer_dir} is missing: a keras-hub preset needs the run's "
            "tokenizer."
        )
    tokenizer = rundir.load_tokenizer(run_dir)
    problem = arch.tokenizer_problem(tokenizer)
    if problem:
        raise ValueError(f"{tokenizer_dir} {problem}.")
    keras_hub = import_keras_hub()
    try:
        backbone = arch.hub_backbone(keras_hub, cfg.model)
    except ValueError as error:  # a setting keras-hub's model lacks
        raise ValueError(f"{rundir.config_path(run_dir)}: {error}") from None
    with _keras_hub_errors(f"build its {arch.task} from {run_dir}"):
        hub_tokenizer, notes = arch.tokenizer_out(
            keras_hub, tokenizer, tokenizer_dir
        )
        task = arch.hub_task(keras_hub, backbone, hub_tokenizer, cfg.data)
    model = rundir.load(run_dir)
    arrays = weights.read_weights(arch.pairs(model, True))
    missing = [path for path in arrays if _hub_variable(task, path) is None]
    if missing:  # a table out of step with keras-hub: a bug, said plainly
        raise ValueError(
            f"keras-hub's {arch.task} has no {', '.join(missing)}."
        )
    weights.assign_weights(
        [(_hub_variable(task, path), path, None) for path in arrays], arrays
    )
    notes = [*arch.notes(True), *notes]
    for note in notes:
        logger.warning(note)

    files.write_atomically(out_dir, overwrite, task.save_to_preset)
    logger.info("Wrote keras-hub preset %s from %s.", out_dir, run_dir)
    return out_dir


def task_class(run_dir: str) -> str:
    """The keras-hub task class that `convert_to_keras_hub(run_dir, ...)`
    writes (for the CLI's message)."""
    cfg = rundir.read_config(run_dir)
    return BY_ARCH[config_lib.arch_of(cfg.model)].task
