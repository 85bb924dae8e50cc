"""Input formats: strings and token ids → model features, one per kind.

Training (`data/pipeline.py`), `generate` (`Task.generate`) and the export
(`keras_llm.serving`) all build model inputs here, so they cannot disagree
on truncation, special tokens or the task prefix:

- `Seq2SeqFormat`: the encoder reads `task_prefix + text`, cut to
  `sequence_length - 1` ids, then EOS; right-padded. A target is cut to
  `target_sequence_length - 1` ids, then EOS; the decoder reads the start id
  (the pad id, T5's convention) followed by the target less its last id.
- `CausalFormat`: a prompt is the text's ids; a long prompt keeps its end;
  an empty one starts from BOS (EOS where the tokenizer has no BOS, as
  GPT-2's `<|endoftext|>`). A tokenizer with `add_bos` (Llama's) puts BOS
  before every prompt, as Hugging Face's tokenizer does. Left-padded, so
  every row's last token sits in the last column. A sequence trains (and
  scores) as `ids[:-1]` predicting `ids[1:]`; a prompt/target pair is
  joined, with the loss on the target. Training on pairs adds EOS after
  the target (so generation learns to stop there); the prompt is built as
  `prompt_ids` builds it.
- `MaskedFormat`: `[CLS] text [SEP]`, cut to `sequence_length`; one segment.
- `ClassifierFormat`: the same features; a label string becomes its index
  in the run's sorted label set (-1 when unknown).

Everything works on batches of ids, ragged `(B, None)`, in TF graph code
without Python branches on tensor values, so the export traces it.
"""

import tensorflow as tf

from keras_llm import kinds


def clean_texts(texts):
    """Replaces bytes that are not UTF-8 (which would fail a tokenizer)."""
    return tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )


def pad(token_ids, pad_id, length=None, left=False):
    """Pads ragged ids into a dense batch and its padding mask.

    Args:
        token_ids: int `tf.RaggedTensor` `(B, None)`.
        pad_id: int.
        length: int or `None`. Columns of the result; `None` is the longest
            row. Rows longer than `length` are cut (on the left when `left`,
            keeping the end).
        left: bool. Pad on the left instead of the right.

    Returns:
        `(token_ids, padding_mask)`, int32 `(B, length)` each.
    """
    token_ids = tf.cast(token_ids, tf.int32)
    if left:
        token_ids = tf.reverse(token_ids, axis=[1])
    shape = [None, length]
    dense = token_ids.to_tensor(default_value=pad_id, shape=shape)
    mask = tf.ones_like(token_ids).to_tensor(default_value=0, shape=shape)
    if left:
        dense, mask = tf.reverse(dense, [1]), tf.reverse(mask, [1])
    return dense, mask


def _column(ids, value):
    """A ragged `(B, 1)` column of `value`, one row per row of `ids`."""
    return tf.RaggedTensor.from_tensor(tf.fill([ids.nrows(), 1], value))


class InputFormat:
    """Shared part of the formats; see the module docstring.

    Args:
        tokenizer: a `keras_llm.data.tokenizer.Tokenizer`.
        sequence_length: int. The longest input, special tokens included.
        target_sequence_length: int. The longest target (seq2seq).
        task_prefix: str. Put before every seq2seq input.
        max_positions: int or `None`. The model's position table, if it has
            one (decoder-only prompts leave room for the new tokens).
    """

    kind = None
    left_padded = False  # prompts padded on the left (decoder-only)

    def __init__(
        self,
        tokenizer,
        *,
        sequence_length,
        target_sequence_length=None,
        task_prefix="",
        max_positions=None,
    ):
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.target_sequence_length = target_sequence_length
        self.task_prefix = task_prefix
        self.max_positions = max_positions

    @classmethod
    def from_data_config(cls, tokenizer, data, max_positions=None, **kwargs):
        """The format of a run's `data` config (`keras_llm.config`);
        `kwargs` go to the format (a classifier's `labels`)."""
        return cls(
            tokenizer,
            sequence_length=data.sequence_length,
            target_sequence_length=data.target_sequence_length,
            task_prefix=data.task_prefix,
            max_positions=max_positions,
            **kwargs,
        )

    def tokenize(self, texts):
        """Strings `(B,)` → int32 ids, ragged `(B, None)`."""
        texts = clean_texts(tf.convert_to_tensor(texts, tf.string))
        return tf.cast(self.tokenizer.tokenize(texts), tf.int32)

    def pad_prompts(self, ids, length=None):
        """Prompt ids → `(token_ids, padding_mask)` for the decode loop."""
        return pad(ids, self.tokenizer.pad_id, length, left=self.left_padded)


class Seq2SeqFormat(InputFormat):
    kind = kinds.SEQ2SEQ

    def _with_eos(self, ids, length):
        ids = ids[:, : length - 1]
        return tf.concat([ids, _column(ids, self.tokenizer.eos_id)], axis=1)

    def input_ids(self, ids):
        """Encoder ids: cut to `sequence_length - 1`, then EOS."""
        return self._with_eos(ids, self.sequence_length)

    def prompt_ids(self, texts, max_new_tokens=0):
        """Strings → encoder ids, ragged `(B, None)`."""
        texts = tf.strings.join([self.task_prefix, texts])
        return self.input_ids(self.tokenize(texts))

    def examples(self, input_ids, target_ids, static=True):
        """Token ids of inputs and targets → `(features, labels, weights)`.

        Args:
            input_ids, target_ids: ragged `(B, None)`, no EOS yet.
            static: pad to `sequence_length` / `target_sequence_length`
                (training); else to the longest row.
        """
        pad_id = self.tokenizer.pad_id
        input_ids = self.input_ids(input_ids)
        targets = self._with_eos(target_ids, self.target_sequence_length)
        # Teacher forcing: the decoder reads [start] + targets[:-1].
        decoder_ids = tf.concat(
            [_column(targets, pad_id), targets[:, :-1]], axis=1
        )
        seq = self.sequence_length if static else None
        tgt = self.target_sequence_length if static else None
        encoder_ids, encoder_mask = pad(input_ids, pad_id, seq)
        labels, target_mask = pad(targets, pad_id, tgt)
        decoder_ids, _ = pad(decoder_ids, pad_id, tgt)
        features = {
            "encoder_token_ids": encoder_ids,
            "encoder_padding_mask": encoder_mask,
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": target_mask,
        }
        return features, labels, tf.cast(target_mask, tf.float32)

    def pair_examples(self, inputs, targets, static=False):
        """Input and target strings → `(features, labels, weights)`."""
        input_ids = self.tokenize(tf.strings.join([self.task_prefix, inputs]))
        return self.examples(input_ids, self.tokenize(targets), static)


class CausalFormat(InputFormat):
    kind = kinds.CAUSAL
    left_padded = True

    @property
    def start_id(self):
        tok = self.tokenizer
        return tok.bos_id if tok.bos_id is not None else tok.eos_id

    def prompt_limit(self, max_new_tokens=0):
        """The most prompt ids that leave positions for the new tokens."""
        limit = self.sequence_length
        if self.max_positions is not None:
            limit = min(limit, self.max_positions - max_new_tokens + 1)
        return max(limit, 1)

    def _with_start(self, ids):
        """The start id before every empty row; BOS before every row when
        the tokenizer has `add_bos` (Llama's, as Hugging Face adds it).

        A tokenizer with `add_bos` has a BOS (`load_tokenizer` checks), so
        an empty row gets the one BOS, not two.
        """
        if getattr(self.tokenizer, "add_bos", False):
            return tf.concat([_column(ids, self.tokenizer.bos_id), ids], 1)
        empty = tf.equal(ids.row_lengths(), 0)
        start = tf.ragged.boolean_mask(
            tf.fill([ids.nrows(), 1], self.start_id), empty[:, None]
        )
        return tf.concat([start, ids], axis=1)

    def prompt_ids(self, texts, max_new_tokens=0):
        """Strings → prompt ids, ragged `(B, None)`: the end of a long
        prompt; the start id for an empty one; BOS first with `add_bos`
        (within the limit, as Hugging Face's tokenizer keeps it)."""
        limit = self.prompt_limit(max_new_tokens)
        ids = self.tokenize(texts)
        if getattr(self.tokenizer, "add_bos", False):
            limit -= 1  # BOS takes one
        return self._with_start(ids[:, -limit:] if limit else ids[:, :0])

    def examples(self, ids, loss_mask=None, static=True):
        """Sequences → `(features, labels, weights)`: `ids[:-1]` predicts
        `ids[1:]`.

        Args:
            ids: ragged `(B, None)` int32, at most `sequence_length + 1` ids
                per row are used (the end is kept).
            loss_mask: ragged like `ids`, 1 where a label counts; `None`:
                every label counts.
            static: pad to `sequence_length` (training); else to the longest.
        """
        keep = self.sequence_length + 1
        ids = ids[:, -keep:]
        loss_mask = tf.ones_like(ids) if loss_mask is None else loss_mask
        loss_mask = tf.cast(loss_mask, tf.int32)[:, -keep:]
        length = self.sequence_length if static else None
        pad_id = self.tokenizer.pad_id
        token_ids, padding_mask = pad(ids[:, :-1], pad_id, length)
        labels, _ = pad(ids[:, 1:], pad_id, length)
        weights, _ = pad(loss_mask[:, 1:], 0, length)
        features = {"token_ids": token_ids, "padding_mask": padding_mask}
        return features, labels, tf.cast(weights, tf.float32)

    def pair_ids(self, prompt_ids, target_ids, eos=False, loss_on_prompt=False):
        """Prompt and target ids → `(ids, loss_mask)`, ragged `(B, None)`.

        The prompt is what `prompt_ids` gives for the same text (the start
        id for an empty one), so a model trained on pairs is prompted in
        generation exactly as it was in training.

        Args:
            prompt_ids, target_ids: ragged `(B, None)` token ids.
            eos: add EOS after the target (training: the model learns to
                stop where the target ends).
            loss_on_prompt: count the prompt's ids in the loss too.
        """
        prompt = self._with_start(prompt_ids)
        target = tf.cast(target_ids, tf.int32)
        if eos:
            eos_column = _column(target, self.tokenizer.eos_id)
            target = tf.concat([target, eos_column], axis=1)
        ids = tf.concat([prompt, target], axis=1)
        prompt_mask = (tf.ones_like if loss_on_prompt else tf.zeros_like)(
            prompt
        )
        mask = tf.concat([prompt_mask, tf.ones_like(target)], axis=1)
        return ids, mask

    def pair_examples(self, inputs, targets, static=False):
        """Prompt and target strings → examples with the loss on the
        target's ids (`log p(target | prompt)`; an empty prompt is the
        start id, as in generation)."""
        ids, mask = self.pair_ids(self.tokenize(inputs), self.tokenize(targets))
        return self.examples(ids, mask, static)

    def training_pair_examples(
        self, inputs, targets, loss_on_prompt=False, static=True
    ):
        """Prompt and completion strings → training examples: prompt +
        completion + EOS, the loss on the completion and EOS (and on the
        prompt with `loss_on_prompt`); a long pair keeps its end."""
        ids, mask = self.pair_ids(
            self.tokenize(inputs),
            self.tokenize(targets),
            eos=True,
            loss_on_prompt=loss_on_prompt,
        )
        return self.examples(ids, mask, static)


class MaskedFormat(InputFormat):
    kind = kinds.MASKED

    def input_ids(self, ids):
        """`[CLS] ids [SEP]`, cut to `sequence_length`."""
        tok = self.tokenizer
        ids = ids[:, : self.sequence_length - 2]
        return tf.concat(
            [_column(ids, tok.cls_id), ids, _column(ids, tok.sep_id)], axis=1
        )

    def prompt_ids(self, texts, max_new_tokens=0):
        return self.input_ids(self.tokenize(texts))

    def features(self, ids, length=None):
        """Wrapped ids → `token_ids`, `padding_mask`, `segment_ids`."""
        token_ids, padding_mask = pad(ids, self.tokenizer.pad_id, length)
        return {
            "token_ids": token_ids,
            "padding_mask": padding_mask,
            "segment_ids": tf.zeros_like(token_ids),
        }


class ClassifierFormat(MaskedFormat):
    """`[CLS] text [SEP]` features (as `MaskedFormat`) and a label id.

    Args:
        labels: the run's label set, sorted (its `labels.json`); a label's
            id is its index.
        Other arguments: see `InputFormat`.
    """

    kind = kinds.CLASSIFIER

    def __init__(self, tokenizer, *, labels=(), **kwargs):
        super().__init__(tokenizer, **kwargs)
        self.labels = tuple(labels)

    def label_ids(self, labels):
        """Label strings `(B,)` → int32 ids `(B,)`, -1 for a label not in
        the set. Plain comparisons with a constant, no lookup table: the
        training pipeline's iterator is checkpointed, which a table
        resource would not allow."""
        labels = tf.convert_to_tensor(labels, tf.string)
        known = tf.constant(self.labels or ("",), tf.string)
        hits = tf.equal(labels[:, None], known[None, :])  # (B, L)
        if not self.labels:
            hits = tf.zeros_like(hits)
        index = tf.range(tf.shape(known)[0], dtype=tf.int32)
        return tf.reduce_max(
            tf.where(hits, index[None, :], -tf.ones_like(index)[None, :]),
            axis=1,
        )

    def examples(self, ids, label_ids, static=True):
        """Text ids and label ids → `(features, labels, weights)`.

        Args:
            ids: ragged `(B, None)` text ids, no special tokens yet.
            label_ids: int `(B,)`.
            static: pad to `sequence_length` (training); else the longest.

        Returns:
            The `[CLS] text [SEP]` features, int32 labels `(B,)` and
            float32 weights `(B,)` of ones.
        """
        length = self.sequence_length if static else None
        features = self.features(self.input_ids(ids), length)
        labels = tf.cast(label_ids, tf.int32)
        return features, labels, tf.ones_like(labels, tf.float32)

    def pair_examples(self, inputs, targets, static=False):
        """Text and label strings → `(features, label ids, weights)`."""
        ids = self.tokenize(inputs)
        return self.examples(ids, self.label_ids(targets), static)
