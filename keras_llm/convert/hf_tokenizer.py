"""Hugging Face's `tokenizer.json` ↔ keras_llm's in-graph tokenizers.

transformers 5's `save_pretrained` writes a tokenizer as `tokenizer.json`
(the `tokenizers` library's format) and `tokenizer_config.json` only: no
`spiece.model`, `vocab.json`/`merges.txt` or `vocab.txt`. This module reads
that JSON itself (neither `tokenizers` nor `transformers` is needed at run
time) and writes it back:

```
tokenizer.json model      keras_llm tokenizer
Unigram (T5)           ↔  SentencePieceTokenizer (a SentencePiece model
                          proto built from the pieces, scores and the
                          precompiled normalization map; sentinels from
                          the added `<extra_id_N>` tokens)
BPE, byte-level        ↔  BytePairTokenizer (GPT-2's split regex or
  (GPT-2, Llama 3)        another, e.g. Llama 3's, kept as a setting)
BPE, byte_fallback     ↔  SentencePieceTokenizer with a prepend_scheme (a
  (Llama 2)               SentencePiece BPE proto, scores from the merges)
WordPiece (BERT)       ↔  WordPieceTokenizer (lowercase and strip_accents
                          from the BertNormalizer)
```
Ids equal those of `AutoTokenizer.from_pretrained(folder)` with
`add_special_tokens=False`. Other models (WordLevel, ...) and settings
these models lack are refused with one line naming the file.

Read: `tokenizer_from_json(path, tokenizer_config)` (what `kllm convert hf`
uses when a checkpoint has no legacy files), `load_hf_tokenizer(folder)`
(the same from a checkpoint folder), `check_same_tokenizer(a, b, ...)`
(legacy files and `tokenizer.json` must agree). Write:
`write_hf_tokenizer(tokenizer, directory, model_type)`.
"""

import base64
import json
import os
import re

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
LLAMA_MODEL_FILE = "tokenizer.model"  # Llama 2's SentencePiece model
SUPPORTED = (
    "Unigram (T5), BPE (byte-level as GPT-2's and Llama 3's, or with "
    "byte_fallback as Llama 2's) and WordPiece (BERT)"
)
_SENTINEL = re.compile(r"<extra_id_(\d+)>")
_BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")
_METASPACE = "\u2581"
# Texts on which legacy files and tokenizer.json must give the same ids.
AGREEMENT_TEXTS = (
    "Hello world, this is a test.",
    "  runs of   spaces\n\n\tand tabs\t ",
    "Café naïve résumé, Ångström straße",
    "中文字符测试，日本語のテキスト",
    "emoji 😀👍🏽 and numbers 12345 3.14159",
    "don't it's we're I'VE 'quoted'",
)


class TokenizerJsonError(ValueError):
    """A `tokenizer.json` keras_llm cannot read (the message names it)."""


# --- Reading -----------------------------------------------------------------


def read_json(path):
    """The object in a JSON file; one-line errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing.")
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TokenizerJsonError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise TokenizerJsonError(f"{path}: expected a JSON object.")
    return value


def load_hf_tokenizer(directory, *, num_sentinels=None):
    """The tokenizer of a Hugging Face folder's `tokenizer.json`.

    Reads `tokenizer.json` (else a Llama 2 `tokenizer.model`) and, when
    present, `tokenizer_config.json` (the eos, bos and pad token names,
    `clean_up_tokenization_spaces`, Llama's `legacy` and
    `add_prefix_space`) in `directory`. For a Llama checkpoint: Llama 3's
    byte-level BPE comes back as a `BytePairTokenizer` with Llama 3's split
    regex, bos `<|begin_of_text|>`, the config's eos and its 256 special
    tokens; Llama 2's SentencePiece BPE as a `SentencePieceTokenizer` with
    a `prepend_scheme`, eos as its pad. `add_bos` is what transformers 5
    adds with `add_special_tokens=True`: BOS first in `tokenizer.json`'s
    template, or `add_bos_token` for a bare `tokenizer.model`.

    Args:
        directory: a folder written by `save_pretrained`.
        num_sentinels: T5 only: check that the file has this many
            `<extra_id_N>` tokens.

    Returns:
        A `SentencePieceTokenizer`, `BytePairTokenizer` or
        `WordPieceTokenizer` whose ids equal the folder's
        `AutoTokenizer` (`add_special_tokens=False`).

    Raises:
        FileNotFoundError: neither `tokenizer.json` nor `tokenizer.model`
            in `directory`.
        ValueError: a model type or setting keras_llm cannot run (the
            message names the file, the setting and what is supported).
    """
    config_path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    config = read_json(config_path) if os.path.isfile(config_path) else {}
    json_path = os.path.join(directory, TOKENIZER_FILE)
    model_path = os.path.join(directory, LLAMA_MODEL_FILE)
    if not os.path.isfile(json_path) and os.path.isfile(model_path):
        return llama_sentencepiece(model_path, config)
    if not os.path.isfile(json_path):
        raise FileNotFoundError(
            f"{json_path} is missing (and there is no {LLAMA_MODEL_FILE}): "
            "copy the checkpoint's tokenizer files into the folder."
        )
    tokenizer = tokenizer_from_json(json_path, config)
    if num_sentinels is not None and tokenizer.kind == "sentencepiece":
        if tokenizer.num_sentinels != num_sentinels:
            raise TokenizerJsonError(
                f"{os.path.join(directory, TOKENIZER_FILE)} has "
                f"{tokenizer.num_sentinels} <extra_id_N> tokens; expected "
                f"{num_sentinels}."
            )
    return tokenizer


def tokenizer_from_json(path, tokenizer_config=None):
    """Our tokenizer for a `tokenizer.json` (see `load_hf_tokenizer`).

    Args:
        path: the `tokenizer.json` file.
        tokenizer_config: dict, the `tokenizer_config.json` beside it (or
            `{}`): special token names and `clean_up_tokenization_spaces`.

    Raises:
        FileNotFoundError: `path` is missing.
        ValueError: an unsupported model type or setting, named in one
            line with the file.
    """
    data = read_json(path)
    config = tokenizer_config or {}
    model = data.get("model")
    if not isinstance(model, dict):
        raise TokenizerJsonError(f"{path}: no 'model' object.")
    model_type = model.get("type") or _guess_type(model)
    readers = {"Unigram": _unigram, "BPE": _bpe, "WordPiece": _wordpiece}
    if model_type not in readers:
        raise TokenizerJsonError(
            f"{path}: tokenizer model type {model_type!r} is not supported; "
            f"keras_llm reads {SUPPORTED}."
        )
    try:
        tokenizer = readers[model_type](data, config, path)
        tokenizer.add_bos = _template_adds_bos(data, tokenizer)
        return tokenizer
    except TokenizerJsonError:
        raise
    except (ValueError, RuntimeError) as error:  # our tokenizers' checks
        raise TokenizerJsonError(f"{path}: {error}") from None
    except (KeyError, TypeError, IndexError) as error:
        raise TokenizerJsonError(
            f"{path}: malformed {model_type} tokenizer ({type(error).__name__}"
            f": {error})."
        ) from None


def _template_adds_bos(data, tokenizer):
    """Whether the file's post-processor starts every text with BOS.

    transformers 5 adds what `tokenizer.json`'s `TemplateProcessing`
    says (Llama 2's `<s>`, Llama 3's `<|begin_of_text|>`), whatever
    `tokenizer_config.json`'s `add_bos_token`, so the template decides.
    """
    if tokenizer.bos_id is None:
        return False
    nodes = _components(data.get("post_processor"), "processors")
    for node in nodes:
        if node.get("type") != "TemplateProcessing":
            continue
        single = node.get("single") or []
        first = single[0].get("SpecialToken") if single else None
        if not first:
            return False
        special = (node.get("special_tokens") or {}).get(first.get("id"), {})
        return list(special.get("ids") or [])[:1] == [tokenizer.bos_id]
    return False


def _guess_type(model):
    # Files written by older `tokenizers` may lack "type".
    if "merges" in model:
        return "BPE"
    if isinstance(model.get("vocab"), list):
        return "Unigram"
    if "continuing_subword_prefix" in model:
        return "WordPiece"
    return None


def _added_tokens(data):
    """`{content: (id, special)}` of the file's added tokens."""
    return {
        token["content"]: (int(token["id"]), bool(token.get("special")))
        for token in data.get("added_tokens") or []
    }


def _config_token(config, key, default=None):
    token = config.get(key, default)
    if isinstance(token, dict):  # {"content": ...} in older configs
        token = token.get("content")
    return token


def _components(node, key):
    """A normalizer/pre-tokenizer/decoder as a flat list (Sequence opened)."""
    if not node:
        return []
    if node.get("type") == "Sequence":
        return [
            item
            for child in node.get(key, [])
            for item in _components(child, key)
        ]
    return [node]


def _refuse(path, what, node):
    raise TokenizerJsonError(
        f"{path}: {what} {json.dumps(node, ensure_ascii=False)[:120]} is not "
        f"supported; keras_llm reads {SUPPORTED} as transformers writes them."
    )


# --- Unigram → SentencePiece -------------------------------------------------


def _unigram(data, config, path):
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    from keras_llm.data.sentencepiece_tokenizer import SentencePieceTokenizer

    model = data["model"]
    vocab = [(str(piece), float(score)) for piece, score in model["vocab"]]
    added = _added_tokens(data)
    sentinels = {
        int(match[1]): token_id
        for token, (token_id, _) in added.items()
        if (match := _SENTINEL.fullmatch(token))
    }
    num_sentinels = len(sentinels)
    num_pieces = len(vocab) - num_sentinels
    for i, token_id in sorted(sentinels.items()):
        expected = num_pieces + num_sentinels - 1 - i
        if token_id != expected:
            raise TokenizerJsonError(
                f"{path}: <extra_id_{i}> has id {token_id}; keras_llm puts "
                f"T5's sentinels after the {num_pieces} pieces, counting "
                f"down (<extra_id_{i}> = {expected})."
            )
    for token, (token_id, _) in added.items():
        if token_id >= num_pieces and not _SENTINEL.fullmatch(token):
            raise TokenizerJsonError(
                f"{path}: added token {token!r} (id {token_id}) is not a "
                "piece of the Unigram model nor a T5 sentinel."
            )
    charsmap, collapse, strip = _unigram_normalizer(data, path)
    prepend, split = _unigram_pre_tokenizer(data, path)

    proto = model_pb2.ModelProto()
    unk_id = model.get("unk_id")
    byte_fallback = bool(model.get("byte_fallback"))
    types = model_pb2.ModelProto.SentencePiece
    by_id = {token_id: (token, special) for token, (token_id, special)
             in added.items()}  # fmt: skip
    for i, (piece, score) in enumerate(vocab[:num_pieces]):
        entry = proto.pieces.add(piece=piece, score=score)
        if i == unk_id:
            entry.type = types.UNKNOWN
        elif i in by_id:
            entry.type = types.CONTROL if by_id[i][1] else types.USER_DEFINED
        elif byte_fallback and _BYTE_PIECE.fullmatch(piece):
            entry.type = types.BYTE
    if unk_id is None:
        raise TokenizerJsonError(
            f"{path}: the Unigram model has no unk_id; SentencePiece needs "
            "an unknown piece."
        )
    trainer = proto.trainer_spec
    trainer.model_type = model_pb2.TrainerSpec.UNIGRAM
    trainer.vocab_size = num_pieces
    trainer.byte_fallback = byte_fallback
    ids = {piece: i for i, (piece, _) in enumerate(vocab[:num_pieces])}
    trainer.unk_id = unk_id
    trainer.unk_piece = vocab[unk_id][0]
    for name, default in (("pad", "<pad>"), ("eos", "</s>"), ("bos", None)):
        token = _config_token(config, f"{name}_token", default)
        token_id = ids.get(token, -1) if token is not None else -1
        if token_id >= 0 and by_id.get(token_id, (None, False))[1]:
            setattr(trainer, f"{name}_id", token_id)
            setattr(trainer, f"{name}_piece", token)
        else:
            setattr(trainer, f"{name}_id", -1)
    normalizer = proto.normalizer_spec
    normalizer.name = "user_defined" if charsmap else "identity"
    normalizer.precompiled_charsmap = charsmap
    normalizer.add_dummy_prefix = prepend
    normalizer.remove_extra_whitespaces = collapse or split or strip
    normalizer.escape_whitespaces = True
    if trainer.pad_id < 0:
        raise TokenizerJsonError(
            f"{path}: no pad token among the special pieces (keras_llm's "
            "SentencePiece tokenizer pads with it; T5's is <pad>)."
        )
    return SentencePieceTokenizer(
        proto.SerializeToString(),
        num_sentinels,
        clean_up_tokenization_spaces=bool(
            config.get("clean_up_tokenization_spaces", False)
        ),
    )


def _unigram_normalizer(data, path):
    """(precompiled charsmap bytes, collapses spaces, strips)."""
    charsmap, collapse, strip = b"", False, False
    for node in _components(data.get("normalizer"), "normalizers"):
        kind = node.get("type")
        if kind == "Precompiled":
            charsmap = base64.b64decode(node.get("precompiled_charsmap") or "")
        elif (
            kind == "Replace"
            and node.get("pattern") in ({"Regex": " {2,}"}, {"Regex": " +"})
            and node.get("content") in (" ", _METASPACE)
        ):  # transformers 4 wrote "▁", transformers 5 " "
            collapse = True
        elif kind == "Strip":
            strip = True
        else:
            _refuse(path, "the Unigram normalizer", node)
    return charsmap, collapse, strip


def _unigram_pre_tokenizer(data, path):
    """(prepends "▁", splits on whitespace) of the Metaspace setup."""
    prepend, split, seen = True, False, False
    for node in _components(data.get("pre_tokenizer"), "pretokenizers"):
        kind = node.get("type")
        if kind == "WhitespaceSplit":
            split = True
        elif kind == "Metaspace" and node.get("replacement") == _METASPACE:
            seen = True
            scheme = node.get("prepend_scheme")
            if scheme is None:
                prepend = bool(node.get("add_prefix_space", True))
            elif scheme in ("always", "first", "never"):
                prepend = scheme != "never"
            else:
                _refuse(path, "the Metaspace pre-tokenizer", node)
        else:
            _refuse(path, "the Unigram pre-tokenizer", node)
    if not seen:
        _refuse(path, "a Unigram pre-tokenizer without Metaspace",
                data.get("pre_tokenizer"))  # fmt: skip
    return prepend, split


# --- BPE → BytePairTokenizer -------------------------------------------------


def _vocabulary(data, model, path, kind):
    """`(token → id, tokens by id)` of a BPE or WordPiece model with the
    file's added tokens; the ids must run 0..N-1 without gaps.

    Raises:
        TokenizerJsonError: an added token whose id differs from the
            vocabulary's, or a gap in the ids.
    """
    vocab = {str(k): int(v) for k, v in model["vocab"].items()}
    for token, (token_id, _) in _added_tokens(data).items():
        if vocab.get(token, token_id) != token_id:
            raise TokenizerJsonError(
                f"{path}: added token {token!r} has id {token_id}, the "
                f"vocabulary {vocab[token]}."
            )
        vocab[token] = token_id
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise TokenizerJsonError(
            f"{path}: the {kind} ids are not 0..{len(tokens) - 1} without gaps."
        )
    return vocab, tokens


def _bpe(data, config, path):
    from keras_llm.data import bpe_tokenizer

    model = data["model"]
    if not _is_byte_level(data):
        return _sentencepiece_bpe(data, config, path)
    if model.get("byte_fallback"):
        _refuse(path, "byte_fallback in a byte-level BPE", True)
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            _refuse(path, f"the BPE {key}", model[key])
    if model.get("dropout"):
        _refuse(path, "BPE dropout", model["dropout"])
    if data.get("normalizer"):
        _refuse(path, "a normalizer before byte-level BPE", data["normalizer"])
    split_pattern = _split_pattern(data, path)
    vocabulary = {str(k): int(v) for k, v in model["vocab"].items()}
    merges = [
        " ".join(merge) if isinstance(merge, list) else str(merge)
        for merge in model.get("merges") or []
    ]
    added = _added_tokens(data)
    names = {}
    for name in ("eos", "bos", "pad"):
        token = _config_token(config, f"{name}_token")
        if token is not None and token not in vocabulary and token not in added:
            raise TokenizerJsonError(
                f"{path}: {name}_token {token!r} (from "
                f"{TOKENIZER_CONFIG_FILE}) is neither in the vocabulary "
                "nor an added token."
            )
        names[name] = token
    if names["eos"] is None:
        if "<|endoftext|>" not in vocabulary:
            raise TokenizerJsonError(
                f"{path}: no eos_token in {TOKENIZER_CONFIG_FILE} (and no "
                "GPT-2 <|endoftext|>): name it there."
            )
        names["eos"] = "<|endoftext|>"
    special = {token: token_id for token, (token_id, _) in added.items()}
    return bpe_tokenizer.BytePairTokenizer(
        vocabulary,
        merges,
        eos_token=names["eos"],
        bos_token=None if names["bos"] == names["eos"] else names["bos"],
        pad_token=None if names["pad"] == names["eos"] else names["pad"],
        special_tokens=special,
        split_pattern=split_pattern,
        ignore_merges=bool(model.get("ignore_merges")),
    )


def _sentencepiece_bpe(data, config, path):
    """Llama 2's SentencePiece BPE (byte fallback, "▁" for spaces) as a
    SentencePiece BPE model proto.

    SentencePiece merges the adjacent pair whose concatenation has the best
    score; Hugging Face applies its merges by rank. A piece's score is minus
    the rank of the first merge that makes it, so both merge alike where
    every merge result's pairs are merges (as in files converted from a
    SentencePiece model, which list every split of every piece).
    """
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    from keras_llm.data.sentencepiece_tokenizer import SentencePieceTokenizer

    model = data["model"]
    refusal = (
        f"{path}: a BPE that is neither byte-level (GPT-2, Llama 3) nor "
        "SentencePiece-style with byte_fallback as Llama 2's"
    )
    if not model.get("byte_fallback"):
        raise TokenizerJsonError(f"{refusal} is not supported.")
    for key in ("continuing_subword_prefix", "end_of_word_suffix", "dropout"):
        if model.get(key):
            _refuse(path, f"the BPE {key}", model[key])
    if model.get("ignore_merges"):
        _refuse(path, "ignore_merges with byte_fallback", True)
    scheme = _metaspace_scheme(data, config, path)
    added = _added_tokens(data)
    vocab, pieces = _vocabulary(data, model, path, "BPE")
    missing = [
        f"<0x{b:02X}>" for b in range(256) if f"<0x{b:02X}>" not in vocab
    ]
    if missing:
        raise TokenizerJsonError(
            f"{path}: byte_fallback needs the 256 byte pieces <0x00>..<0xFF>; "
            f"missing {', '.join(missing[:3])} ({len(missing)} in all)."
        )
    rank = {}
    for i, merge in enumerate(model.get("merges") or []):
        left, right = merge if isinstance(merge, list) else merge.split(" ")
        rank.setdefault(left + right, i)
    unk = model.get("unk_token") or _config_token(config, "unk_token", "<unk>")
    if unk not in vocab:
        raise TokenizerJsonError(
            f"{path}: no unknown piece ({unk!r}); SentencePiece needs one."
        )
    proto = model_pb2.ModelProto()
    types = model_pb2.ModelProto.SentencePiece
    for i, piece in enumerate(pieces):
        entry = proto.pieces.add(piece=piece, score=-float(rank.get(piece, i)))
        if piece == unk:
            entry.type = types.UNKNOWN
        elif piece in added:
            entry.type = (
                types.CONTROL if added[piece][1] else types.USER_DEFINED
            )
        elif _BYTE_PIECE.fullmatch(piece):
            entry.type = types.BYTE
    trainer = proto.trainer_spec
    trainer.model_type = model_pb2.TrainerSpec.BPE
    trainer.vocab_size = len(pieces)
    trainer.byte_fallback = True
    trainer.unk_id, trainer.unk_piece = vocab[unk], unk
    for name in ("bos", "eos", "pad"):
        token = _config_token(config, f"{name}_token")
        if token in vocab and token in added:
            setattr(trainer, f"{name}_id", vocab[token])
            setattr(trainer, f"{name}_piece", token)
        else:
            setattr(trainer, f"{name}_id", -1)
    if trainer.eos_id < 0:
        raise TokenizerJsonError(
            f"{path}: no eos_token among the added tokens (name it in "
            f"{TOKENIZER_CONFIG_FILE})."
        )
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = False  # the tokenizer prepends (scheme)
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    return SentencePieceTokenizer(
        proto.SerializeToString(),
        clean_up_tokenization_spaces=bool(
            config.get("clean_up_tokenization_spaces", False)
        ),
        prepend_scheme=scheme,
    )


def llama_sentencepiece(path, tokenizer_config=None):
    """Llama 2's `tokenizer.model` (a SentencePiece BPE with byte fallback)
    as transformers 5's `LlamaTokenizer` runs it.

    The model's own dummy prefix goes; the tokenizer prepends as
    `Metaspace(prepend_scheme=...)` with the scheme from
    `tokenizer_config.json` (see `_metaspace_scheme`).

    Raises:
        FileNotFoundError: `path` is missing.
        ValueError: not a BPE model with byte fallback (one line).
    """
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    from keras_llm.data.sentencepiece_tokenizer import SentencePieceTokenizer

    config = tokenizer_config or {}
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing.")
    with open(path, "rb") as file:
        proto = model_pb2.ModelProto()
        try:
            proto.ParseFromString(file.read())
        except Exception as error:  # protobuf's DecodeError
            raise TokenizerJsonError(
                f"{path} is not a SentencePiece model: {error}"
            ) from None
    trainer = proto.trainer_spec
    if trainer.model_type != model_pb2.TrainerSpec.BPE or not (
        trainer.byte_fallback
    ):
        raise TokenizerJsonError(
            f"{path}: keras_llm reads Llama 2's SentencePiece model (BPE "
            "with byte_fallback) from tokenizer.model; this one is not."
        )
    normalizer = proto.normalizer_spec
    normalizer.add_dummy_prefix = False  # the tokenizer prepends (scheme)
    normalizer.remove_extra_whitespaces = False
    tokenizer = SentencePieceTokenizer(
        proto.SerializeToString(),
        clean_up_tokenization_spaces=bool(
            config.get("clean_up_tokenization_spaces", False)
        ),
        prepend_scheme=_metaspace_scheme(
            None, {**config, "tokenizer_class": "LlamaTokenizer"}, path
        ),
    )
    # transformers 5's LlamaTokenizer adds BOS to a bare tokenizer.model
    # only with `add_bos_token: true` (as Meta's Llama 2 configs set it).
    add_bos = bool(config.get("add_bos_token", False))
    tokenizer.add_bos = add_bos and tokenizer.bos_id is not None
    return tokenizer


def _metaspace_scheme(data, config, path):
    """Where Llama 2's tokenizer puts the "▁" prefix (`Metaspace`'s
    `prepend_scheme`).

    transformers 5's `LlamaTokenizer` ignores the file's normalizer and
    pre-tokenizer and builds `Metaspace(prepend_scheme=...)` from
    `tokenizer_config.json`: "first", or "always" with `legacy: true`,
    "never" with `add_prefix_space: false`. Other classes run the file's
    `Metaspace`.
    """
    if config.get("tokenizer_class") in (
        "LlamaTokenizer",
        "LlamaTokenizerFast",
    ):
        if config.get("add_prefix_space") is False:
            return "never"
        return "always" if config.get("legacy") else "first"
    normalizers = _components(data.get("normalizer"), "normalizers")
    pre = _components(data.get("pre_tokenizer"), "pretokenizers")
    if (
        not normalizers
        and len(pre) == 1
        and pre[0].get("type") == "Metaspace"
        and pre[0].get("replacement") == _METASPACE
        and pre[0].get("prepend_scheme") in ("first", "always", "never")
        and not pre[0].get("split", True)
    ):
        return pre[0]["prepend_scheme"]
    _refuse(
        path,
        "a SentencePiece-style BPE set up as",
        {
            "normalizer": data.get("normalizer"),
            "pre": data.get("pre_tokenizer"),
        },
    )


def _is_byte_level(data):
    nodes = _components(data.get("pre_tokenizer"), "pretokenizers")
    return any(node.get("type") == "ByteLevel" for node in nodes)


def _split_pattern(data, path):
    """The pre-tokenization regex (`None`: GPT-2's ByteLevel `use_regex`)."""
    from keras_llm.data import bpe_tokenizer

    nodes = _components(data.get("pre_tokenizer"), "pretokenizers")
    pattern = None
    for node in nodes:
        kind = node.get("type")
        if kind == "ByteLevel":
            if node.get("add_prefix_space"):
                _refuse(path, "ByteLevel add_prefix_space", node)
            if node.get("use_regex", True):
                if pattern is not None:
                    _refuse(path, "a Split before a regex ByteLevel", node)
                pattern = bpe_tokenizer.GPT2_SPLIT_PATTERN
        elif (
            kind == "Split"
            and pattern is None
            and node.get("behavior") == "Isolated"
            and not node.get("invert")
            and "Regex" in (node.get("pattern") or {})
        ):
            pattern = node["pattern"]["Regex"]
        else:
            _refuse(path, "the BPE pre-tokenizer", node)
    if pattern is None:
        _refuse(path, "a byte-level BPE without a split regex",
                data.get("pre_tokenizer"))  # fmt: skip
    rewritten = (
        bpe_tokenizer.GPT2_SPLIT_PATTERN,
        bpe_tokenizer.LLAMA3_SPLIT_PATTERN,
    )
    if pattern not in rewritten:
        try:
            bpe_tokenizer.re2_split_pattern(pattern)
        except ValueError as error:
            raise TokenizerJsonError(f"{path}: {error}") from None
    return None if pattern == bpe_tokenizer.GPT2_SPLIT_PATTERN else pattern


# --- WordPiece → WordPieceTokenizer ------------------------------------------


def _wordpiece(data, config, path):
    from keras_llm.data import wordpiece_tokenizer

    model = data["model"]
    if model.get("continuing_subword_prefix", "##") != "##":
        _refuse(path, "WordPiece continuing_subword_prefix",
                model["continuing_subword_prefix"])  # fmt: skip
    if model.get("max_input_chars_per_word", 100) != (
        wordpiece_tokenizer.MAX_WORD_CHARS
    ):
        _refuse(path, "WordPiece max_input_chars_per_word",
                model["max_input_chars_per_word"])  # fmt: skip
    normalizers = _components(data.get("normalizer"), "normalizers")
    if len(normalizers) != 1 or normalizers[0].get("type") != "BertNormalizer":
        _refuse(path, "the WordPiece normalizer", data.get("normalizer"))
    normalizer = normalizers[0]
    for key in ("clean_text", "handle_chinese_chars"):
        if not normalizer.get(key, True):
            _refuse(path, f"BertNormalizer {key}=false", normalizer)
    pre = _components(data.get("pre_tokenizer"), "pretokenizers")
    if [node.get("type") for node in pre] != ["BertPreTokenizer"]:
        _refuse(path, "the WordPiece pre-tokenizer", data.get("pre_tokenizer"))
    vocab, tokens = _vocabulary(data, model, path, "WordPiece")
    lowercase = bool(normalizer.get("lowercase", True))
    strip_accents = normalizer.get("strip_accents")
    try:
        return wordpiece_tokenizer.WordPieceTokenizer(
            tokens,
            lowercase=lowercase,
            strip_accents=None
            if strip_accents is None
            else bool(strip_accents),
            clean_up_tokenization_spaces=bool(
                config.get("clean_up_tokenization_spaces", False)
            ),
        )
    except ValueError as error:
        raise TokenizerJsonError(f"{path}: {error}") from None


# --- Legacy files and tokenizer.json must agree -------------------------------


def checkpoint_tokenizer(
    src_dir, legacy_files, build_legacy, tokenizer_config, model_type, hint=""
):
    """A checkpoint folder's tokenizer: its legacy files, else tokenizer.json.

    The legacy files (`spiece.model`, `vocab.json` + `merges.txt`,
    `vocab.txt`) are what the model was released with; transformers 5
    saves `tokenizer.json` only. When both are there, they must agree
    (`check_same_tokenizer`).

    Args:
        src_dir: the checkpoint folder.
        legacy_files: the legacy file names, e.g. `("vocab.txt",)`.
        build_legacy: function of no arguments that builds our tokenizer
            from the legacy files.
        tokenizer_config: dict, the folder's `tokenizer_config.json`.
        model_type: str, for messages (`"t5"`).
        hint: str, added to the missing-file message.

    Raises:
        FileNotFoundError: neither the legacy files nor tokenizer.json
            (the message names the first missing legacy file).
        ValueError: tokenizer.json cannot be read, is of another kind
            than the legacy files would be, or disagrees with them.
    """
    paths = [os.path.join(src_dir, name) for name in legacy_files]
    json_path = os.path.join(src_dir, TOKENIZER_FILE)
    missing = [path for path in paths if not os.path.isfile(path)]
    has_json = os.path.isfile(json_path)
    if missing and not has_json:
        raise FileNotFoundError(
            f"{missing[0]} is missing: a {model_type} checkpoint needs its "
            f"tokenizer files ({' + '.join(legacy_files)}, or "
            f"{TOKENIZER_FILE}){hint}."
        )
    from_json = None
    if has_json:
        from_json = tokenizer_from_json(json_path, tokenizer_config)
    if missing:
        return from_json
    legacy = build_legacy()
    if from_json is not None:
        check_same_tokenizer(legacy, from_json, paths[0], json_path)
    return legacy


def check_same_tokenizer(legacy, from_json, legacy_path, json_path):
    """Raises `ValueError` (one line) unless the two tokenizers agree.

    A checkpoint folder may hold both the legacy files (`spiece.model`,
    `vocab.json` + `merges.txt`, `vocab.txt`) and `tokenizer.json`;
    `kllm convert hf` uses the legacy ones, so a stale copy of either must
    not pass silently. Compared: the number of ids, the special ids, the
    pieces of a sample of ids spread over the vocabulary, and the ids of
    `AGREEMENT_TEXTS`.
    """
    fix = "keep the one that belongs to the checkpoint and delete the other"

    def fail(what):
        raise TokenizerJsonError(
            f"{legacy_path} and {json_path} disagree: {what}; {fix}."
        )

    if (legacy.kind, legacy.vocabulary_size) != (
        from_json.kind,
        from_json.vocabulary_size,
    ):
        fail(
            f"{legacy.vocabulary_size} ids ({legacy.kind}) vs "
            f"{from_json.vocabulary_size} ({from_json.kind})"
        )
    step = max(1, legacy.vocabulary_size // 997)
    sample = list(range(0, legacy.vocabulary_size, step))
    for token_id, a, b in zip(
        sample, pieces(legacy, sample), pieces(from_json, sample)
    ):
        if a != b:
            fail(f"id {token_id} is {a!r} in one and {b!r} in the other")
    for name in ("pad_id", "eos_id", "bos_id", "unk_id", "special_ids"):
        if getattr(legacy, name) != getattr(from_json, name):
            fail(
                f"{name} {getattr(legacy, name)} vs {getattr(from_json, name)}"
            )
    texts = list(AGREEMENT_TEXTS)
    a = legacy.tokenize(texts).to_list()
    b = from_json.tokenize(texts).to_list()
    for text, x, y in zip(texts, a, b):
        if x != y:
            fail(f"{text!r} gives ids {x[:8]}... vs {y[:8]}...")


def pieces(tokenizer, ids):
    """The vocabulary strings of `ids` (SentencePiece pieces with "▁",
    byte-level BPE tokens, WordPiece tokens with "##")."""
    import tensorflow as tf

    if tokenizer.kind != "sentencepiece":
        strings = tf.gather(tokenizer.tokens, ids).numpy().tolist()
        return [s.decode("utf-8", "replace") for s in strings]
    n = tokenizer.num_pieces
    strings = tokenizer.sentencepiece.id_to_string(
        tf.constant([i if i < n else 0 for i in ids], tf.int32)
    ).numpy()
    return [
        s.decode("utf-8", "replace")
        if i < n
        else f"<extra_id_{n + tokenizer.num_sentinels - 1 - i}>"
        for i, s in zip(ids, strings.tolist())
    ]


# --- Writing -----------------------------------------------------------------

# Hugging Face tokenizer classes by model_type (others: the generic one).
# The model's own tokenizer class, where our tokenizer is of its kind (a
# GPT-2 run may use a SentencePiece tokenizer: then the generic class, which
# reads tokenizer.json as written).
_TOKENIZER_CLASSES = {
    ("t5", "sentencepiece"): "T5Tokenizer",
    ("gpt2", "bpe"): "GPT2Tokenizer",
    ("bert", "wordpiece"): "BertTokenizer",
}


def write_hf_tokenizer(tokenizer, directory, model_type):
    """Writes `tokenizer` as Hugging Face files into `directory`.

    `tokenizer.json` (what transformers 5 loads), `tokenizer_config.json`,
    `special_tokens_map.json` and the legacy files older readers need
    (`spiece.model`, `vocab.json` + `merges.txt`, `vocab.txt`), such that
    `transformers.AutoTokenizer.from_pretrained(directory)` gives our ids
    (`add_special_tokens=False`) and decodes our ids as
    `tokenizer.detokenize(ids, skip_special_tokens=True)` does. T5's
    sentinels are the added tokens `<extra_id_N>`. The template adds BOS
    only under `tokenizer.add_bos`, so `AutoTokenizer(...)(text)` with
    special tokens gives our causal prompt ids.

    Args:
        tokenizer: a keras_llm `Tokenizer`.
        directory: where the files go (created if needed; files of the
            same names are replaced).
        model_type: the Hugging Face `model_type` (`"t5"`, `"gpt2"`,
            `"bert"`, `"llama"`, ...): names the tokenizer class.

    Returns:
        The paths written.
    """
    writers = {
        "sentencepiece": _sentencepiece_files,
        "bpe": _bpe_files,
        "wordpiece": _wordpiece_files,
    }
    if tokenizer.kind not in writers:
        raise ValueError(
            f"No Hugging Face format for a {tokenizer.kind!r} tokenizer."
        )
    os.makedirs(directory, exist_ok=True)
    body, specials, config, legacy = writers[tokenizer.kind](tokenizer)
    tokenizer_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": token_id,
                "content": token,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for token, token_id in sorted(specials.items(), key=_by_id)
        ],
        **body,
    }
    config = {
        "tokenizer_class": _TOKENIZER_CLASSES.get(
            (model_type, tokenizer.kind), "PreTrainedTokenizerFast"
        ),
        "clean_up_tokenization_spaces": tokenizer.clean_up_tokenization_spaces,
        "model_max_length": int(1e30),
        **config,
        "added_tokens_decoder": {
            str(token_id): {
                "content": token,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for token, token_id in sorted(specials.items(), key=_by_id)
        },
    }
    special_map = {
        key: value
        for key, value in config.items()
        if key.endswith("_token") and value is not None
    }
    extra = config.get("additional_special_tokens")
    if extra:
        special_map["additional_special_tokens"] = extra
    files = {
        TOKENIZER_FILE: json.dumps(tokenizer_json, ensure_ascii=False),
        TOKENIZER_CONFIG_FILE: json.dumps(config, indent=2, ensure_ascii=False),
        SPECIAL_TOKENS_MAP_FILE: json.dumps(
            special_map, indent=2, ensure_ascii=False
        ),
        **legacy,
    }
    written = []
    for name, content in files.items():
        path = os.path.join(directory, name)
        mode = "wb" if isinstance(content, bytes) else "w"
        encoding = None if mode == "wb" else "utf-8"
        with open(path, mode, encoding=encoding) as file:
            file.write(content)
        written.append(path)
    return written


def _by_id(item):
    return item[1]


def _sentencepiece_files(tokenizer):
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    proto = model_pb2.ModelProto()
    proto.ParseFromString(tokenizer.model)
    if tokenizer.prepend_scheme is not None:
        return _sentencepiece_bpe_files(tokenizer, proto)
    types = model_pb2.ModelProto.SentencePiece
    vocab = [[piece.piece, piece.score] for piece in proto.pieces]
    specials = {
        piece.piece: i
        for i, piece in enumerate(proto.pieces)
        if piece.type in (types.CONTROL, types.UNKNOWN)
    }
    sentinels = [
        f"<extra_id_{i}>" for i in reversed(range(tokenizer.num_sentinels))
    ]
    for token in sentinels:
        specials[token] = len(vocab)
        vocab.append([token, 0.0])
    spec = proto.normalizer_spec
    normalizer = None
    if spec.precompiled_charsmap:
        normalizer = {
            "type": "Precompiled",
            "precompiled_charsmap": base64.b64encode(
                spec.precompiled_charsmap
            ).decode("ascii"),
        }
    metaspace = {
        "type": "Metaspace",
        "replacement": _METASPACE,
        "prepend_scheme": "always" if spec.add_dummy_prefix else "never",
        "split": True,
    }
    pre_tokenizer = metaspace
    if spec.remove_extra_whitespaces:
        pre_tokenizer = {
            "type": "Sequence",
            "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace],
        }
    eos = _piece(proto, tokenizer.eos_id)
    bos = _piece(proto, tokenizer.bos_id) if tokenizer.add_bos else None
    template_ids = {eos: tokenizer.eos_id} if eos else {}
    if bos:
        template_ids[bos] = tokenizer.bos_id
    body = {
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": _template(
            [bos] if bos else [],
            ["$A"] + ([eos] if eos else []),
            template_ids,
        ),
        "decoder": dict(metaspace),
        "model": {
            "type": "Unigram",
            "unk_id": tokenizer.unk_id,
            "vocab": vocab,
            "byte_fallback": bool(proto.trainer_spec.byte_fallback),
        },
    }
    config = {
        "eos_token": eos,
        "pad_token": _piece(proto, tokenizer.pad_id),
        "unk_token": _piece(proto, tokenizer.unk_id),
        "bos_token": _piece(proto, tokenizer.bos_id),
        "extra_ids": tokenizer.num_sentinels,
        "additional_special_tokens": sentinels[::-1],
    }
    return body, specials, config, {"spiece.model": tokenizer.model}


def _sentencepiece_bpe_files(tokenizer, proto):
    """Llama 2's layout: a BPE with byte_fallback, its merges derived from
    the pieces as transformers derives them from a SentencePiece model
    (every split of a piece into two pieces, by the piece's score)."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    types = model_pb2.ModelProto.SentencePiece
    if proto.trainer_spec.model_type != model_pb2.TrainerSpec.BPE:
        raise ValueError(
            "A SentencePiece tokenizer with prepend_scheme must hold a BPE "
            "model (Llama 2's)."
        )
    vocab = {piece.piece: i for i, piece in enumerate(proto.pieces)}
    order = sorted(
        range(len(proto.pieces)), key=lambda i: (-proto.pieces[i].score, i)
    )
    merges = []
    for i in order:
        piece = proto.pieces[i]
        if piece.type != types.NORMAL:
            continue
        text = piece.piece
        splits = [
            (text[:k], text[k:])
            for k in range(1, len(text))
            if text[:k] in vocab and text[k:] in vocab
        ]
        merges += sorted(splits, key=lambda pair: (vocab[pair[0]],
                                                   vocab[pair[1]]))  # fmt: skip
    specials = {
        piece.piece: i
        for i, piece in enumerate(proto.pieces)
        if piece.type in (types.CONTROL, types.UNKNOWN, types.USER_DEFINED)
    }
    metaspace = {
        "type": "Metaspace",
        "replacement": _METASPACE,
        "prepend_scheme": tokenizer.prepend_scheme,
        "split": False,
    }
    bos = _piece(proto, tokenizer.bos_id)
    first = [bos] if bos and tokenizer.add_bos else []
    body = {
        "normalizer": None,
        "pre_tokenizer": metaspace,
        "post_processor": _template(
            first, ["$A"], {bos: tokenizer.bos_id} if first else {}
        ),
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {
                    "type": "Replace",
                    "pattern": {"String": _METASPACE},
                    "content": " ",
                },
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": _piece(proto, tokenizer.unk_id),
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [list(pair) for pair in merges],
        },
    }
    config = {
        "bos_token": bos,
        "eos_token": _piece(proto, tokenizer.eos_id),
        "unk_token": _piece(proto, tokenizer.unk_id),
        "pad_token": None,
        "add_bos_token": bool(first),
        "add_eos_token": False,
        # What transformers 5's LlamaTokenizer builds its Metaspace from.
        "tokenizer_class": "LlamaTokenizer",
        "legacy": tokenizer.prepend_scheme == "always",
        "add_prefix_space": tokenizer.prepend_scheme != "never",
    }
    return body, specials, config, {"tokenizer.model": tokenizer.model}


def _piece(proto, token_id):
    return None if token_id is None else proto.pieces[token_id].piece


def _bpe_files(tokenizer):
    from keras_llm.data import bpe_tokenizer

    vocabulary = json.loads(tokenizer._vocabulary_json)
    merges = tokenizer._merges_text.splitlines()
    names = {"eos": tokenizer.eos_token}
    names["bos"] = tokenizer.bos_token or tokenizer.eos_token
    names["pad"] = tokenizer.pad_token
    ids = {**vocabulary, **tokenizer._special_tokens}
    specials = {t: ids[t] for t in names.values() if t is not None}
    specials.update(tokenizer._special_tokens)
    byte_level = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": True,
        "use_regex": tokenizer.split_pattern is None,
    }
    pre_tokenizer = byte_level
    if tokenizer.split_pattern is not None:
        pre_tokenizer = {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": tokenizer.split_pattern},
                    "behavior": "Isolated",
                    "invert": False,
                },
                byte_level,
            ],
        }
    # Llama 3 starts with its BOS (`add_bos`); GPT-2 adds nothing.
    bos = tokenizer.bos_token if tokenizer.add_bos else None
    body = {
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": _template(
            [bos] if bos else [], ["$A"], {bos: ids[bos]} if bos else {}
        ),
        "decoder": {**byte_level, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": tokenizer.ignore_merges,
            "vocab": vocabulary,
            "merges": [merge.split(" ") for merge in merges],
        },
    }
    config = {
        "eos_token": names["eos"],
        "bos_token": names["bos"],
        "unk_token": names["eos"],
        "pad_token": names["pad"],
        "add_prefix_space": False,
        "errors": "replace",
    }
    legacy = {
        bpe_tokenizer.VOCAB_FILE: tokenizer._vocabulary_json,
        bpe_tokenizer.MERGES_FILE: "#version: 0.2\n" + tokenizer._merges_text,
    }
    return body, specials, config, legacy


def _wordpiece_files(tokenizer):
    from keras_llm.data import wordpiece_tokenizer

    tokens = [t.decode("utf-8") for t in tokenizer.tokens.numpy().tolist()]
    specials = {t: tokens.index(t) for t in wordpiece_tokenizer.SPECIAL_TOKENS}
    cls, sep = "[CLS]", "[SEP]"
    body = {
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": True,
            "handle_chinese_chars": True,
            "strip_accents": tokenizer.strip_accents,
            "lowercase": tokenizer.lowercase,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": _template(
            [cls], ["$A", sep], {cls: specials[cls], sep: specials[sep]}
        ),
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": wordpiece_tokenizer.MAX_WORD_CHARS,
            "vocab": {token: i for i, token in enumerate(tokens)},
        },
    }
    config = {
        "do_lower_case": tokenizer.lowercase,
        "strip_accents": tokenizer.strip_accents,
        "tokenize_chinese_chars": True,
        "unk_token": "[UNK]",
        "sep_token": sep,
        "pad_token": "[PAD]",
        "cls_token": cls,
        "mask_token": "[MASK]",
    }
    legacy = {wordpiece_tokenizer.VOCAB_FILE: "".join(f"{t}\n" for t in tokens)}
    return body, specials, config, legacy


def _template(before, sequence, special_ids):
    """A TemplateProcessing post-processor: `before` tokens, the sequence
    (`"$A"`) and the tokens after it; pairs repeat it for `$B`."""

    def part(items, sequence_id):
        out = []
        for item in items:
            if item == "$A":
                out.append({"Sequence": {"id": sequence_id, "type_id": 0}})
            else:
                out.append({"SpecialToken": {"id": item, "type_id": 0}})
        return out

    single = part(before + sequence, "A")
    pair = single + part(sequence, "B")
    return {
        "type": "TemplateProcessing",
        "single": single,
        "pair": pair,
        "special_tokens": {
            token: {"id": token, "ids": [token_id], "tokens": [token]}
            for token, token_id in special_ids.items()
        },
    }
