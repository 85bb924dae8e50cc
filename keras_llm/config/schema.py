"""The config schema: one frozen dataclass per YAML section.

A model dataclass per `arch` (field names equal the backbone's `__init__`
arguments; `kind` and `default_objective` say how it trains), then `data`,
`train` and `runtime`, and `ExperimentConfig`, which also checks that the
sections fit together (the objective, the lengths) before any data is read.

The comment on a field (above it, or after it on its line) says what the
key means: docs/config.md is generated from these comments, the defaults
and the checks (`python -m keras_llm.config.reference`), so every field
has one.
"""

import dataclasses
import os
from collections.abc import Iterator
from typing import Any
from typing import ClassVar

from keras_llm import kinds
from keras_llm.config.checks import Rule
from keras_llm.config.checks import _at_most
from keras_llm.config.checks import _check_heads
from keras_llm.config.checks import _fraction
from keras_llm.config.checks import _one_of
from keras_llm.config.checks import _positive
from keras_llm.config.checks import _record
from keras_llm.config.checks import _Section
from keras_llm.config.errors import ConfigError
from keras_llm.config.errors import Problem
from keras_llm.config.errors import _did_you_mean
from keras_llm.config.errors import _problem
from keras_llm.config.lengths import span_corruption_lengths

SECTIONS = ("model", "data", "train", "runtime")
# Every training objective (`data.objective`), in the order of kinds.KINDS.
OBJECTIVES = tuple(
    dict.fromkeys(o for kind in kinds.KINDS for o in kinds.OBJECTIVES[kind])
)
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")
BERT_ACTIVATIONS = ("gelu", "gelu_tanh")  # exact, tanh approximation
SOURCES = ("pydoc", "files", "bible")  # data.source
DOCUMENTS_PER = ("line", "file")  # data.document_per
OPTIMIZERS = ("adafactor", "adamw", "lamb")  # train.optimizer
SCHEDULES = ("constant", "inverse_sqrt", "cosine")  # train.schedule
MICRO_BATCH_SIZES = ("auto", "global")  # train.micro_batch_size, or an int
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

# Upper bounds: far above any real model or run, low enough to refuse a
# typo (an extra digit, 1e12) before it allocates memory or hangs.
MAX_VOCABULARY = 2**24  # model.vocabulary_size
MAX_WIDTH = 2**17  # hidden_dim, intermediate_dim, key_value_dim
MAX_COUNT = 1024  # layers, heads, segments, buckets, checkpoints, devices
MAX_LENGTH = 2**17  # sequence lengths, position tables, distances
MAX_BATCH = 2**20  # train.global_batch_size, shuffle and eval counts
MAX_STEPS = 2**40  # train.train_steps and the other step counts
MAX_SEED = 2**32 - 1  # what numpy's seeding takes


def _model_sizes(cfg: Any) -> Iterator[Problem]:
    """The upper bounds of the model fields that every arch has, and of
    those (`key_value_dim`, `max_sequence_length`, ...) that it may have."""
    fields = {f.name for f in dataclasses.fields(cfg)}

    def present(*names):
        return [name for name in names if name in fields]

    yield from _at_most(cfg, MAX_VOCABULARY, "vocabulary_size")
    yield from _at_most(
        cfg,
        MAX_WIDTH,
        *present("hidden_dim", "intermediate_dim", "key_value_dim"),
    )
    yield from _at_most(
        cfg,
        MAX_COUNT,
        *present(
            "num_layers",
            "num_heads",
            "num_segments",
            "num_buckets",
            "num_decoder_layers",
        ),  # fmt: skip
    )
    yield from _at_most(
        cfg, MAX_LENGTH, *present("max_sequence_length", "max_distance")
    )


# --- Model configs: field names equal the backbone's __init__ arguments ------


@dataclasses.dataclass(frozen=True)
class T5Config(_Section):
    """T5 encoder-decoder (Raffel et al., 2020); see `T5Backbone`."""

    section: ClassVar[str] = "model"
    kind: ClassVar[str] = kinds.SEQ2SEQ
    default_objective: ClassVar[str | None] = "span_corruption"

    # Ids the model embeds and predicts, sentinels included; at least the
    # tokenizer's (a trained tokenizer gets this many, or fewer if the text
    # is too small).
    vocabulary_size: int
    num_layers: int = 6  # encoder blocks, and decoder blocks by default
    num_heads: int = 8  # attention heads per layer
    hidden_dim: int = 512  # width of every layer (d_model)
    intermediate_dim: int = 2048  # feed-forward width (d_ff)
    # Size of each attention head (d_kv); null: hidden_dim / num_heads,
    # which must then divide evenly.
    key_value_dim: int | None = None
    # Dropout rate in training: embeddings, attention, feed-forward and
    # residual outputs.
    dropout: float = 0.1
    activation: str = "relu"  # activation of the feed-forward layers
    # Gated feed-forward (GEGLU with gelu_tanh): true for T5 v1.1.
    use_gated_activation: bool = False
    layer_norm_epsilon: float = 1e-6  # epsilon of the RMS normalizations
    # The output layer reuses the token embedding (T5 v1.0); false for v1.1.
    tie_embedding_weights: bool = True
    # Relative-position buckets of the attention bias (the encoder's are
    # split, half each way).
    num_buckets: int = 32
    max_distance: int = 128  # offsets beyond this share the last bucket
    # Decoder blocks, where the decoder is shallower or deeper than the
    # encoder (the t5-efficient checkpoints); null: num_layers.
    num_decoder_layers: int | None = None

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
            "intermediate_dim", "key_value_dim", "layer_norm_epsilon",
            "num_buckets", "max_distance", "num_decoder_layers",
        )  # fmt: skip
        yield from _model_sizes(self)
        yield from _fraction(self, "dropout")
        yield from _one_of(self, "activation", ACTIVATIONS)
        if self.key_value_dim is None:  # T5 v1.1 small: 6 heads of 64, D 512
            yield from _check_heads(self)


@dataclasses.dataclass(frozen=True)
class GPT2Config(_Section):
    """GPT-2 decoder-only LM (Radford et al., 2019); see `GPT2Backbone`.

    Pre-norm blocks, tanh-approximated GELU, learned positions, output layer
    tied to the token embedding.
    """

    section: ClassVar[str] = "model"
    kind: ClassVar[str] = kinds.CAUSAL
    default_objective: ClassVar[str | None] = "causal_lm"

    # Ids the model embeds and predicts; at least the tokenizer's.
    vocabulary_size: int
    num_layers: int = 12  # decoder blocks (n_layer)
    # Attention heads per layer (n_head); they must divide hidden_dim.
    num_heads: int = 12
    hidden_dim: int = 768  # width of every layer (n_embd)
    intermediate_dim: int = 3072  # feed-forward width (n_inner)
    # Dropout rate in training: embeddings, attention, feed-forward and
    # residual outputs.
    dropout: float = 0.1
    # Learned position rows (n_positions): the longest input, and the most
    # tokens a prompt and its generated text hold together.
    max_sequence_length: int = 1024
    layer_norm_epsilon: float = 1e-5  # epsilon of the layer norms

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
            "intermediate_dim", "max_sequence_length", "layer_norm_epsilon",
        )  # fmt: skip
        yield from _model_sizes(self)
        yield from _fraction(self, "dropout")
        yield from _check_heads(self)


@dataclasses.dataclass(frozen=True)
class BertConfig(_Section):
    """BERT encoder (Devlin et al., 2019); see `BertBackbone`.

    Post-norm blocks, exact GELU (or its tanh approximation, as keras-hub),
    learned positions and segment embeddings.
    """

    section: ClassVar[str] = "model"
    kind: ClassVar[str] = kinds.MASKED
    default_objective: ClassVar[str | None] = "masked_lm"
    # It also trains as a classifier (data.objective: classification).
    other_kinds: ClassVar[tuple[str, ...]] = (kinds.CLASSIFIER,)

    # Ids the model embeds and predicts; at least the tokenizer's.
    vocabulary_size: int
    num_layers: int = 12  # encoder blocks
    # Attention heads per layer; they must divide hidden_dim.
    num_heads: int = 12
    hidden_dim: int = 768  # width of every layer
    intermediate_dim: int = 3072  # feed-forward width
    # Dropout rate in training: embeddings, attention, feed-forward and
    # residual outputs.
    dropout: float = 0.1
    max_sequence_length: int = 512  # learned position rows: longest input
    num_segments: int = 2  # token types (sentence A / B)
    layer_norm_epsilon: float = 1e-12  # epsilon of the layer norms
    # Feed-forward activation: gelu (exact, Hugging Face's) or gelu_tanh
    # (the tanh approximation; keras-hub's BERT runs it).
    activation: str = "gelu"
    # Activation of the masked-LM head's dense layer; null: activation
    # (as Hugging Face's). keras-hub's BERT: exact gelu here.
    head_activation: str | None = None
    # Epsilon of the masked-LM head's layer norm (keras-hub's is 1e-5);
    # null: layer_norm_epsilon.
    head_layer_norm_epsilon: float | None = None

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
            "intermediate_dim", "max_sequence_length", "num_segments",
            "layer_norm_epsilon", "head_layer_norm_epsilon",
        )  # fmt: skip
        yield from _model_sizes(self)
        yield from _fraction(self, "dropout")
        yield from _one_of(self, "activation", BERT_ACTIVATIONS)
        # Listed always (so the reference shows the choices), checked when set.
        head = list(_one_of(self, "head_activation", BERT_ACTIVATIONS))
        if self.head_activation is not None:
            yield from head
        yield from _check_heads(self)


@dataclasses.dataclass(frozen=True)
class TransformerConfig(_Section):
    """The original encoder-decoder Transformer (Vaswani et al., 2017); see
    `TransformerBackbone`.

    Post-norm blocks, relu, sinusoidal positions, one embedding shared by the
    source, the target and the output layer.
    """

    section: ClassVar[str] = "model"
    kind: ClassVar[str] = kinds.SEQ2SEQ
    default_objective: ClassVar[str | None] = None  # trains on pairs

    # Ids of the one vocabulary shared by source and target; at least the
    # tokenizer's.
    vocabulary_size: int
    num_layers: int = 6  # encoder blocks; the decoder has as many
    # Attention heads per layer; they must divide hidden_dim.
    num_heads: int = 8
    hidden_dim: int = 512  # width of every layer (d_model)
    intermediate_dim: int = 2048  # feed-forward width (d_ff)
    # Dropout rate in training (P_drop): embeddings, attention, feed-forward
    # and residual outputs.
    dropout: float = 0.1
    layer_norm_epsilon: float = 1e-6  # epsilon of the layer norms

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
            "intermediate_dim", "layer_norm_epsilon",
        )  # fmt: skip
        yield from _model_sizes(self)
        yield from _fraction(self, "dropout")
        yield from _check_heads(self)


@dataclasses.dataclass(frozen=True)
class LlamaConfig(_Section):
    """Llama decoder-only LM (Touvron et al., 2023; Llama 3: Grattafiori et
    al., 2024); see `LlamaBackbone`.

    Pre-norm blocks with RMS normalization, rotary positions, grouped-query
    attention, a SwiGLU feed-forward and no biases. The defaults are Llama
    3.2 1B's.
    """

    section: ClassVar[str] = "model"
    kind: ClassVar[str] = kinds.CAUSAL
    default_objective: ClassVar[str | None] = "causal_lm"
    # Not a field: the feed-forward is always gated (SwiGLU); the memory
    # estimate reads it.
    use_gated_activation: ClassVar[bool] = True

    # Ids the model embeds and predicts; at least the tokenizer's.
    vocabulary_size: int
    num_layers: int = 16  # decoder blocks (num_hidden_layers)
    num_heads: int = 32  # query heads per layer (num_attention_heads)
    # Key/value heads per layer; num_heads must be a multiple of it (fewer:
    # grouped-query attention, and a KV cache that many times smaller).
    num_key_value_heads: int = 8
    hidden_dim: int = 2048  # width of every layer (hidden_size)
    intermediate_dim: int = 8192  # SwiGLU feed-forward width
    # Size of each attention head (head_dim), even; null: hidden_dim /
    # num_heads, which must then divide evenly.
    key_value_dim: int | None = None
    # Dropout rate on the attention probabilities in training
    # (attention_dropout); Llama uses none.
    dropout: float = 0.0
    # The longest input, and the most tokens a prompt and its generated text
    # hold together (max_position_embeddings).
    max_sequence_length: int = 131072
    rope_theta: float = 500000.0  # base wavelength of the rotary positions
    # Rotary frequency scaling (rope_scaling's rope_type): null, none;
    # linear, every frequency divided by rope_scaling_factor; llama3, Llama
    # 3.1's (long wavelengths divided, short ones kept, a smooth band
    # between).
    rope_scaling: str | None = "llama3"
    rope_scaling_factor: float = 32.0  # linear and llama3 (factor)
    rope_low_freq_factor: float = 1.0  # llama3 (low_freq_factor)
    rope_high_freq_factor: float = 4.0  # llama3 (high_freq_factor)
    # llama3: the context length of pre-training, before scaling
    # (original_max_position_embeddings).
    rope_original_max_sequence_length: int = 8192
    layer_norm_epsilon: float = 1e-5  # epsilon of the RMS norms (rms_norm_eps)
    # The output layer reuses the token embedding (tie_word_embeddings).
    tie_embedding_weights: bool = True

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "vocabulary_size", "num_layers", "num_heads",
            "num_key_value_heads", "hidden_dim", "intermediate_dim",
            "key_value_dim", "max_sequence_length", "rope_theta",
            "rope_scaling_factor", "rope_low_freq_factor",
            "rope_high_freq_factor", "rope_original_max_sequence_length",
            "layer_norm_epsilon",
        )  # fmt: skip
        yield from _model_sizes(self)
        yield from _at_most(self, MAX_COUNT, "num_key_value_heads")
        yield from _at_most(
            self, MAX_LENGTH, "rope_original_max_sequence_length"
        )
        yield from _fraction(self, "dropout")
        if self.rope_scaling is not None:
            yield from _one_of(self, "rope_scaling", ("linear", "llama3"))
        if self.key_value_dim is None:
            yield from _check_heads(self)
        head_dim = self.key_value_dim or (
            self.hidden_dim // self.num_heads if self.num_heads > 0 else 0
        )
        if head_dim % 2:
            key = "key_value_dim" if self.key_value_dim else "hidden_dim"
            yield _problem(
                f"model.{key}",
                f"gives an odd head size {head_dim}: rotary positions turn "
                "pairs of dimensions",
                getattr(self, key),
                "make the head size (key_value_dim, or hidden_dim / "
                "num_heads) even",
            )
        kv_heads = self.num_key_value_heads
        if kv_heads > 0 and self.num_heads > 0 and self.num_heads % kv_heads:
            yield _problem(
                "model.num_key_value_heads",
                f"must divide model.num_heads ({self.num_heads}): each "
                "key/value head serves a group of query heads",
                kv_heads,
                "use a divisor of num_heads",
            )
        if (
            self.rope_scaling == "llama3"
            and self.rope_high_freq_factor <= self.rope_low_freq_factor
        ):
            yield _problem(
                "model.rope_high_freq_factor",
                "must be above model.rope_low_freq_factor "
                f"({self.rope_low_freq_factor}) for llama3 scaling",
                self.rope_high_freq_factor,
            )


# Adding an architecture: write its dataclass (with its `kind` and
# `default_objective`), add it here and to ModelConfig.
MODEL_CONFIGS: dict[str, type] = {
    "t5": T5Config,
    "gpt2": GPT2Config,
    "bert": BertConfig,
    "transformer": TransformerConfig,
    "llama": LlamaConfig,
}
# The union of the MODEL_CONFIGS values.
ModelConfig = (
    T5Config | GPT2Config | BertConfig | TransformerConfig | LlamaConfig
)


def kinds_of(model_config: Any) -> tuple[str, ...]:
    """The kinds a model config trains as: its `kind`, then any
    `other_kinds` (BERT: masked, classifier)."""
    return (model_config.kind, *getattr(model_config, "other_kinds", ()))


def objectives_of(model_config: Any) -> tuple[str, ...]:
    """The `data.objective` values (besides `auto`) a model config takes."""
    return tuple(o for k in kinds_of(model_config) for o in kinds.OBJECTIVES[k])


def arch_of(model_config: Any) -> str:
    """Returns the `arch` name of a model config, e.g. `"t5"`.

    Raises:
        ConfigError: if its type is not in `MODEL_CONFIGS`.
    """
    for arch, cls in MODEL_CONFIGS.items():
        if type(model_config) is cls:
            return arch
    name = type(model_config).__name__
    raise ConfigError(f"model: expected a model config. Received: {name}")


# --- The other sections ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
    """Where the text comes from and how it is cut into examples.

    Files (`source: files`) by extension: `.txt`, a document per line (or
    per file, see `document_per`); `.jsonl`, `text_field` (and
    `target_field` for pairs); `.tsv`, input TAB target; `.tfrecord`,
    `tf.train.Example` with bytes features named like the fields.
    """

    section: ClassVar[str] = "data"

    # Where the text comes from. pydoc: Python's own documentation (built
    # in); files: train_files; bible: English-Spanish verse pairs.
    source: str = "pydoc"
    # Glob of the training files (.txt, .jsonl, .tsv, .tfrecord); required
    # when source is files, refused otherwise.
    train_files: str | None = None
    # Glob of held-out files (source files only); null: split the training
    # documents by hash, validation_fraction of them.
    validation_files: str | None = None
    # Share of the documents held out for validation when validation_files
    # is null (the same split on every run and resume).
    validation_fraction: float = 0.01
    # Plain-text (.txt) files: one document per line, or per file.
    document_per: str = "line"
    text_field: str = "text"  # .jsonl / .tfrecord field of the (input) text
    # .jsonl / .tfrecord field of the target text: set it to read pairs.
    target_field: str | None = None
    # .jsonl field of the label (objective classification; a .tsv has
    # text<TAB>label). The label set is read from the training files.
    label_field: str = "label"
    # What the model learns; auto: by arch (see model) and by whether the
    # data gives input/target pairs (then seq2seq, or causal_lm for a
    # decoder-only model). classification: BERT with a head over the
    # labels of the training files.
    objective: str = "auto"
    # Text put before every input (seq2seq), e.g. "translate English to
    # Spanish: ".
    task_prefix: str = ""
    # Prompt/completion pairs under causal_lm: false puts the loss on the
    # completion only (and the EOS after it); true on the prompt too.
    loss_on_prompt: bool = False
    # Tokens per example: the encoder's input (seq2seq, span corruption),
    # the whole text (causal, masked). At least 4, and at most
    # model.max_sequence_length where the model has one.
    sequence_length: int = 512
    # Decoder tokens per example (seq2seq, span corruption); span corruption
    # needs enough for its noise (kllm validate says how many).
    target_sequence_length: int = 114
    noise_density: float = 0.15  # span corruption: share of noise tokens
    # Span corruption: mean length of a noise span, in tokens.
    mean_noise_span_length: float = 3.0
    # Span corruption: T5 sentinel ids (`<extra_id_i>`) at the top of the
    # vocabulary, within model.vocabulary_size.
    num_sentinels: int = 100
    # A tokenizer directory (from kllm tokenizer train, or a run dir's
    # tokenizer/); null: train one on the training text at the start.
    tokenizer: str | None = None
    shuffle_buffer_size: int = 10000  # examples in the shuffle buffer

    def _check(self) -> Iterator[Problem]:
        yield from _one_of(self, "source", SOURCES)
        yield from _positive(self, "sequence_length", "target_sequence_length")
        lengths = ("sequence_length", "target_sequence_length")
        yield from _at_most(self, MAX_LENGTH, *lengths)
        yield from _positive(
            self, "mean_noise_span_length", "shuffle_buffer_size"
        )
        yield from _at_most(self, MAX_BATCH, "shuffle_buffer_size")
        yield from _positive(self, "num_sentinels", zero_ok=True)
        yield from _at_most(self, MAX_COUNT, "num_sentinels", low=0)
        yield from _fraction(self, "validation_fraction")
        yield from _fraction(self, "noise_density")
        yield from _one_of(self, "document_per", DOCUMENTS_PER)
        yield from _one_of(self, "objective", ("auto", *OBJECTIVES))
        if self.source == "files" and self.train_files is None:
            problem = "required when data.source is 'files'"
            hint = "set it to a glob such as data/train-*.txt"
            yield _problem("data.train_files", problem, None, hint)
        for name in ("train_files", "validation_files"):
            if self.source != "files" and getattr(self, name) is not None:
                problem = "only read when data.source is 'files', not "
                problem += repr(self.source)
                hint = "set data.source: files, or remove the key"
                yield _problem(
                    f"data.{name}", problem, getattr(self, name), hint
                )


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Section):
    """Optimization: batch, optimizer, schedule, checkpoints."""

    section: ClassVar[str] = "train"

    # Examples per step, summed over all replicas; it must divide by the
    # replicas (times the accumulation steps).
    global_batch_size: int = 128
    learning_rate: float = 1e-2  # the schedule's peak rate
    # The optimizer: adafactor (T5's), adamw or lamb (the last two with
    # weight_decay).
    optimizer: str = "adafactor"
    # After the warmup: constant; inverse_sqrt, the rate times
    # sqrt(warmup_steps / step); cosine, a cosine decay to 0 at train_steps.
    schedule: str = "inverse_sqrt"
    # Steps of linear warmup to learning_rate (0: none; inverse_sqrt needs
    # at least 1).
    warmup_steps: int = 10000
    train_steps: int = 524288  # steps in all; 2^19 is T5's pre-training
    # Steps between validation loss measurements (also at step 0 and at the
    # end).
    eval_interval_steps: int = 1000
    checkpoint_interval_steps: int = 1000  # steps between checkpoints
    max_checkpoints_to_keep: int = 3  # checkpoints kept, the newest ones
    # Clip the gradients to this global norm; null: no clipping.
    gradient_clip_norm: float | None = 1.0
    # Examples per replica per forward/backward pass; the gradients of the
    # micro-batches add up to one step over global_batch_size. auto: the
    # largest that fits the device's memory; global: the whole share (no
    # accumulation); an int: that many, a divisor of global_batch_size.
    micro_batch_size: int | str = "auto"
    # Minutes of wall time between checkpoints, besides the step interval.
    checkpoint_interval_minutes: float = 30.0
    weight_decay: float = 0.0  # decoupled weight decay (adamw, lamb)
    eval_steps: int = 20  # at most this many batches per validation
    # Steps between lines of metrics.jsonl and TensorBoard scalars.
    log_interval_steps: int = 10
    # Seeds the weights, the data order, the objectives' noise and the
    # tokenizer trained at start.
    seed: int = 0
    # A run dir (trained or converted) whose weights a new run starts from:
    # the backbone's, and the task layers' too when the task is the same
    # (a classifier's head starts fresh on a masked LM's backbone). Its
    # model section must equal this one; its tokenizer is used unless
    # data.tokenizer is set. Ignored when the run dir holds a checkpoint.
    init_checkpoint: str | None = None
    # Metrics measured at each validation, logged as val_bleu, ... beside
    # val_loss: generation metrics (e.g. [bleu, chrf]) decode up to
    # eval_examples validation pairs greedily (XLA if runtime.jit_compile)
    # and need input/target pairs and a model that generates; a
    # classifier's are accuracy and macro_f1.
    eval_metrics: list[str] = dataclasses.field(default_factory=list)
    # Validation examples scored per validation for eval_metrics (the
    # first ones of the split, the same each time).
    eval_examples: int = 200
    # The validation metric that picks checkpoints/best/: val_loss, val_ppl
    # or val_<name> of a metric in eval_metrics (higher BLEU, chrF, ROUGE,
    # exact match, F1 and accuracy are better; lower loss and perplexity).
    best_metric: str = "val_loss"
    # Stop after this many validations in a row without a better
    # best_metric; null: never stop early.
    early_stopping_patience: int | None = None

    def _check(self) -> Iterator[Problem]:
        yield from _positive(
            self, "global_batch_size", "learning_rate", "train_steps",
            "eval_interval_steps", "checkpoint_interval_steps",
            "max_checkpoints_to_keep", "gradient_clip_norm",
            "eval_steps", "log_interval_steps", "checkpoint_interval_minutes",
            "eval_examples", "early_stopping_patience",
        )  # fmt: skip
        yield from _at_most(self, MAX_BATCH, "eval_examples")
        yield from _at_most(self, MAX_STEPS, "early_stopping_patience")
        yield from self._check_metrics()
        yield from _positive(
            self, "warmup_steps", "seed", "weight_decay", zero_ok=True
        )
        yield from _at_most(self, MAX_BATCH, "global_batch_size")
        yield from _at_most(
            self, MAX_STEPS, "train_steps", "eval_interval_steps",
            "checkpoint_interval_steps", "log_interval_steps",
        )  # fmt: skip
        yield from _at_most(self, MAX_STEPS, "warmup_steps", low=0)
        yield from _at_most(self, MAX_BATCH, "eval_steps")
        yield from _at_most(self, MAX_COUNT, "max_checkpoints_to_keep")
        yield from _at_most(self, MAX_SEED, "seed", low=0)
        micro = self.micro_batch_size
        if isinstance(micro, str):
            yield from _one_of(self, "micro_batch_size", MICRO_BATCH_SIZES)
        elif micro <= 0 or self.global_batch_size % micro:
            yield _problem(
                "train.micro_batch_size",
                "must be auto, global or a positive divisor of "
                "train.global_batch_size. Received: "
                f"micro_batch_size={micro}, "
                f"global_batch_size={self.global_batch_size}",
            )
        yield from _one_of(self, "optimizer", OPTIMIZERS)
        yield from _one_of(self, "schedule", SCHEDULES)
        if self.schedule == "inverse_sqrt" and self.warmup_steps == 0:
            problem = "must be positive for schedule inverse_sqrt"
            hint = "its rate is 1/sqrt(max(step, warmup_steps))"
            yield _problem("train.warmup_steps", problem, 0, hint)

    def _check_metrics(self) -> Iterator[Problem]:
        """`eval_metrics`: generation metrics of keras_llm.evaluation;
        `best_metric`: a validation metric this run logs."""
        from keras_llm.evaluation.metrics import METRICS

        generation = [n for n, m in METRICS.items() if m.needs == "generation"]
        labels = [n for n, m in METRICS.items() if m.needs == "labels"]
        allowed = generation + labels
        _record("eval_metrics", Rule("one_of", choices=tuple(allowed)))
        for name in self.eval_metrics:
            if name not in allowed:
                hint = _did_you_mean(name, allowed)
                yield _problem(
                    "train.eval_metrics",
                    f"{name!r} is not a generation or label metric ({hint})",
                )
        logged = ["val_loss", "val_ppl"]
        logged += [f"val_{n}" for n in self.eval_metrics if n in allowed]
        if self.best_metric not in logged:
            name = self.best_metric.removeprefix("val_")
            hint = (
                f"add {name} to train.eval_metrics"
                if name in allowed
                else "one of " + ", ".join(logged)
            )
            yield _problem(
                "train.best_metric",
                "is not a validation metric this run logs",
                self.best_metric,
                hint,
            )


@dataclasses.dataclass(frozen=True)
class RuntimeConfig(_Section):
    """Devices, distribution strategy and numerics."""

    section: ClassVar[str] = "runtime"

    # How the step is spread over devices. auto: mirrored over the local
    # GPUs if there are several, else one device (or mirrored over
    # num_cpu_devices CPUs); multi_worker: MultiWorkerMirroredStrategy
    # from TF_CONFIG.
    strategy: str = "auto"
    jit_compile: bool = True  # compile the per-replica step with XLA
    # Compute dtype; weights stay float32. mixed_bfloat16 is T5's (float16
    # overflows in T5); mixed_float16 adds dynamic loss scaling.
    mixed_precision: str = "float32"
    # Split the host CPU into this many logical devices (to mirror over
    # them without a GPU); null: one.
    num_cpu_devices: int | None = None

    def _check(self) -> Iterator[Problem]:
        yield from _one_of(self, "strategy", STRATEGIES)
        yield from _one_of(self, "mixed_precision", PRECISIONS)
        yield from _positive(self, "num_cpu_devices")
        yield from _at_most(self, MAX_COUNT, "num_cpu_devices")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: what `kllm train` reads and writes to a run dir."""

    model: ModelConfig
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        arch_of(self.model)
        for field in dataclasses.fields(self)[1:]:
            value = getattr(self, field.name)
            if type(value) is not field.type:
                raise ConfigError(
                    f"{field.name}: expected a {field.type.__name__}. "
                    f"Received: {type(value).__name__}"
                )
        problems = list(_check_fit(self.model, self.data))
        problems += _check_eval_metrics(self.model, self.data, self.train)
        if problems:
            raise ConfigError(problems)


def _labelled_files(data: DataConfig) -> Iterator[Problem]:
    """Classification reads labelled .tsv or .jsonl files only."""
    if data.source != "files":
        yield _problem(
            "data.source",
            "objective classification reads labelled files",
            data.source,
            "set data.source: files and data.train_files to .tsv "
            "(text<TAB>label) or .jsonl (data.text_field, data.label_field)",
        )
        return
    for key in ("train_files", "validation_files"):
        glob = getattr(data, key)
        extension = os.path.splitext(glob or "")[1]
        if glob and extension not in (".tsv", ".jsonl"):
            yield _problem(
                f"data.{key}",
                "objective classification reads .tsv (text<TAB>label) or "
                ".jsonl files",
                glob,
            )


# --- Checks across sections: what the data pipeline would refuse -----------
# Only what the config alone decides. Whether the source gives input/target
# pairs is sure only once the data is read, so the pipeline keeps the checks
# that depend on it (e.g. objective seq2seq on single texts).


def _gives_pairs(data: DataConfig) -> bool:
    """Whether `data` surely gives input/target pairs (its source, the
    glob's extension and `target_field` say so)."""
    if data.source != "files":
        return data.source == "bible"
    extension = os.path.splitext(data.train_files or "")[1]
    if extension in (".jsonl", ".tfrecord"):
        return data.target_field is not None
    return extension == ".tsv"


def objective_of(cfg: ExperimentConfig) -> str:
    """The objective training will use, as far as the config tells.

    `data.objective` unless it is `"auto"`; then the arch's
    `default_objective`, or `"seq2seq"` for a source that surely gives
    input/target pairs or an arch without a default (the Transformer
    trains on pairs). Files of a format the glob does not name count as
    single texts here; the pipeline decides once it reads them.
    """
    return _objective(cfg.model, cfg.data)


def _objective(model: Any, data: DataConfig) -> str:
    if data.objective != "auto":
        return data.objective
    default = model.default_objective
    if default is None:
        return kinds.PAIR_OBJECTIVES[0]
    if _gives_pairs(data) and default not in kinds.EITHER_OBJECTIVES:
        return kinds.PAIR_OBJECTIVES[0]
    return default


def kind_of(cfg: ExperimentConfig) -> str:
    """The kind of task model a config trains (`keras_llm.kinds`): the
    objective's, e.g. `classifier` for BERT with objective classification."""
    return kinds.kind_of(_objective(cfg.model, cfg.data))


def _check_eval_metrics(
    model: Any, data: DataConfig, train: TrainConfig
) -> list[Problem]:
    """`train.eval_metrics` compare validation outputs with their targets:
    generation metrics need a model that generates and data that gives
    pairs (surely not the built-in pydoc texts; files are checked once
    read), label metrics a classifier."""
    from keras_llm.evaluation.metrics import METRICS

    known = [n for n in train.eval_metrics if n in METRICS]  # others: named
    if not known:
        return []
    named = ", ".join(known)
    verb = "needs" if len(known) == 1 else "need"
    kind = kinds.kind_of(_objective(model, data))
    is_label = {n: METRICS[n].needs == "labels" for n in known}
    if kind == kinds.CLASSIFIER or any(is_label.values()):
        wrong = [n for n in known if is_label[n] != (kind == kinds.CLASSIFIER)]
        if not wrong:
            return []
        verb = "needs" if len(wrong) == 1 else "need"
        if kind == kinds.CLASSIFIER:
            problem = (
                f"{', '.join(wrong)} {verb} generated text; a classifier's "
                "metrics are accuracy and macro_f1"
            )
            hint = "use [accuracy] or [accuracy, macro_f1]"
        else:
            problem = (
                f"{', '.join(wrong)} {verb} a classifier (data.objective: "
                "classification)"
            )
            hint = "use generation metrics such as [bleu, chrf]"
        return [_problem("train.eval_metrics", problem, hint=hint)]
    if model.kind not in (kinds.SEQ2SEQ, kinds.CAUSAL):
        return [
            _problem(
                "train.eval_metrics",
                f"{named} {verb} generated text; arch {arch_of(model)!r} "
                f"(kind {model.kind}) does not generate",
                hint="remove train.eval_metrics; val_loss is still logged",
            )
        ]
    if data.source == "pydoc":
        return [
            _problem(
                "train.eval_metrics",
                f"{named} compare outputs with targets; data.source "
                "'pydoc' gives single texts, no targets",
                hint="train on input/target pairs (data.source: bible, or "
                ".tsv / .jsonl files with data.target_field)",
            )
        ]
    return []


def _check_fit(model: Any, data: DataConfig) -> Iterator[Problem]:
    """The problems between `model` and `data`, each keyed `data.*`."""
    arch = arch_of(model)
    objective = _objective(model, data)
    allowed = objectives_of(model)
    if objective not in allowed:
        archs = [
            name
            for name, cls in MODEL_CONFIGS.items()
            if objective in objectives_of(cls)
        ]
        takes = ", ".join(("auto", *allowed))
        yield _problem(
            "data.objective",
            f"{objective!r} does not fit arch {arch!r} (it needs one of "
            f"{archs}; arch {arch!r} takes {takes})",
        )
        objective = ""  # the length checks below would only add noise
    if objective == "classification":
        yield from _labelled_files(data)
    length = data.sequence_length
    max_length = getattr(model, "max_sequence_length", None)
    if max_length is not None and length > max_length:
        yield _problem(
            "data.sequence_length",
            f"{length} is longer than the model holds "
            f"(model.max_sequence_length={max_length})",
        )
    if length < 4:
        problem = f"too short for {objective or 'training'}"
        yield _problem("data.sequence_length", problem, length, "at least 4")
    elif objective == "span_corruption":
        _, needed = span_corruption_lengths(
            length, data.noise_density, data.mean_noise_span_length
        )
        if data.target_sequence_length < needed:
            yield _problem(
                "data.target_sequence_length",
                f"span corruption of {length} input tokens needs {needed} "
                "target tokens",
                data.target_sequence_length,
                f"set data.target_sequence_length: {needed}",
            )
