"""T5's SentencePiece tokenizer (in the graph) and its trainer."""

import io
import os
import re
from collections.abc import Iterable

import tensorflow as tf
import tensorflow_text as tf_text

from keras_llm.data import tokenizer_base

MODEL_FILE = "spiece.model"  # Hugging Face's name, as in T5 checkpoints
_SPACE = "\u2581"  # SentencePiece's "▁": a word starts here
# Lines longer than this (bytes) are skipped by the SentencePiece trainer.
_MAX_SENTENCE_LENGTH = 1 << 14


class SentencePieceTokenizer(tokenizer_base.Tokenizer):
    """T5's tokenizer: a SentencePiece model plus sentinels, in the graph.

    `tensorflow_text.SentencepieceTokenizer` runs the model proto (carried as
    an op attribute, so a SavedModel holds it). T5's layout: pad 0, eos 1,
    unk 2, no bos, then the pieces; `num_sentinels` ids sit above the `n`
    pieces and count down, `<extra_id_i>` = `n + num_sentinels - 1 - i`, as
    Hugging Face's `T5Tokenizer(extra_ids=...)` numbers them (t5-small:
    32000 pieces + 100 → `<extra_id_0>` = 32099).

    Ids equal Hugging Face's `T5Tokenizer` (`add_special_tokens=False`): the
    literal text of a special token (`<extra_id_3>`, `</s>`, `<pad>`,
    `<unk>`) becomes its id, and each chunk of text between special tokens
    is tokenized on its own. `detokenize` renders a sentinel as
    `<extra_id_i>` with HF's spacing (`"a<extra_id_0> b"`), unknown pieces
    as SentencePiece's " ⁇ " and eos as nothing.

    Args:
        model: bytes (a serialized `ModelProto`) or the path of a `.model`
            file.
        num_sentinels: int. Number of `<extra_id_i>` sentinels. Defaults
            to `0`.
        clean_up_tokenization_spaces: bool. Hugging Face's setting (see
            `Tokenizer`). Defaults to `False`, as transformers 5's.
        prepend_scheme: `None`, `"first"`, `"always"` or `"never"`.
            `None` (T5): the model's own dummy prefix "▁" before every chunk
            of text. Otherwise the model has none (Llama 2's, read from a
            `tokenizer.json`) and, as Hugging Face's
            `Metaspace(prepend_scheme=...)`, a space goes before the chunk
            that starts the text (`"first"`) or before every chunk between
            special tokens (`"always"`), unless it starts with one;
            decoding then drops one leading space (the `Strip` decoder).

    Example:
    ```python
    tokenizer = keras_llm.data.tokenizer.load_tokenizer("run/tokenizer")
    ids = tokenizer.tokenize(["Hello <extra_id_0> world"])  # ragged (1, None)
    tokenizer.detokenize(ids)  # [b"Hello<extra_id_0> world"]
    ```
    """

    kind = "sentencepiece"

    def __init__(
        self,
        model,
        num_sentinels=0,
        clean_up_tokenization_spaces=False,
        prepend_scheme=None,
    ):
        import sentencepiece

        if isinstance(model, (str, os.PathLike)):
            model = tokenizer_base.read_file(model, "rb")
        if num_sentinels < 0:
            raise ValueError(
                f"`num_sentinels` must be >= 0. Received: {num_sentinels}"
            )
        processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        num_pieces = processor.get_piece_size()
        ids = {
            name: getattr(processor, f"{name}_id")()
            for name in ("pad", "eos", "bos", "unk")
        }
        if prepend_scheme not in (None, "first", "always", "never"):
            raise ValueError(
                "`prepend_scheme` must be None, 'first', 'always' or "
                f"'never'. Received: {prepend_scheme!r}"
            )
        if ids["pad"] < 0 and (prepend_scheme is None or ids["eos"] < 0):
            raise ValueError(
                "The SentencePiece model has no pad piece: train it with "
                "`train_sentencepiece` (T5 layout: pad 0, eos 1, unk 2)."
            )
        specials = {processor.id_to_piece(i): i for i in ids.values() if i >= 0}
        if ids["pad"] < 0:  # Llama 2: pads with eos, as Hugging Face
            ids["pad"] = ids["eos"]
        super().__init__(
            num_pieces + num_sentinels,
            **{f"{k}_id": (v if v >= 0 else None) for k, v in ids.items()},
        )
        self.prepend_scheme = prepend_scheme
        if prepend_scheme is not None:
            # Byte pieces <0xNN>: id → byte value, -1 for other pieces.
            self.byte_values = tf.constant(
                [_byte_value(processor, i) for i in range(num_pieces)],
                tf.int32,
            )
        self.model = model
        self.num_sentinels = int(num_sentinels)
        self.num_pieces = num_pieces
        self.sentencepiece = tf_text.SentencepieceTokenizer(
            model, out_type=tf.int32
        )
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        for i in range(num_sentinels):
            specials[f"<extra_id_{i}>"] = self.sentinel_id(i)
        self.special_ids = tuple(sorted(specials.values()))
        self.special_tokens = tokenizer_base.SpecialTokens(specials)

    def sentinel_id(self, i):
        if not 0 <= i < self.num_sentinels:
            raise ValueError(
                f"`<extra_id_{i}>` does not exist: this tokenizer has "
                f"{self.num_sentinels} sentinels."
            )
        return self.num_pieces + self.num_sentinels - 1 - i

    def get_config(self):
        config = {"num_sentinels": self.num_sentinels}
        if self.clean_up_tokenization_spaces:
            config["clean_up_tokenization_spaces"] = True
        if self.prepend_scheme is not None:
            config["prepend_scheme"] = self.prepend_scheme
        return config

    def _save_files(self, directory):
        with open(os.path.join(directory, MODEL_FILE), "wb") as file:
            file.write(self.model)

    def _tokenize(self, texts):
        if self.prepend_scheme is None:
            return self.special_tokens.encode(texts, self._encode_text)
        return self.special_tokens.encode(
            texts, self._encode_prefixed, first=True
        )

    def _encode_text(self, texts):
        # After normalizing, HF splits words at Unicode whitespace. nmt_nfkc
        # maps it to " " or drops it, all but U+0085 (checked on every code
        # point against HF's T5Tokenizer).
        texts = tf.strings.regex_replace(texts, r"\x{85}", " ")
        return self.sentencepiece.tokenize(texts)

    def _encode_prefixed(self, texts, is_first):
        # The model adds no "▁": a space becomes one (escape_whitespaces).
        spaced = tf.strings.regex_full_match(texts, f"(?s)[ {_SPACE}].*")
        prefix = (texts != "") & ~spaced
        if self.prepend_scheme == "first":
            prefix &= is_first
        elif self.prepend_scheme == "never":
            prefix &= False
        texts = tf.where(prefix, tf.strings.join([" ", texts]), texts)
        return self.sentencepiece.tokenize(texts)

    def _decode(self, ids):
        if self.prepend_scheme is None:
            return self._detokenize(ids)
        # Hugging Face's Llama decoder: "▁" → " ", a run of byte pieces
        # that is valid UTF-8 → its text, else one U+FFFD per byte piece
        # (ByteFallback), all joined (Fuse), one leading space dropped
        # (Strip). SentencePiece's own decoding replaces bad bytes one by
        # one, so do it here.
        flat, rows = ids.flat_values, ids.value_rowids()
        known = flat < self.num_pieces  # sentinels aside
        value = tf.gather(self.byte_values, tf.where(known, flat, 0))
        value = tf.where(known, value, -1)
        is_byte = value >= 0
        all_bytes = tf.constant([bytes([b]) for b in range(256)])
        raw = tf.gather(all_bytes, tf.maximum(value, 0))
        previous = tf.concat([[False], is_byte], 0)[:-1]
        same_row = tf.concat([[-1], rows], 0)[:-1] == rows
        run = tf.cumsum(tf.cast(is_byte & ~(previous & same_row), tf.int32))
        run = tf.where(is_byte, run, 0)  # 0: no run
        runs = tf.strings.unsorted_segment_join(
            tf.where(is_byte, raw, ""), run, tf.reduce_max(run) + 1
        )
        valid = tf.equal(
            runs,
            tf.strings.unicode_transcode(
                runs, "UTF-8", "UTF-8", errors="replace"
            ),
        )
        pieces = tf.strings.regex_replace(
            self.sentencepiece.id_to_string(tf.where(known, flat, 0)),
            _SPACE,
            " ",
        )
        text = tf.where(
            is_byte,
            tf.where(tf.gather(valid, run), raw, "\ufffd"),
            pieces,
        )
        texts = tf.strings.reduce_join(ids.with_flat_values(text), axis=1)
        if self.prepend_scheme == "never":
            return texts
        return tf.strings.regex_replace(texts, "^ ", "")

    def _detokenize(self, ids):
        # Cut each row into segments: runs of ordinary ids, and each sentinel
        # alone. SentencePiece decodes the runs; sentinels become text.
        flat = ids.flat_values  # (N,)
        rows = ids.value_rowids()
        is_sentinel = flat >= self.num_pieces
        previous = tf.concat([[False], is_sentinel], 0)[:-1]
        row_start = tf.concat([[-1], rows], 0)[:-1] != rows
        starts = row_start | is_sentinel | previous
        segment = tf.cumsum(tf.cast(starts, tf.int64)) - 1  # (N,)
        num_segments = tf.reduce_sum(tf.cast(starts, tf.int64))
        segments = tf.RaggedTensor.from_value_rowids(
            flat, segment, nrows=num_segments, validate=False
        )  # (S, None)
        first = tf.boolean_mask(flat, starts)  # (S,)
        segment_is_sentinel = first >= self.num_pieces
        ordinary = tf.ragged.boolean_mask(
            segments, segments.with_flat_values(~is_sentinel)
        )
        text = self.sentencepiece.detokenize(ordinary)
        # SentencePiece drops the "▁" of each run's first piece; HF drops it
        # only at the start of the text, so put it back after a sentinel.
        first_piece = self.sentencepiece.id_to_string(
            tf.where(segment_is_sentinel, 0, first)
        )
        restore_space = (
            ~tf.boolean_mask(row_start, starts)
            & ~segment_is_sentinel
            & tf.strings.regex_full_match(first_piece, f"(?s){_SPACE}.*")
        )
        sentinel_text = tf.strings.join(
            [
                "<extra_id_",
                tf.strings.as_string(
                    self.num_pieces + self.num_sentinels - 1 - first
                ),
                ">",
            ]
        )
        text = tf.where(
            segment_is_sentinel,
            sentinel_text,
            tf.strings.join([tf.where(restore_space, " ", ""), text]),
        )
        segment_rows = tf.boolean_mask(rows, starts)
        texts = tf.RaggedTensor.from_value_rowids(
            text, segment_rows, nrows=ids.nrows(), validate=False
        )
        texts = tf.strings.reduce_join(texts, axis=1)
        if self.prepend_scheme in ("first", "always"):  # the Strip decoder
            texts = tf.strings.regex_replace(texts, "^ ", "")
        return texts


def _byte_value(processor, i):
    """The byte of a byte piece `<0xNN>`, else -1."""
    if not processor.is_byte(i):
        return -1
    return int(processor.id_to_piece(i)[3:5], 16)


def train_sentencepiece(
    texts: Iterable[str],
    vocabulary_size: int,
    directory: str,
    *,
    num_sentinels: int = 0,
    seed: int = 0,
    model_type: str = "unigram",
    input_sentence_size: int = 200_000,
) -> SentencePieceTokenizer:
    """Trains a T5-layout SentencePiece model on local text, deterministically.

    The Python `sentencepiece` trainer reads `texts` from memory with one
    thread and a fixed seed, so the same seed and input give byte-identical
    models. T5's options: `nmt_nfkc` normalization, pad 0, eos 1, unk 2, no
    bos. At most `input_sentence_size` lines (sampled with the seed) are used,
    which keeps training to seconds on a few MB of text.

    Args:
        texts: iterable of str, documents; each line is one sentence.
        vocabulary_size: int. Total ids, sentinels included: the model gets
            `vocabulary_size - num_sentinels` pieces (fewer if the text is too
            small to fill them; `tokenizer.vocabulary_size` says).
        directory: where to write `spiece.model` and the metadata.
        num_sentinels: int. T5 sentinels to add above the pieces.
        seed: int. Seed of the trainer's sampling.
        model_type: str. `"unigram"` (T5) or `"bpe"`.
        input_sentence_size: int. Cap on the number of training lines.

    Returns:
        The trained `SentencePieceTokenizer` (already saved in `directory`),
        its `requested_vocabulary_size` set to `vocabulary_size`.

    Raises:
        ValueError: no text, or `vocabulary_size` too small for the text's
            characters.
    """
    import sentencepiece

    num_pieces = vocabulary_size - num_sentinels
    if num_sentinels < 0 or num_pieces < 4:
        raise ValueError(
            "`vocabulary_size` must leave at least 4 SentencePiece pieces "
            "after the sentinels. Received: "
            f"vocabulary_size={vocabulary_size}, num_sentinels={num_sentinels}"
        )
    lines = [
        line for text in texts for line in text.splitlines() if line.strip()
    ]
    if not lines:
        raise ValueError("No text to train the SentencePiece model on.")
    writer = io.BytesIO()
    sentencepiece.set_random_generator_seed(seed)
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=writer,
            vocab_size=num_pieces,
            model_type=model_type,
            normalization_rule_name="nmt_nfkc",
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            pad_piece="<pad>",
            eos_piece="</s>",
            unk_piece="<unk>",
            num_threads=1,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            max_sentence_length=_MAX_SENTENCE_LENGTH,
            hard_vocab_limit=False,
            minloglevel=2,
        )
    except RuntimeError as error:
        needed = re.search(r"required_chars\. \d+ vs (\d+)", str(error))
        if needed is None:
            raise ValueError(
                f"SentencePiece training failed: {error}"
            ) from None
        raise ValueError(
            "`vocabulary_size` is too small for this text: its characters "
            f"need at least {int(needed[1]) + num_sentinels} ids (with "
            f"{num_sentinels} sentinels). Received: "
            f"vocabulary_size={vocabulary_size}"
        ) from None
    tokenizer = SentencePieceTokenizer(
        writer.getvalue(), num_sentinels=num_sentinels
    )
    tokenizer.requested_vocabulary_size = int(vocabulary_size)
    tokenizer.save(directory)
    return tokenizer
