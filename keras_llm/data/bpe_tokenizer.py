"""GPT-2's byte-level BPE tokenizer, in the graph, with GPT-2's exact ids."""

import json
import os

import tensorflow as tf

from keras_llm.data import tokenizer_base

VOCAB_FILE = "vocab.json"  # GPT-2 ships it as encoder.json
MERGES_FILE = "merges.txt"  # GPT-2 ships it as vocab.bpe
_NO_MERGE = 2**31 - 1
_WS = tokenizer_base.WHITESPACE
# GPT-2's split pattern less its `\s+(?!\S)` alternative: RE2 has no
# lookahead. `split_words` does that part first (see there).
_WORD = (
    rf"'s|'t|'re|'ve|'m|'ll|'d| ?\p{{L}}+| ?\p{{N}}+"
    rf"| ?[^{_WS}\p{{L}}\p{{N}}]+|[{_WS}]+"
)


def bytes_to_unicode():
    """GPT-2's map from the 256 bytes to printable characters."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    others = [b for b in range(256) if b not in printable]
    chars = printable + [256 + i for i in range(len(others))]
    return {b: chr(c) for b, c in zip(printable + others, chars)}


def split_words(texts):
    """GPT-2's pre-tokenization in the graph: `(N,)` → ragged `(N, None)`.

    GPT-2 splits with `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+|
    ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`. The lookahead means: a run of
    whitespace before a non-space character leaves its last character out;
    that character, if a space, starts the next word (" world"), else it is
    a word of its own. So we first cut the text into whitespace and
    non-whitespace runs, move that last character, and only then apply the
    pattern without the lookahead to each piece. No GPT-2 word crosses a
    piece boundary, and within a piece the two patterns agree.
    """
    runs = tokenizer_base.regex_split(texts, f"[{_WS}]+", f"[{_WS}]+")  # (N, R)
    flat, rows = runs.flat_values, runs.value_rowids()
    is_space = tf.strings.regex_full_match(flat, f"[{_WS}]+")
    next_rows = tf.concat([rows, [-1]], 0)[1:]
    gives = is_space & (next_rows == rows)  # a word follows in this text
    length = tf.strings.length(flat, unit="UTF8_CHAR")
    head = tf.strings.substr(
        flat, tf.zeros_like(length), length - 1, unit="UTF8_CHAR"
    )
    last = tf.strings.substr(
        flat, length - 1, tf.ones_like(length), unit="UTF8_CHAR"
    )
    to_next = gives & (last == " ")
    prefix = tf.where(tf.concat([[False], to_next], 0)[:-1], " ", "")
    first = tf.strings.join([prefix, tf.where(gives, head, flat)])
    second = tf.where(gives & ~to_next, last, "")
    pieces = tf.stack([first, second], axis=1)  # (M, 2)
    pieces = tf.ragged.boolean_mask(pieces, pieces != "")
    pieces = runs.with_flat_values(pieces).merge_dims(1, 2)  # (N, P)
    words = tokenizer_base.regex_split(pieces.flat_values, _WORD, _WORD)
    return pieces.with_flat_values(words).merge_dims(1, 2)


class BytePairTokenizer(tokenizer_base.Tokenizer):
    """GPT-2's byte-level BPE tokenizer, in the graph.

    Ids equal Hugging Face's `GPT2Tokenizer` (and OpenAI's encoder) for every
    text, runs of spaces and newlines included (keras-hub's in-graph BPE
    differs there), and the literal text `<|endoftext|>` becomes its id.
    `detokenize(tokenize(text)) == text` for every text that does not contain
    `<|endoftext|>`. GPT-2 has no pad token: `pad_id` is `eos_id`
    (`<|endoftext|>`, 50256), so `detokenize` drops every eos; `bos_id` is
    eos too (as in Hugging Face); `unk_id` is `None` (bytes never miss).

    Args:
        vocabulary: dict token → id, or the path of `vocab.json`/
            `encoder.json`.
        merges: list of "a b" strings, or the path of `merges.txt`/
            `vocab.bpe`.
        eos_token: str. Defaults to `"<|endoftext|>"`.
    """

    kind = "bpe"

    def __init__(self, vocabulary, merges, eos_token="<|endoftext|>"):
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = json.loads(tokenizer_base.read_file(vocabulary))
        if isinstance(merges, (str, os.PathLike)):
            lines = tokenizer_base.read_file(merges).split("\n")
            lines = [line.rstrip("\r") for line in lines]
            merges = [m for m in lines if m and not m.startswith("#version")]
        vocabulary = dict(vocabulary)
        merges = list(merges)
        if eos_token not in vocabulary:
            raise ValueError(
                f"The BPE vocabulary has no {eos_token!r} (`eos_token`)."
            )
        byte_chars = bytes_to_unicode()
        missing = [m for m in merges if m.replace(" ", "") not in vocabulary]
        missing += [c for c in byte_chars.values() if c not in vocabulary]
        if missing:
            raise ValueError(
                "Every byte and every merge result must be in the BPE "
                f"vocabulary. Missing: {missing[:5]} ({len(missing)} in all)"
            )
        eos_id = vocabulary[eos_token]
        super().__init__(
            max(vocabulary.values()) + 1,
            pad_id=eos_id,
            eos_id=eos_id,
            bos_id=eos_id,
        )
        self.eos_token = eos_token
        # As text: tf.Module walks the containers it holds (on every save).
        self._vocabulary_json = json.dumps(vocabulary, ensure_ascii=False)
        self._merges_text = "".join(f"{merge}\n" for merge in merges)
        self.byte_to_char = tokenizer_base.lookup_table(
            [bytes([b]) for b in byte_chars], list(byte_chars.values()), ""
        )
        self.char_to_byte = tokenizer_base.lookup_table(
            list(byte_chars.values()), [bytes([b]) for b in byte_chars], ""
        )
        # A repeated merge keeps its last rank, as in OpenAI's encoder.py.
        ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.merge_ranks = tokenizer_base.lookup_table(
            list(ranks), list(ranks.values()), _NO_MERGE
        )
        self.token_to_id = tokenizer_base.lookup_table(
            list(vocabulary), list(vocabulary.values()), -1
        )
        tokens = [""] * self.vocabulary_size
        for token, i in vocabulary.items():
            tokens[i] = token
        self.tokens = tf.constant(tokens)
        self.special_tokens = tokenizer_base.SpecialTokens({eos_token: eos_id})

    def get_config(self):
        return {"eos_token": self.eos_token}

    def _save_files(self, directory):
        path = os.path.join(directory, VOCAB_FILE)
        with open(path, "w", encoding="utf-8") as file:
            file.write(self._vocabulary_json)
        path = os.path.join(directory, MERGES_FILE)
        with open(path, "w", encoding="utf-8") as file:
            file.write("#version: 0.2\n" + self._merges_text)

    def _tokenize(self, texts):
        return self.special_tokens.encode(texts, self._encode_text)

    def _encode_text(self, texts):
        words = split_words(texts)  # (N, W)
        # Each distinct word once: texts repeat words a lot.
        unique, index = tf.unique(words.flat_values)
        chars = self.byte_to_char.lookup(tf.strings.bytes_split(unique))
        pieces = self._merge(chars)  # (U, None)
        ids = tf.gather(self.token_to_id.lookup(pieces), index)
        return words.with_flat_values(ids).merge_dims(1, 2)

    def _merge(self, words):
        """Applies the merges to ragged `(U, None)` symbols, all words at once.

        Each step merges, in every word, all (non-overlapping, from the left)
        occurrences of the word's best-ranked pair, exactly as OpenAI's
        `bpe()` does, until no word has a pair in the merge table.
        """
        num_words = words.nrows()

        def step(values, rows, _):
            position = tf.range(tf.size(values, out_type=tf.int64))
            following = tf.concat([values, [""]], 0)[1:]
            same_word = tf.concat([rows, [-1]], 0)[1:] == rows
            pairs = tf.strings.join([values, following], separator=" ")
            rank = tf.where(
                same_word, self.merge_ranks.lookup(pairs), _NO_MERGE
            )
            best = tf.math.unsorted_segment_min(rank, rows, num_words)
            match = (rank == tf.gather(best, rows)) & (rank < _NO_MERGE)
            # A run of matches ("a a a" with the pair "a a") merges every
            # other pair, starting from the run's left end.
            after_match = tf.concat([[False], match], 0)[:-1]
            run_start = match & ~after_match
            run = tf.cumsum(tf.cast(run_start, tf.int64))
            starts = tf.concat([[0], tf.boolean_mask(position, run_start)], 0)
            merge = match & ((position - tf.gather(starts, run)) % 2 == 0)
            values = tf.where(
                merge, tf.strings.join([values, following]), values
            )
            keep = ~tf.concat([[False], merge], 0)[:-1]
            return (
                tf.boolean_mask(values, keep),
                tf.boolean_mask(rows, keep),
                tf.reduce_any(match),
            )

        values, rows, _ = tf.while_loop(
            lambda values, rows, more: more,
            step,
            (words.flat_values, words.value_rowids(), True),
            shape_invariants=(
                tf.TensorShape([None]),
                tf.TensorShape([None]),
                tf.TensorShape([]),
            ),
        )
        return tf.RaggedTensor.from_value_rowids(
            values, rows, nrows=num_words, validate=False
        )

    def _detokenize(self, ids):
        text = tf.strings.reduce_join(tf.gather(self.tokens, ids), axis=1)
        chars = tf.strings.unicode_split(text, "UTF-8")
        text = tf.strings.reduce_join(self.char_to_byte.lookup(chars), axis=1)
        # Ids can cut a character's bytes apart: replace what is not UTF-8
        # with U+FFFD, as Hugging Face's decode(errors="replace") does.
        return tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
