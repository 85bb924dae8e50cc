"""Task models, one base class per kind: `Seq2SeqLM`, `CausalLM`,
`MaskedLM`, `Classifier`.

A task model wraps a backbone and owns what its kind means: its inputs (the
`input_format`), its output layer (`logits`), how it decodes
(`build_cache` / `call_with_cache`) and the Python API a keras-hub or
Hugging Face user expects:

```python
lm = keras_llm.load("runs/en_es")      # .tokenizer and .config attached
lm.generate(["Hello."], max_new_tokens=32, num_beams=5)   # list of str
lm.score(["Hello."], ["Hola."])        # log p(target | input) per pair
```
Data, generation and export ask the model its `kind`; nothing downstream
tests an arch name. An architecture subclasses the base of its kind and
wires its backbone (see docs/architecture.md, "Adding a model").
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_llm import kinds
from keras_llm.data import formats

DEFAULT_BATCH_SIZE = 32
# Set with plain attribute semantics: a tokenizer is a `tf.Module`, and
# Keras would otherwise track it into the model's checkpoints.
_ATTACHED = ("tokenizer", "config", "checkpoint_path", "labels")


class Task(keras.Model):
    """Base of task models: a backbone, a kind and its input format.

    Attributes:
        backbone: the backbone (`keras_llm.models.Backbone`).
        tokenizer: the run's tokenizer, or `None` (set by `keras_llm.load`).
        config: the run's `ExperimentConfig`, or `None`.
    """

    kind = None  # one of keras_llm.kinds.KINDS, set by the kind's base
    input_format = None  # a keras_llm.data.formats.InputFormat subclass
    tokenizer = None
    config = None
    checkpoint_path = None  # the checkpoint prefix `keras_llm.load` read

    def __setattr__(self, name, value):
        if name in _ATTACHED:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"]
        )
        return cls(**config)

    @property
    def max_positions(self):
        """The backbone's position table length, or `None` (relative or
        sinusoidal positions have no end)."""
        return getattr(self.backbone, "max_sequence_length", None)

    def make_format(self, data=None):
        """The input format of this model with its tokenizer.

        Args:
            data: a `DataConfig`; defaults to the attached run's, else the
                defaults.
        """
        if self.tokenizer is None:
            raise ValueError(
                f"{type(self).__name__} has no tokenizer: load the model from "
                "a run directory that has one (`keras_llm.load(run_dir)`), "
                "or set `model.tokenizer`."
            )
        if data is None:
            from keras_llm import config as config_lib

            data = self.config.data if self.config else config_lib.DataConfig()
        return self.input_format.from_data_config(
            self.tokenizer, data, max_positions=self.max_positions
        )

    def loss_terms(self, features, labels, weights, training=False):
        """Summed negative log-likelihood of the weighted labels, per row.

        Returns:
            `(nll (B,), count (B,))` float32: the loss summed over the
            labels of each row, and the sum of their weights.
        """
        logits = self(features, training=training)  # (B, T, V) float32
        losses = keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        )  # (B, T)
        weights = ops.cast(weights, "float32")
        return ops.sum(losses * weights, axis=1), ops.sum(weights, axis=1)

    def score(self, inputs, targets, batch_size=DEFAULT_BATCH_SIZE):
        """Log-likelihood of each target given its input.

        Args:
            inputs: list of str (seq2seq inputs or decoder-only prompts).
            targets: list of str, one per input.
            batch_size: int. Pairs run together.

        Returns:
            float64 numpy `(B,)`: `log p(target | input)`, summed over the
            target's tokens (EOS included for seq2seq).
        """
        inputs, targets = _as_list(inputs), _as_list(targets)
        if len(inputs) != len(targets):
            raise ValueError(
                "`inputs` and `targets` must have the same length. Received: "
                f"{len(inputs)} inputs, {len(targets)} targets"
            )
        fmt = self.make_format()
        scores = []
        for begin in range(0, len(inputs), batch_size):
            features, labels, weights = fmt.pair_examples(
                tf.constant(inputs[begin : begin + batch_size]),
                tf.constant(targets[begin : begin + batch_size]),
            )
            nll, _ = self.loss_terms(features, labels, weights)
            scores.append(-np.asarray(nll, np.float64))
        return np.concatenate(scores) if scores else np.zeros([0])

    def generate(
        self,
        texts,
        generation_config=None,
        *,
        jit_compile=True,
        batch_size=DEFAULT_BATCH_SIZE,
        keep_special_tokens=False,
        **decoding,
    ):
        """Generates a text for each prompt (only the new text).

        Args:
            texts: list of str (or one str).
            generation_config: a `keras_llm.generation.GenerationConfig`,
                or pass its fields as keyword arguments (`max_new_tokens`,
                `num_beams`, `length_penalty`, `early_stopping`,
                `do_sample`, `temperature`, `top_k`, `top_p`, `seed`).
            jit_compile: bool. Compile the decode loop with XLA.
            batch_size: int. Prompts decoded together.
            keep_special_tokens: bool. Keep T5's `<extra_id_N>` sentinels
                and the other special tokens the tokenizer renders. By
                default the texts are Hugging Face's `batch_decode(ids,
                skip_special_tokens=True)`.

        Returns:
            list of str, one per prompt.
        """
        from keras_llm import generation

        config = generation_config or generation.GenerationConfig()
        if decoding:
            config = config.replace(**decoding)
        return generation.generate(
            self,
            self.make_format(),
            texts,
            config,
            jit_compile=jit_compile,
            batch_size=batch_size,
            keep_special_tokens=keep_special_tokens,
        )


@keras.saving.register_keras_serializable(package="keras_llm")
class Seq2SeqLM(Task):
    """Encoder-decoder language model: encoder inputs → decoder logits.

    The backbone provides `_encode(token_ids, padding_mask, training)`,
    `decoder_blocks` (the cache has one slot per block), `num_heads` and
    `head_dim`; a subclass
    adds `logits(hidden)` and `call_with_cache(decoder_token_ids,
    self_attention_cache, cache_index, cross_attention_cache,
    encoder_padding_mask) -> (logits, hidden, self_attention_cache)`.
    """

    kind = kinds.SEQ2SEQ
    input_format = formats.Seq2SeqFormat

    def encode(self, encoder_token_ids, encoder_padding_mask, training=False):
        """Encoder hidden states `(B, S, D)`."""
        return self.backbone._encode(
            encoder_token_ids, encoder_padding_mask, training=training
        )

    def build_cache(self, encoder_token_ids, encoder_padding_mask, max_length):
        """Runs the encoder and allocates the decoder caches.

        Returns:
            `(encoder_output, self_attention_cache, cross_attention_cache)`:
            `(B, S, D)`, zeros `(B, L, 2, max_length, H, K)` and the
            precomputed cross-attention keys/values `(B, L, 2, S, H, K)`,
            `L` the number of decoder blocks.
        """
        backbone = self.backbone
        encoder_output = self.encode(encoder_token_ids, encoder_padding_mask)
        self_attention_cache = _zeros_cache(
            backbone,
            ops.shape(encoder_token_ids)[0],
            max_length,
            len(backbone.decoder_blocks),
        )
        cross_attention_cache = ops.stack(
            [
                block.cross_attention.compute_key_value(encoder_output)
                for block in backbone.decoder_blocks
            ],
            axis=1,
        )  # (B, L, 2, S, H, K)
        return encoder_output, self_attention_cache, cross_attention_cache


@keras.saving.register_keras_serializable(package="keras_llm")
class CausalLM(Task):
    """Decoder-only language model: `token_ids` → next-token logits.

    A subclass adds `logits(hidden)` and `call_with_cache(token_ids, cache,
    cache_index, padding_mask=None, position_offset=None) -> (logits,
    hidden, cache)`.
    """

    kind = kinds.CAUSAL
    input_format = formats.CausalFormat

    def build_cache(self, token_ids, max_length):
        """Zeros `(B, num_layers, 2, max_length, H, K)`, `B` taken from
        `token_ids` `(B, T)`, `H` the backbone's `cache_heads`;
        `max_length` must not exceed `max_positions`."""
        return _zeros_cache(
            self.backbone,
            ops.shape(token_ids)[0],
            max_length,
            self.backbone.num_layers,
        )


@keras.saving.register_keras_serializable(package="keras_llm")
class MaskedLM(Task):
    """Masked language model: `token_ids`, `padding_mask`, `segment_ids` →
    logits at every position. It does not generate; `fill_mask` predicts
    the tokens behind `[MASK]`."""

    kind = kinds.MASKED
    input_format = formats.MaskedFormat

    def generate(self, texts, generation_config=None, **kwargs):
        raise ValueError(
            f"{type(self).__name__} is a masked language model: it does not "
            "generate text. Use `model.fill_mask(texts)`."
        )

    def score(self, inputs, targets, batch_size=DEFAULT_BATCH_SIZE):
        raise ValueError(
            f"{type(self).__name__} is a masked language model: it has no "
            "log-likelihood of a target given an input."
        )

    def fill_mask(
        self,
        texts,
        top_k=5,
        batch_size=DEFAULT_BATCH_SIZE,
        keep_special_tokens=False,
    ):
        """Predicts the tokens behind each `[MASK]`; see
        `keras_llm.generation.fill_mask`."""
        from keras_llm import generation

        return generation.fill_mask(
            self,
            self.make_format(),
            texts,
            top_k,
            batch_size=batch_size,
            keep_special_tokens=keep_special_tokens,
        )


@keras.saving.register_keras_serializable(package="keras_llm")
class Classifier(Task):
    """Text classifier: `token_ids`, `padding_mask`, `segment_ids` →
    float32 logits `(B, num_labels)`.

    `generate(texts)` returns the most likely label of each text;
    `classify(texts)` the labels and every label's probability. The label
    names are the run's `labels.json` (sorted; attached as `model.labels`
    by `keras_llm.load`); a label's id is its index.

    A subclass builds its head over the backbone and takes `num_labels`
    (keras-hub's `num_classes`) and `dropout`.

    Example:
    ```python
    clf = keras_llm.load("runs/lang_id")
    clf.generate(["Hola, ¿qué tal?"])          # ["es"]
    labels, scores = clf.classify(["Hello there."])
    ```
    """

    kind = kinds.CLASSIFIER
    input_format = formats.ClassifierFormat
    labels = None  # the label names, by id (set by `keras_llm.load`)

    def get_config(self):
        return {
            **super().get_config(),
            "num_labels": self.num_labels,
            "dropout": self.dropout,
        }

    def label_names(self):
        """`labels`, or the ids as strings for a model without them."""
        if self.labels is not None:
            return list(self.labels)
        return [str(i) for i in range(self.num_labels)]

    def make_format(self, data=None):
        fmt = super().make_format(data)
        fmt.labels = tuple(self.label_names())
        return fmt

    def loss_terms(self, features, labels, weights, training=False):
        """Cross-entropy of each row's label.

        Args:
            labels: int `(B,)` label ids.
            weights: float `(B,)`, 1.0 where the row counts.

        Returns:
            `(nll (B,), count (B,))` float32.
        """
        logits = self(features, training=training)  # (B, num_labels)
        losses = keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        )  # (B,)
        weights = ops.cast(weights, "float32")
        return losses * weights, weights

    def classify(self, texts, batch_size=DEFAULT_BATCH_SIZE, input_format=None):
        """The most likely label of each text, and every label's
        probability.

        Args:
            texts: list of str (or one str).
            batch_size: int. Texts run together.
            input_format: the `InputFormat` that makes the ids; defaults to
                `make_format()` (the model's tokenizer). Training passes
                its own, for a model it has not yet given a tokenizer.

        Returns:
            `(labels, scores)`: list of str, and float32 numpy
            `(B, num_labels)` probabilities in the order of
            `model.labels`.
        """
        texts = _as_list(texts)
        fmt = input_format or self.make_format()
        names = list(fmt.labels)  # the run's labels, in the head's order
        scores = []
        for begin in range(0, len(texts), batch_size):
            ids = fmt.prompt_ids(tf.constant(texts[begin : begin + batch_size]))
            logits = self(fmt.features(ids), training=False)
            scores.append(np.asarray(ops.softmax(logits, axis=-1), np.float32))
        if not scores:
            return [], np.zeros([0, len(names)], np.float32)
        scores = np.concatenate(scores)
        return [names[i] for i in scores.argmax(-1)], scores

    def predict_labels(self, texts, batch_size=DEFAULT_BATCH_SIZE):
        """`classify(texts)`'s labels only (list of str)."""
        return self.classify(texts, batch_size)[0]

    def generate(
        self,
        texts,
        generation_config=None,
        *,
        batch_size=DEFAULT_BATCH_SIZE,
        **kwargs,
    ):
        """The most likely label of each text (`classify`'s labels): a
        classifier's output. Decoding options do not apply."""
        return self.predict_labels(texts, batch_size)

    def score(self, inputs, targets, batch_size=DEFAULT_BATCH_SIZE):
        raise ValueError(
            f"{type(self).__name__} is a classifier: it has no "
            "log-likelihood of a target text; use `model.classify(texts)`."
        )


def _zeros_cache(backbone, batch_size, max_length, num_layers):
    shape = (
        batch_size,
        num_layers,
        2,
        max_length,
        backbone.cache_heads,
        backbone.head_dim,
    )
    return ops.zeros(shape, dtype=backbone.compute_dtype)


def _as_list(texts):
    return [texts] if isinstance(texts, str) else list(texts)
