"""English–Spanish verse pairs from Debian's SWORD Bible modules.

`sword-text-kjv` (King James, English) and `sword-text-sparv` (Reina-Valera
1909, Spanish) are public domain and share the KJV versification, so verse
slot `i` of one pairs with slot `i` of the other: about 31,000 pairs.

SWORD "zText" layout, per testament (`ot`, `nt`):
- `.bzs`: blocks, each (offset, compressed size, uncompressed size) as
  little-endian uint32, into `.bzz`, whose blocks are zlib streams;
- `.bzv`: verse slots, each (block uint32, offset uint32, size uint16) into
  the decompressed block. Book and chapter headings are interleaved; some
  slots are empty.
"""

import html
import os
import re
import struct
import zlib

SWORD_ROOT = "/usr/share/sword/modules/texts/ztext"
MODULES = {
    "en": ("engKJV2006eb", "sword-text-kjv"),
    "es": ("spaRV1909eb", "sword-text-sparv"),
}
_NOTE = re.compile(r"<note\b.*?</note>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def _module_dir(language, root):
    module, package = MODULES[language]
    root = SWORD_ROOT if root is None else root
    path = os.path.join(root, module)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"The Bible corpus needs the Debian package {package} ({path} "
            f"is missing). Install it with: "
            f"sudo apt-get install sword-text-kjv sword-text-sparv"
        )
    return path


def clean_osis(text):
    """Verse text without OSIS markup, notes or entities, spaces folded."""
    text = _NOTE.sub("", text)
    text = _TAG.sub("", text)
    return _SPACE.sub(" ", html.unescape(text)).strip()


def read_verses(language, root=None, testament=None):
    """All verse slots of one module, in versification order (may be ''):
    both testaments, or only `testament` (`"ot"` or `"nt"`)."""
    path = _module_dir(language, root)
    verses = []
    for part in (testament,) if testament else ("ot", "nt"):

        def read(ext):
            with open(os.path.join(path, f"{part}.{ext}"), "rb") as f:
                return f.read()

        blocks_index, data, slots = read("bzs"), read("bzz"), read("bzv")
        blocks = {}
        for i in range(len(blocks_index) // 12):
            offset, size, _ = struct.unpack_from("<III", blocks_index, 12 * i)
            blocks[i] = (offset, size)
        cache = {}
        for i in range(len(slots) // 10):
            block, offset, size = struct.unpack_from("<IIH", slots, 10 * i)
            if size == 0 or block not in blocks:
                verses.append("")
                continue
            if block not in cache:
                start, length = blocks[block]
                cache = {block: zlib.decompress(data[start : start + length])}
            raw = cache[block][offset : offset + size]
            verses.append(clean_osis(raw.decode("utf-8", errors="replace")))
    return verses


def read_pairs(source="en", target="es", root=None):
    """`(source_text, target_text)` for every slot where both have text."""
    left, right = read_verses(source, root), read_verses(target, root)
    if len(left) != len(right):
        raise ValueError(
            f"The {source} and {target} modules have different verse slot "
            f"counts ({len(left)} vs {len(right)}): not the same versification."
        )
    return [(a, b) for a, b in zip(left, right) if a and b]


def testament_verses(language="en", root=None):
    """`(verse, "old" | "new")` for every non-empty verse of one module."""
    return [
        (verse, name)
        for part, name in (("ot", "old"), ("nt", "new"))
        for verse in read_verses(language, root, testament=part)
        if verse
    ]
