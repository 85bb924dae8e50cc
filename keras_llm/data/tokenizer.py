"""Tokenizers that run inside the TF graph, behind one interface.

```
Tokenizer (tf.Module)               tokenize: string (B,) → int32 ragged
├─ SentencePieceTokenizer  T5       detokenize: int32 (B, T) / ragged →
├─ WordPieceTokenizer    BERT         string (B,); skip_special_tokens=True
└─ BytePairTokenizer    GPT-2,        as Hugging Face's batch_decode
                        Llama 3     save(directory), load_tokenizer(directory)
```
Ids equal Hugging Face's tokenizers (`T5Tokenizer` with `extra_ids`,
`BertTokenizer`, `GPT2Tokenizer`, all with `add_special_tokens=False`);
`keras_llm.convert.hf_tokenizer` reads and writes Hugging Face's
`tokenizer.json`.
Only core TF and TF Text ops run in the graph, so a SavedModel that
tokenizes serves in TF Serving. A tokenizer directory holds the vocabulary
files under Hugging Face's names (it opens with `from_pretrained` too) plus
`keras_llm_tokenizer.json` (`{"kind": ...}` and the other settings).
Vocabularies come from local files or are trained on local text: nothing
downloads.
"""

import json
import os
from collections.abc import Sequence

from keras_llm.data import bpe_tokenizer
from keras_llm.data import sentencepiece_tokenizer
from keras_llm.data import wordpiece_tokenizer
from keras_llm.data.bpe_tokenizer import BytePairTokenizer
from keras_llm.data.sentencepiece_tokenizer import SentencePieceTokenizer
from keras_llm.data.sentencepiece_tokenizer import train_sentencepiece
from keras_llm.data.tokenizer_base import METADATA_FILE
from keras_llm.data.tokenizer_base import Tokenizer
from keras_llm.data.wordpiece_tokenizer import WordPieceTokenizer
from keras_llm.data.wordpiece_tokenizer import train_wordpiece

__all__ = [
    "BytePairTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "load_tokenizer",
    "shortfall",
    "train_sentencepiece",
    "train_tokenizer",
    "train_wordpiece",
]

# kind → (class, its files in constructor order, its metadata keys).
KINDS = {
    "sentencepiece": (
        SentencePieceTokenizer,
        (sentencepiece_tokenizer.MODEL_FILE,),
        ("num_sentinels", "clean_up_tokenization_spaces", "prepend_scheme"),
    ),
    "wordpiece": (
        WordPieceTokenizer,
        (wordpiece_tokenizer.VOCAB_FILE,),
        ("lowercase", "strip_accents", "clean_up_tokenization_spaces"),
    ),
    "bpe": (
        BytePairTokenizer,
        (bpe_tokenizer.VOCAB_FILE, bpe_tokenizer.MERGES_FILE),
        (
            "eos_token",
            "bos_token",
            "pad_token",
            "special_tokens",
            "split_pattern",
            "ignore_merges",
        ),
    ),
}
TRAINERS = {"sentencepiece": train_sentencepiece, "wordpiece": train_wordpiece}


def load_tokenizer(directory: str) -> Tokenizer:
    """The tokenizer saved in `directory` (by `Tokenizer.save` or a trainer).

    Raises:
        FileNotFoundError: `keras_llm_tokenizer.json` or a vocabulary file
            is missing (the message names it).
        ValueError: `keras_llm_tokenizer.json` names an unknown kind.
    """
    path = os.path.join(directory, METADATA_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing: {directory} is not a keras_llm tokenizer "
            "directory (make one with `kllm tokenizer train`)."
        )
    try:
        with open(path) as file:
            metadata = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    kind = metadata.get("kind")
    if kind not in KINDS:
        raise ValueError(
            f"{path}: unknown tokenizer kind. Received: kind={kind!r} "
            f"(expected one of {', '.join(KINDS)})"
        )
    cls, files, keys = KINDS[kind]
    arguments = {key: metadata[key] for key in keys if key in metadata}
    tokenizer = cls(*(os.path.join(directory, f) for f in files), **arguments)
    # Absent from files saved before it was recorded.
    tokenizer.requested_vocabulary_size = metadata.get(
        "requested_vocabulary_size"
    )
    tokenizer.add_bos = bool(metadata.get("add_bos", False))
    if tokenizer.add_bos and tokenizer.bos_id is None:
        raise ValueError(
            f"{path}: add_bos is true but the tokenizer has no BOS token; "
            "set add_bos to false."
        )
    return tokenizer


def shortfall(tokenizer: Tokenizer) -> str | None:
    """Why a trained tokenizer has fewer ids than were asked, or `None`.

    A trainer given a text too small for `vocabulary_size` stops when the
    text holds no more pieces; `tokenizer.requested_vocabulary_size` keeps
    what was asked.

    Returns:
        E.g. "asked for 8,000 ids, got 4,377: the text holds only 4,377
        distinct pieces", for the caller to add the fix in its own terms
        (`--vocab-size`, `model.vocabulary_size`); `None` if it got them
        all, or if nothing was asked (a tokenizer not trained here).
    """
    asked = tokenizer.requested_vocabulary_size
    got = tokenizer.vocabulary_size
    if asked is None or got >= asked:
        return None
    pieces = getattr(tokenizer, "num_pieces", got)  # sentinels apart
    text = (
        f"asked for {asked:,} ids, got {got:,}: the text holds only "
        f"{pieces:,} distinct pieces"
    )
    if pieces != got:
        text += f" (plus {got - pieces:,} sentinels)"
    return text


def train_tokenizer(
    files: Sequence[str],
    kind: str,
    vocabulary_size: int,
    directory: str,
    *,
    num_sentinels: int = 0,
    seed: int = 0,
) -> Tokenizer:
    """Trains a tokenizer on local text files (one document per line).

    Args:
        files: paths of UTF-8 text files.
        kind: `"sentencepiece"` or `"wordpiece"`.
        vocabulary_size: total ids, sentinels and specials included.
        directory: where the tokenizer goes (`load_tokenizer(directory)`).
        num_sentinels: T5 sentinels (sentencepiece only).
        seed: sampling seed (sentencepiece only; wordpiece is deterministic).

    Returns:
        The trained tokenizer, saved in `directory`. A text too small for
        `vocabulary_size` gives fewer ids: `tokenizer.vocabulary_size` says
        how many, `requested_vocabulary_size` what was asked (both in its
        metadata file), and `shortfall(tokenizer)` why.

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: an empty file, an unknown kind, sentinels for wordpiece,
            or a vocabulary size too small for the text.
    """
    if kind not in TRAINERS:
        raise ValueError(
            f"Only {' and '.join(TRAINERS)} tokenizers can be trained. "
            f"Received: kind={kind!r}"
        )
    if num_sentinels and kind != "sentencepiece":
        raise ValueError(
            "Sentinels exist only in sentencepiece tokenizers. Received: "
            f"kind={kind!r}, num_sentinels={num_sentinels}"
        )
    if not files:
        raise ValueError("No text files to train the tokenizer on.")
    texts = []
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Text file not found: {path}")
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except UnicodeDecodeError as error:
            raise ValueError(f"{path} is not UTF-8 text: {error}") from None
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            raise ValueError(f"{path} has no text (one document per line).")
        texts += lines
    if kind == "sentencepiece":
        return train_sentencepiece(
            texts,
            vocabulary_size,
            directory,
            num_sentinels=num_sentinels,
            seed=seed,
        )
    return train_wordpiece(texts, vocabulary_size, directory)
