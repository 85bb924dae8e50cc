"""GPT-2's byte-level BPE tokenizer, in the graph, with GPT-2's exact ids."""

import json
import os
import re

import tensorflow as tf

from keras_llm.data import tokenizer_base

VOCAB_FILE = "vocab.json"  # GPT-2 ships it as encoder.json
MERGES_FILE = "merges.txt"  # GPT-2 ships it as vocab.bpe
_NO_MERGE = 2**31 - 1
_WS = tokenizer_base.WHITESPACE
# GPT-2's pre-tokenization regex (Hugging Face's ByteLevel `use_regex`), as
# Hugging Face writes it (Oniguruma/Rust syntax, `\s` Unicode).
GPT2_SPLIT_PATTERN = (
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"
    r"|\s+(?!\S)|\s+"
)
# Llama 3's (tiktoken's cl100k_base), as its tokenizer.json writes it.
LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Whitespace other than \r and \n, as an RE2 class body.
_HS = _WS.replace(r"\n", "").replace(r"\r", "")
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


# Llama 3's pattern in RE2 (see `split_words_llama3`): `\s+(?!\S)` becomes
# `[H]+(?:...)`, which also takes what the next word would start with.
_LLAMA3_WORD = (
    rf"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+"
    rf"|\p{{N}}{{1,3}}| ?[^{_WS}\p{{L}}\p{{N}}]+[\r\n]*|[{_WS}]*[\r\n]+"
    rf"|[{_HS}]+(?:[{_HS}]\p{{L}}+| [^{_WS}\p{{L}}\p{{N}}]+[\r\n]*)"
    rf"|[{_WS}]+"
)


def split_words_llama3(texts):
    """Llama 3's pre-tokenization in the graph: `(N,)` → ragged `(N, None)`.

    Llama 3's regex (`LLAMA3_SPLIT_PATTERN`) ends with `\s+(?!\S)|\s+`.
    Where a run of whitespace without newlines (two characters or more) is
    followed by a non-space, the lookahead leaves the run's last character
    `c` to the next match, which is `c` plus letters, a space plus
    punctuation, or `c` alone. RE2 has no lookahead, so `_LLAMA3_WORD`
    matches the run together with that next match (`[H]+(?:[H]\p{L}+|
    [^\s...]+[\r\n]*)`), or the run alone (`\s+`) when nothing joins it;
    here we cut `c` off again: from the first kind at its last leading
    space, from a bare run that is not at the end of its text as its last
    character. Every other alternative matches as the original does.
    """
    words = tokenizer_base.regex_split(texts, _LLAMA3_WORD, _LLAMA3_WORD)
    flat, rows = words.flat_values, words.value_rowids()
    length = tf.strings.length(flat, unit="UTF8_CHAR")
    lead = tf.strings.length(
        tf.strings.regex_replace(flat, rf"(?s)^([{_HS}]*).*$", r"\1"),
        unit="UTF8_CHAR",
    )
    joined = tf.strings.regex_full_match(flat, rf"(?s)[{_HS}]{{2,}}[^{_WS}].*")
    is_last = tf.concat([rows, [-1]], 0)[1:] != rows
    bare = (lead == length) & (length >= 2) & ~is_last
    cut = tf.where(joined | bare, lead - 1, length)  # characters kept first
    first = tf.strings.substr(flat, tf.zeros_like(cut), cut, unit="UTF8_CHAR")
    second = tf.strings.substr(flat, cut, length - cut, unit="UTF8_CHAR")
    pieces = tf.stack([first, second], axis=1)  # (M, 2)
    pieces = tf.ragged.boolean_mask(pieces, pieces != "")
    return words.with_flat_values(pieces).merge_dims(1, 2)


def re2_split_pattern(pattern):
    """A Hugging Face split regex in RE2 syntax, or `ValueError`.

    Hugging Face runs Oniguruma/Rust regexes whose `\s` is Unicode; RE2's is
    ASCII, so `\s` and `\S` become the Unicode whitespace class. RE2 has
    no lookaround: such patterns are refused unless they are GPT-2's or
    Llama 3's, which `split_words` and `split_words_llama3` rewrite.
    """
    if re.search(r"\(\?<?[=!]", pattern):
        raise ValueError(
            f"The pre-tokenization regex {pattern!r} has a lookaround, which "
            "the in-graph regex engine (RE2) lacks; only GPT-2's and Llama "
            "3's are rewritten for it."
        )
    out, in_class, i = [], False, 0
    while i < len(pattern):
        char = pattern[i]
        pair = pattern[i : i + 2]
        if pair in (r"\s", r"\S"):
            if in_class and pair == r"\S":
                raise ValueError(
                    f"The pre-tokenization regex {pattern!r} has \\S inside "
                    "a character class, which keras_llm cannot rewrite."
                )
            negate = "^" if pair == r"\S" else ""
            out.append(_WS if in_class else f"[{negate}{_WS}]")
            i += 2
            continue
        if char == "\\":
            out.append(pair)
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            out.append(pattern[i : i + 2] if pair == "[^" else char)
            i += 2 if pair == "[^" else 1
            if i < len(pattern) and pattern[i] == "]":  # a literal ]
                out.append("\\]")
                i += 1
            continue
        if char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    rewritten = "".join(out)
    try:
        tf.strings.regex_full_match("", rewritten)
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(
            f"The pre-tokenization regex {pattern!r} is not RE2 syntax: "
            f"{error.message}"
        ) from None
    return rewritten


class BytePairTokenizer(tokenizer_base.Tokenizer):
    """Byte-level BPE (GPT-2, Llama 3) in the graph.

    Ids equal Hugging Face's `GPT2Tokenizer` (and OpenAI's encoder) for every
    text, runs of spaces and newlines included (keras-hub's in-graph BPE
    differs there), and the literal text of a special token
    (`<|endoftext|>`) becomes its id. `detokenize(tokenize(text)) == text`
    for every text without special tokens. GPT-2 has no pad token: `pad_id`
    is `eos_id` (`<|endoftext|>`, 50256), so `detokenize` drops every eos;
    `bos_id` is eos too (as in Hugging Face); `unk_id` is `None` (bytes
    never miss).

    Other byte-level BPE models differ in their pre-tokenization regex
    (`split_pattern`; Llama 3's splits digits by three and keeps newlines
    apart), their special tokens and `ignore_merges` (a word that is in the
    vocabulary is one id, merges or not), all kept in the tokenizer's
    metadata.

    Args:
        vocabulary: dict token → id, or the path of `vocab.json`/
            `encoder.json`. Special tokens may be in it (GPT-2's
            `<|endoftext|>` is) or only in `special_tokens`.
        merges: list of "a b" strings, or the path of `merges.txt`/
            `vocab.bpe`.
        eos_token: str. Defaults to `"<|endoftext|>"`.
        bos_token: str or `None` (eos). Llama 3: `"<|begin_of_text|>"`.
        pad_token: str or `None` (eos).
        special_tokens: dict token → id of the other special tokens
            (Hugging Face's added tokens): matched as literal text,
            dropped by `detokenize(..., skip_special_tokens=True)`.
        split_pattern: str or `None`. The pre-tokenization regex as
            Hugging Face writes it; `None` is GPT-2's
            (`GPT2_SPLIT_PATTERN`). Patterns with lookaround are refused
            except GPT-2's and `LLAMA3_SPLIT_PATTERN`.
        ignore_merges: bool. A word found whole in the vocabulary is that
            one id (Hugging Face's BPE `ignore_merges`, set by Llama 3).
    """

    kind = "bpe"

    def __init__(
        self,
        vocabulary,
        merges,
        eos_token="<|endoftext|>",
        *,
        bos_token=None,
        pad_token=None,
        special_tokens=None,
        split_pattern=None,
        ignore_merges=False,
    ):
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = json.loads(tokenizer_base.read_file(vocabulary))
        if isinstance(merges, (str, os.PathLike)):
            lines = tokenizer_base.read_file(merges).split("\n")
            lines = [line.rstrip("\r") for line in lines]
            merges = [m for m in lines if m and not m.startswith("#version")]
        vocabulary = dict(vocabulary)
        merges = list(merges)
        special_tokens = dict(special_tokens or {})
        for token, token_id in special_tokens.items():
            if vocabulary.get(token, token_id) != token_id:
                raise ValueError(
                    f"Special token {token!r} has id {token_id}, but the BPE "
                    f"vocabulary gives it {vocabulary[token]}."
                )
        ids = {**vocabulary, **special_tokens}
        for name, token in (
            ("eos_token", eos_token),
            ("bos_token", bos_token),
            ("pad_token", pad_token),
        ):
            if token is not None and token not in ids:
                raise ValueError(
                    f"The BPE vocabulary has no {token!r} (`{name}`)."
                )
        byte_chars = bytes_to_unicode()
        missing = [m for m in merges if m.replace(" ", "") not in vocabulary]
        missing += [c for c in byte_chars.values() if c not in vocabulary]
        if missing:
            raise ValueError(
                "Every byte and every merge result must be in the BPE "
                f"vocabulary. Missing: {missing[:5]} ({len(missing)} in all)"
            )
        if split_pattern in (None, GPT2_SPLIT_PATTERN):
            split_pattern, self._split = None, split_words
        elif split_pattern == LLAMA3_SPLIT_PATTERN:
            self._split = split_words_llama3
        else:
            word = re2_split_pattern(split_pattern)
            self._split = lambda texts: tokenizer_base.regex_split(
                texts, word, word
            )
        eos_id = ids[eos_token]
        super().__init__(
            max(ids.values()) + 1,
            pad_id=eos_id if pad_token is None else ids[pad_token],
            eos_id=eos_id,
            bos_id=eos_id if bos_token is None else ids[bos_token],
        )
        self.eos_token = eos_token
        self.bos_token = bos_token
        self.pad_token = pad_token
        self.split_pattern = split_pattern
        self.ignore_merges = bool(ignore_merges)
        # Special tokens, eos (and bos, pad) included: matched in the text.
        specials = {
            token: ids[token]
            for token in (eos_token, bos_token, pad_token)
            if token is not None
        }
        specials.update(special_tokens)
        self._special_tokens = special_tokens
        self.special_ids = tuple(sorted(set(specials.values())))
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
        for token, i in special_tokens.items():
            # Stored byte-level, so that detokenize gives back its text.
            tokens[i] = "".join(byte_chars[b] for b in token.encode("utf-8"))
        self.tokens = tf.constant(tokens)
        self.special_tokens = tokenizer_base.SpecialTokens(specials)

    def get_config(self):
        config = {"eos_token": self.eos_token}
        optional = {
            "bos_token": self.bos_token,
            "pad_token": self.pad_token,
            "special_tokens": self._special_tokens or None,
            "split_pattern": self.split_pattern,
            "ignore_merges": self.ignore_merges or None,
        }
        # Only what differs from GPT-2: older readers load GPT-2's files.
        config.update({k: v for k, v in optional.items() if v is not None})
        return config

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
        words = self._split(texts)  # (N, W)
        # Each distinct word once: texts repeat words a lot.
        unique, index = tf.unique(words.flat_values)
        if self.ignore_merges:
            chars = self.byte_to_char.lookup(tf.strings.bytes_split(unique))
            whole = self.token_to_id.lookup(tf.strings.reduce_join(chars, 1))
            ids = tokenizer_base.override_rows(
                tf.cast(whole, tf.int32), self._encode_words, unique
            )
        else:
            ids = self._encode_words(unique)
        ids = tf.gather(ids, index)
        return words.with_flat_values(ids).merge_dims(1, 2)

    def _encode_words(self, words):
        # (U,) words → ragged (U, None) ids, by the merges.
        chars = self.byte_to_char.lookup(tf.strings.bytes_split(words))
        return self.token_to_id.lookup(self._merge(chars))

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
