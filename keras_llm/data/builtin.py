"""The built-in data sets as files: train, validation and test splits that
`kllm train` (`data.train_files`, `data.validation_files`) and `kllm
evaluate --data` read.

| name | lines | from |
|---|---|---|
| `bible` | `english<TAB>spanish` verse pairs | KJV and Reina-Valera 1909 |
| `testament` | `english verse<TAB>old` or `new` | the KJV |
| `pydoc` | one paragraph of text | Python's own documentation |

Each example goes to one split by a hash of its text (CRC-32), so the
splits are the same on every machine and every run, and a verse's split
does not depend on what else is in the file. The training lines are
shuffled (with a fixed seed): in Bible order, the first 23,000 verses are
all the Old Testament's, more than a shuffle buffer holds, so a model
would see one label for its first thousand steps.
"""

import os
import random
import zlib

from keras_llm.convert import files

DATASETS = ("bible", "testament", "pydoc")
_DESCRIPTIONS = {
    "bible": "English<TAB>Spanish verse pairs (translation)",
    "testament": "English verse<TAB>old|new (classification)",
    "pydoc": "paragraphs of Python's documentation (language modelling)",
}
# Per mille of the examples in validation and in test.
_VALIDATION, _TEST = 20, 20
_SHUFFLE_SEED = 0


def describe(name):
    return _DESCRIPTIONS[name]


def _examples(name):
    """Lines without their newline: TSV rows or text."""
    from keras_llm.data import bible
    from keras_llm.data import sources

    if name == "bible":
        rows = bible.read_pairs()
    elif name == "testament":
        rows = bible.testament_verses()
    elif name == "pydoc":
        return [(text,) for text in sources.pydoc_documents()]
    else:
        raise ValueError(
            f"Unknown data set {name!r}; choose one of {', '.join(DATASETS)}."
        )
    return rows


def split_of(text):
    """`"train"`, `"validation"` or `"test"` for an example's first field."""
    bucket = zlib.crc32(text.encode("utf-8")) % 1000
    if bucket < _VALIDATION:
        return "validation"
    if bucket < _VALIDATION + _TEST:
        return "test"
    return "train"


def write(name, out_dir, overwrite=False):
    """Writes `out_dir/{train,validation,test}.{tsv|txt}` for data set
    `name`; returns `{split: (path, number of lines)}`.

    The folder appears whole or not at all.

    Raises:
        ValueError: an unknown name.
        FileExistsError: `out_dir` exists and `overwrite` is False.
        FileNotFoundError: a Debian corpus package is missing.
    """
    if name not in DATASETS:
        raise ValueError(
            f"Unknown data set {name!r}; choose one of {', '.join(DATASETS)}."
        )
    files.check_target(out_dir, overwrite)
    rows = _examples(name)
    extension = "txt" if name == "pydoc" else "tsv"
    splits = {"train": [], "validation": [], "test": []}
    for row in rows:
        # Tabs and newlines inside a field would break the line format.
        fields = [" ".join(field.split()) for field in row]
        splits[split_of(fields[0])].append("\t".join(fields))
    random.Random(_SHUFFLE_SEED).shuffle(splits["train"])
    written = {}

    def write_splits(folder):
        for split, lines in splits.items():
            path = os.path.join(folder, f"{split}.{extension}")
            with open(path, "w", encoding="utf-8") as file:
                file.writelines(line + "\n" for line in lines)
            name = f"{split}.{extension}"
            written[split] = (os.path.join(out_dir, name), len(lines))

    files.write_atomically(out_dir, overwrite, write_splits)
    return written
