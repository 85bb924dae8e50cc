"""The `Tokenizer` base class and the graph helpers its subclasses share.

Everything here runs inside a TF graph (tf.data, `tf.function`, SavedModel)
with core TF ops and TF Text ops only, so an export serves in TF Serving.
"""

import json
import os
import re

import tensorflow as tf
import tensorflow_text as tf_text

# Not "tokenizer.json": Hugging Face's `from_pretrained` reads that name as
# its own fast-tokenizer file, and the directory should open in both.
METADATA_FILE = "keras_llm_tokenizer.json"
# Unicode White_Space, as an RE2 character-class body (RE2's `\s` is ASCII
# only; Rust's `char::is_whitespace` and Oniguruma's `\s` are this set).
WHITESPACE = (
    r"\t\n\x0b\x0c\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}"
    r"\x{2029}\x{202f}\x{205f}\x{3000}"
)


class Tokenizer(tf.Module):
    """Strings ↔ int32 ids, in the TF graph; one interface for every kind.

    A `tf.Module`, so every resource it holds (SentencePiece model, lookup
    tables) is tracked: a `tf.saved_model.save` or `keras.export.ExportArchive`
    of a function that calls `tokenize`/`detokenize` carries it along
    (`archive.track(tokenizer)`). Neither method uses `py_function` or
    autograph: both trace inside `tf.data.Dataset.map`, `tf.function` and
    `ExportArchive.add_endpoint` (which traces with autograph off).

    Attributes:
        kind: str. `"sentencepiece"`, `"wordpiece"` or `"bpe"`.
        vocabulary_size: int. Number of ids the tokenizer can emit, specials
            and sentinels included; every id is in `[0, vocabulary_size)`.
        pad_id: int. The id `detokenize` drops.
        eos_id: int or `None`. End of sequence.
        bos_id: int or `None`. Beginning of sequence.
        unk_id: int or `None`. Unknown piece.
        special_ids: tuple of int. The ids Hugging Face calls special
            (pad, eos, bos, unk, sentinels, [CLS], ...), which
            `detokenize(..., skip_special_tokens=True)` drops.
        clean_up_tokenization_spaces: bool. Hugging Face's setting of the
            same name (from `tokenizer_config.json`): `detokenize(...,
            skip_special_tokens=True)` then removes the space before
            `.`, `,`, `?`, `!` and English contractions.
        requested_vocabulary_size: int or `None`. The size asked of the
            trainer (`train_sentencepiece`, `train_wordpiece`); a text too
            small for it gives fewer ids (`vocabulary_size`). `None` for a
            tokenizer not trained here (or saved before this was recorded).
        add_bos: bool. Prompts and documents start with `bos_id`, as Hugging
            Face's Llama tokenizers add it (`add_special_tokens=True`);
            `tokenize` itself never adds it (`keras_llm.data.formats` does).
            False for tokenizers saved before it was recorded.
    """

    kind = None
    special_ids = ()
    clean_up_tokenization_spaces = False

    def __init__(
        self, vocabulary_size, pad_id, eos_id=None, bos_id=None, unk_id=None
    ):
        super().__init__(name=f"{self.kind}_tokenizer")
        self.vocabulary_size = int(vocabulary_size)
        self.pad_id = int(pad_id)
        self.eos_id = eos_id
        self.bos_id = bos_id
        self.unk_id = unk_id
        self.requested_vocabulary_size = None
        self.add_bos = False

    # Graph code without Python control flow on tensors: autograph has
    # nothing to convert, and skipping it makes tracing several times faster.
    @tf.autograph.experimental.do_not_convert
    def tokenize(self, texts):
        """Splits strings into ids.

        Args:
            texts: `tf.string` tensor (or Python strings), a batch `(B,)` or a
                scalar.

        Returns:
            An int32 `tf.RaggedTensor` `(B, None)` for a batch; a dense int32
            tensor `(None,)` for a scalar. No bos/eos or other specials are
            added (the data pipeline adds them).
        """
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if texts.shape.rank not in (0, 1):
            raise ValueError(
                "`texts` must be a string scalar or a batch (B,). "
                f"Received: shape={texts.shape}"
            )
        ids = self._tokenize(tf.reshape(texts, [-1]))
        ids = tf.cast(ids, tf.int32)
        return ids[0] if texts.shape.rank == 0 else ids

    @tf.autograph.experimental.do_not_convert
    def detokenize(self, ids, skip_special_tokens=False):
        """Joins ids back into strings.

        `pad_id` is dropped wherever it occurs (and nothing else stops the
        text), as are ids outside `[0, vocabulary_size)` (a model whose output
        layer is wider than the vocabulary can emit those).

        Args:
            ids: int tensor `(B, T)`, ragged `(B, None)`, or `(T,)`.
            skip_special_tokens: bool. Decode as Hugging Face's
                `batch_decode(ids, skip_special_tokens=True)` does: every id
                in `special_ids` dropped (sentinels, eos, unk, [CLS], ...)
                and the same spacing (WordPiece's decoder cleanup, and
                `clean_up_tokenization_spaces` where the tokenizer sets it).
                `False` (the default) keeps sentinels and the other
                specials the tokenizer renders as text.

        Returns:
            `tf.string` `(B,)`; a scalar for 1-D `ids`.
        """
        if isinstance(ids, tf.RaggedTensor):
            rank = ids.shape.rank
        else:
            ids = tf.convert_to_tensor(ids)
            rank = ids.shape.rank
            if rank == 1:
                ids = ids[tf.newaxis]
            if rank in (1, 2):
                ids = tf.RaggedTensor.from_tensor(ids)
        if rank not in (1, 2):
            raise ValueError(
                "`ids` must be (T,), (B, T) or ragged (B, None). "
                f"Received: shape={ids.shape}"
            )
        ids = tf.cast(ids, tf.int32)
        keep = (ids != self.pad_id) & (ids >= 0)
        keep &= ids < self.vocabulary_size
        if skip_special_tokens and self.special_ids:
            specials = tf.constant(self.special_ids, tf.int32)
            flat = ids.flat_values
            special = tf.reduce_any(flat[:, tf.newaxis] == specials, axis=1)
            keep &= ids.with_flat_values(~special)
        ids = tf.ragged.boolean_mask(ids, keep)
        if skip_special_tokens:
            texts = self._decode(ids)
            if self.clean_up_tokenization_spaces:
                texts = clean_up_tokenization(texts)
        else:
            texts = self._detokenize(ids)
        return texts[0] if rank == 1 else texts

    def sentinel_id(self, i):
        """The id of T5's `<extra_id_i>` (SentencePiece tokenizers only)."""
        raise ValueError(
            f"Only sentencepiece tokenizers have sentinels. Received: a "
            f"{self.kind} tokenizer, sentinel_id({i})"
        )

    def save(self, directory):
        """Writes the vocabulary files and `METADATA_FILE` into `directory`.

        `load_tokenizer(directory)` rebuilds an identical tokenizer.
        """
        os.makedirs(directory, exist_ok=True)
        self._save_files(directory)
        metadata = {
            "kind": self.kind,
            "vocabulary_size": self.vocabulary_size,
            "requested_vocabulary_size": self.requested_vocabulary_size,
            "pad_id": self.pad_id,
            "eos_id": self.eos_id,
            "bos_id": self.bos_id,
            "unk_id": self.unk_id,
            "add_bos": self.add_bos,
            **self.get_config(),
        }
        with open(os.path.join(directory, METADATA_FILE), "w") as file:
            json.dump(metadata, file, indent=2)
            file.write("\n")

    def get_config(self):
        """Constructor arguments other than the files (for `METADATA_FILE`)."""
        return {}

    # Subclasses implement these three.
    def _tokenize(self, texts):  # (B,) string → ragged (B, None) int
        raise NotImplementedError

    def _detokenize(self, ids):  # ragged (B, None) int32, pads gone → (B,)
        raise NotImplementedError

    def _decode(self, ids):  # as `_detokenize`, spaced as Hugging Face's
        return self._detokenize(ids)

    def _save_files(self, directory):
        raise NotImplementedError

    def __repr__(self):
        return (
            f"<{type(self).__name__} vocabulary_size={self.vocabulary_size} "
            f"pad_id={self.pad_id} eos_id={self.eos_id}>"
        )


# Hugging Face's `clean_up_tokenization`, in its order.
_CLEANUP = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"),
    (" 're", "'re"),
)  # fmt: skip


def clean_up_tokenization(texts):
    """Hugging Face's `clean_up_tokenization` of `tf.string` texts.

    One global literal replacement after another, as its chain of
    `str.replace` calls (so "a  ." becomes "a ." as there).
    """
    for old, new in _CLEANUP:
        texts = tf.strings.regex_replace(texts, re.escape(old), new)
    return texts


def read_file(path, mode="r"):
    """A vocabulary file's contents; `FileNotFoundError` names the path."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Tokenizer file not found: {path}")
    encoding = None if "b" in mode else "utf-8"
    with open(path, mode, encoding=encoding) as file:
        return file.read()


def lookup_table(keys, values, default):
    """A `tf.lookup.StaticHashTable` (a tracked resource) from two lists."""
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys), tf.constant(values)
    )
    return tf.lookup.StaticHashTable(initializer, default_value=default)


class SpecialTokens(tf.Module):
    """Splits the literal text of special tokens out of the input first.

    Hugging Face tokenizers match their special ("added") tokens on the raw
    text before normalization, then tokenize each chunk in between on its own
    (for SentencePiece, each chunk gets its own leading "▁"). This module does
    the same in the graph.

    Args:
        tokens: dict, special token text → id.
    """

    def __init__(self, tokens):
        super().__init__(name="special_tokens")
        # Longest first: RE2 alternation is leftmost-first, like HF's trie.
        ordered = sorted(tokens, key=lambda token: (-len(token), token))
        self.pattern = "|".join(re.escape(token) for token in ordered)
        self.table = lookup_table(ordered, [tokens[t] for t in ordered], -1)

    def encode(self, texts, encode, first=False):
        """Ids of `texts` (N,): specials by table, the rest by `encode`.

        Args:
            texts: `tf.string` `(N,)`.
            encode: function from `tf.string` `(M,)` to ragged int32
                `(M, None)`; it must map "" to no ids. With `first`, it
                takes a bool `(M,)` too: which chunks start their text
                (Llama's `Metaspace(prepend_scheme="first")` prefixes
                only those).
            first: bool. Pass `encode` the bool `(M,)`.

        Returns:
            ragged int32 `(N, None)`.
        """
        if not self.pattern:
            if first:
                return encode(texts, tf.ones_like(texts, tf.bool))
            return encode(texts)
        chunks = regex_split(texts, self.pattern, self.pattern)
        flat = chunks.flat_values  # (M,)
        special = self.table.lookup(flat)
        if first:
            starts = tf.cast(chunks.row_starts(), tf.int32)
            position = tf.range(tf.size(flat)) - tf.gather(
                starts, tf.cast(chunks.value_rowids(), tf.int32)
            )
            is_first = position == 0
            function = encode

            def encode(strings):
                return function(strings, is_first)

        return chunks.with_flat_values(
            override_rows(special, encode, flat)
        ).merge_dims(1, 2)


def override_rows(override, encode, strings):
    """`encode(strings)`, but rows with `override >= 0` become `[override]`.

    Args:
        override: int32 `(M,)`, -1 where `encode` should run.
        encode: as in `SpecialTokens.encode`.
        strings: `tf.string` `(M,)`.

    Returns:
        ragged int32 `(M, None)`.
    """
    is_set = override >= 0
    encoded = tf.cast(encode(tf.where(is_set, "", strings)), tf.int32)
    fixed = tf.RaggedTensor.from_row_lengths(
        tf.boolean_mask(override, is_set),
        tf.cast(is_set, tf.int64),
        validate=False,
    )
    return tf.concat([fixed, encoded], axis=1)


def regex_split(texts, pattern, keep_pattern):
    """`tensorflow_text.regex_split` of `(N,)` strings, safe for NUL bytes.

    TF Text's regex ops end a string at its first NUL byte. So NUL travels
    escaped as \\x01\\x02 (and \\x01 as \\x01\\x03): control characters
    that every pattern here treats as it treats NUL (not space, letter,
    number or quote), so no piece boundary falls inside an escape.
    """
    escaped = tf.strings.regex_replace(texts, r"\x01", "\x01\x03")
    escaped = tf.strings.regex_replace(escaped, r"\x00", "\x01\x02")
    pieces = tf_text.regex_split(escaped, pattern, keep_pattern)
    flat = tf.strings.regex_replace(pieces.flat_values, r"\x01\x02", "\x00")
    flat = tf.strings.regex_replace(flat, r"\x01\x03", "\x01")
    return pieces.with_flat_values(flat)
