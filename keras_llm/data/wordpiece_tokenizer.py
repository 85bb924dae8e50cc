"""BERT's WordPiece tokenizer (in the graph) and its trainer."""

import collections
import heapq
import os
from collections.abc import Iterable

import tensorflow as tf
import tensorflow_text as tf_text

from keras_llm.data import tokenizer_base

VOCAB_FILE = "vocab.txt"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_WORD_CHARS = 100  # longer words become [UNK], as in BERT
_SUFFIX = "##"
_WHITESPACE = tokenizer_base.WHITESPACE
# BERT's cleaning removes NUL, U+FFFD and control/format/private-use
# characters (\p{C}), but keeps \t \n \r, which become spaces.
_CONTROL = r"[\x00\x{fffd}]|[^\P{C}\t\n\r]"
# The CJK ideograph blocks BERT puts spaces around (Hugging Face's Rust
# `BertNormalizer` ranges: from U+2B920, where its Python one says U+2B820).
_CJK = (
    r"[\x{4e00}-\x{9fff}\x{3400}-\x{4dbf}\x{20000}-\x{2a6df}"
    r"\x{2a700}-\x{2b73f}\x{2b740}-\x{2b81f}\x{2b920}-\x{2ceaf}"
    r"\x{f900}-\x{faff}\x{2f800}-\x{2fa1f}]"
)
# ASCII punctuation (BERT counts $+<=>^`|~ too) and Unicode \p{P}.
_PUNCTUATION = r"[!-/:-@\[-`{-~\p{P}]"
# Tokens Hugging Face's WordPiece decoder puts no space before.
_GLUED = r"(?s)(?:[.?!,]|n't|'m|'s|'ve|'re).*"


def split_words(texts, lowercase=True, strip_accents=None):
    """BERT's basic tokenization in the graph: `(N,)` → ragged `(N, None)`.

    Mirrors Hugging Face's `BertNormalizer` + `BertPreTokenizer`: remove
    control characters, map whitespace to spaces, isolate CJK ideographs;
    if `strip_accents` (by default: if `lowercase`), strip accents (NFD,
    drop \\p{Mn}); if `lowercase`, lowercase; split on whitespace and
    punctuation, each punctuation character its own word.
    """
    if strip_accents is None:
        strip_accents = lowercase
    texts = tf.strings.regex_replace(texts, _CONTROL, "")
    texts = tf.strings.regex_replace(texts, f"[{_WHITESPACE}]", " ")
    texts = tf.strings.regex_replace(texts, _CJK, r" \0 ")
    if strip_accents:
        texts = tf_text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
    if lowercase:
        texts = tf.strings.lower(texts, encoding="utf-8")
    return tokenizer_base.regex_split(texts, f" +|{_PUNCTUATION}", _PUNCTUATION)


class WordPieceTokenizer(tokenizer_base.Tokenizer):
    """BERT's tokenizer: basic tokenization + WordPiece, in the graph.

    Ids equal Hugging Face's `BertTokenizer` with `add_special_tokens=False`:
    `tokenize` adds no [CLS]/[SEP] (the data pipeline does), and the literal
    text of a special token (`[MASK]`) becomes its id. Words longer than 100
    characters, or that the vocabulary cannot spell, become [UNK].
    `detokenize` joins the pieces with spaces and glues `##` continuations
    (so "Hello, world" comes back as "hello , world").

    Args:
        vocabulary: list of str, or the path of a `vocab.txt` (one token per
            line, the id is the line number). Must hold [PAD], [UNK], [CLS],
            [SEP] and [MASK].
        lowercase: bool. Lowercase and strip accents (uncased BERT).
            Defaults to `True`.
        strip_accents: bool or `None`. Strip accents whatever `lowercase`
            says (Hugging Face's `strip_accents`); `None` follows
            `lowercase`.
        clean_up_tokenization_spaces: bool. Hugging Face's setting (see
            `Tokenizer`). Defaults to `False`.

    Attributes:
        cls_id, sep_id, mask_id: int. BERT's other specials (eos_id and
            bos_id are `None`: BERT has none).
    """

    kind = "wordpiece"

    def __init__(
        self,
        vocabulary,
        lowercase=True,
        strip_accents=None,
        clean_up_tokenization_spaces=False,
    ):
        if isinstance(vocabulary, (str, os.PathLike)):
            text = tokenizer_base.read_file(vocabulary)
            vocabulary = [line.rstrip() for line in text.split("\n")]
            if vocabulary and not vocabulary[-1]:
                vocabulary.pop()
        vocabulary = list(vocabulary)
        index = {token: i for i, token in enumerate(vocabulary)}
        missing = [token for token in SPECIAL_TOKENS if token not in index]
        if missing:
            raise ValueError(
                f"A WordPiece vocabulary needs {', '.join(SPECIAL_TOKENS)}. "
                f"Missing: {', '.join(missing)}"
            )
        super().__init__(
            len(vocabulary), pad_id=index["[PAD]"], unk_id=index["[UNK]"]
        )
        self.cls_id = index["[CLS]"]
        self.sep_id = index["[SEP]"]
        self.mask_id = index["[MASK]"]
        self.lowercase = bool(lowercase)
        self.strip_accents = (
            None if strip_accents is None else bool(strip_accents)
        )
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.special_ids = tuple(sorted(index[t] for t in SPECIAL_TOKENS))
        self.tokens = tf.constant(vocabulary)  # id → token
        self.wordpiece = tf_text.FastWordpieceTokenizer(
            vocabulary,
            suffix_indicator=_SUFFIX,
            # Bytes, not characters: leave room for 4-byte characters and
            # apply BERT's 100-character limit ourselves.
            max_bytes_per_word=4 * MAX_WORD_CHARS,
            token_out_type=tf.int32,
            unknown_token="[UNK]",
            no_pretokenization=True,
        )
        self.special_tokens = tokenizer_base.SpecialTokens(
            {token: index[token] for token in SPECIAL_TOKENS}
        )

    def get_config(self):
        config = {"lowercase": self.lowercase}
        if self.strip_accents is not None:
            config["strip_accents"] = self.strip_accents
        if self.clean_up_tokenization_spaces:
            config["clean_up_tokenization_spaces"] = True
        return config

    def _save_files(self, directory):
        tokens = [token.decode("utf-8") for token in self.tokens.numpy()]
        with open(
            os.path.join(directory, VOCAB_FILE), "w", encoding="utf-8"
        ) as file:
            file.write("".join(f"{token}\n" for token in tokens))

    def _tokenize(self, texts):
        return self.special_tokens.encode(texts, self._encode_text)

    def _encode_text(self, texts):
        words = split_words(texts, self.lowercase, self.strip_accents)
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR")
        unknown = tf.where(too_long > MAX_WORD_CHARS, self.unk_id, -1)
        pieces = tokenizer_base.override_rows(
            unknown, self.wordpiece.tokenize, words.flat_values
        )
        return words.with_flat_values(pieces).merge_dims(1, 2)

    def _detokenize(self, ids):
        tokens = tf.gather(self.tokens, ids)
        texts = tf.strings.reduce_join(tokens, axis=1, separator=" ")
        return tf.strings.regex_replace(texts, f" {_SUFFIX}", "")

    def _decode(self, ids):
        # Hugging Face's WordPiece decoder (cleanup on): a space before
        # each token but the first, none before a `##` continuation (whose
        # `##` goes) nor before a token that starts with . ? ! , n't 'm 's
        # 've 're (its cleanup runs on " " + token, one token at a time).
        tokens = tf.gather(self.tokens, ids)
        flat = tokens.flat_values
        rows = ids.value_rowids()
        first = tf.concat([[-1], rows], 0)[:-1] != rows
        suffix = tf.strings.regex_full_match(flat, f"(?s){_SUFFIX}.*")
        glued = tf.strings.regex_full_match(flat, _GLUED)
        flat = tf.where(
            suffix & ~first,
            tf.strings.regex_replace(flat, f"^{_SUFFIX}", ""),
            tf.strings.join([tf.where(first | glued, "", " "), flat]),
        )
        return tf.strings.reduce_join(tokens.with_flat_values(flat), axis=1)


def train_wordpiece(
    texts: Iterable[str],
    vocabulary_size: int,
    directory: str,
    *,
    lowercase: bool = True,
) -> WordPieceTokenizer:
    """Learns a WordPiece vocabulary from local text, deterministically.

    Words come from the tokenizer's own basic tokenization (`split_words`),
    so training and tokenizing agree. The vocabulary is the specials, every
    character (as a word start and as a `##` continuation, where it occurs
    so), then merged pieces in order, each the most frequent adjacent pair
    (ties broken by the pieces' text), as Hugging Face's WordPiece trainer
    does. It stops at `vocabulary_size` or when nothing is left to merge.

    Args:
        texts: iterable of str (documents; lines are not special).
        vocabulary_size: int. Target number of tokens, specials included.
        directory: where to write `vocab.txt` and the metadata.
        lowercase: bool. Uncased (lowercase, strip accents) vocabulary.

    Returns:
        The trained `WordPieceTokenizer` (already saved in `directory`),
        its `requested_vocabulary_size` set to `vocabulary_size`.

    Raises:
        ValueError: no words, or `vocabulary_size` below the specials plus
            the alphabet of the text.
    """
    counts = _count_words(texts, lowercase)
    if not counts:
        raise ValueError("No text to train the WordPiece vocabulary on.")
    words = [
        [word[0]] + [_SUFFIX + char for char in word[1:]] for word in counts
    ]
    frequencies = list(counts.values())
    alphabet = sorted({symbol for word in words for symbol in word})
    vocabulary = list(SPECIAL_TOKENS) + alphabet
    if vocabulary_size < len(vocabulary):
        raise ValueError(
            f"`vocabulary_size` is too small for this text: the "
            f"{len(SPECIAL_TOKENS)} special tokens and the {len(alphabet)} "
            f"characters it uses need at least {len(vocabulary)}. Received: "
            f"vocabulary_size={vocabulary_size}"
        )
    vocabulary += _learn_merges(
        words, frequencies, vocabulary_size - len(vocabulary), set(vocabulary)
    )
    tokenizer = WordPieceTokenizer(vocabulary, lowercase=lowercase)
    tokenizer.requested_vocabulary_size = int(vocabulary_size)
    tokenizer.save(directory)
    return tokenizer


def _count_words(texts, lowercase, batch_size=1024):
    split = tf.function(lambda batch: split_words(batch, lowercase).flat_values)
    counts = collections.Counter()
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            counts.update(split(tf.constant(batch)).numpy())
            batch = []
    if batch:
        counts.update(split(tf.constant(batch)).numpy())
    # Sorted, so the merges never depend on the order of the input.
    return {
        word.decode("utf-8"): count for word, count in sorted(counts.items())
    }


def _learn_merges(words, frequencies, num_merges, known):
    """Byte-pair-style merges over `words` (lists of symbols), in order."""
    pair_counts = collections.Counter()
    pair_words = collections.defaultdict(set)
    for i, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += frequencies[i]
            pair_words[pair].add(i)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merged = []
    while len(merged) < num_merges and heap:
        count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -count or count == 0:
            continue  # stale entry: the count changed since it was pushed
        left, right = pair
        symbol = left + right[len(_SUFFIX) :]
        if symbol not in known:
            known.add(symbol)
            merged.append(symbol)
        changed = set()
        for i in sorted(pair_words.pop(pair)):
            word = words[i]
            for old in zip(word, word[1:]):
                pair_counts[old] -= frequencies[i]
                changed.add(old)
            new_word, j = [], 0
            while j < len(word):
                if j + 1 < len(word) and (word[j], word[j + 1]) == pair:
                    new_word.append(symbol)
                    j += 2
                else:
                    new_word.append(word[j])
                    j += 1
            words[i] = new_word
            for new in zip(new_word, new_word[1:]):
                pair_counts[new] += frequencies[i]
                pair_words[new].add(i)
                changed.add(new)
        for other in changed:
            if pair_counts[other] > 0:
                heapq.heappush(heap, (-pair_counts[other], other))
            else:
                pair_counts.pop(other, None)
    return merged
