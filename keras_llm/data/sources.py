"""Text sources → `tf.data` of strings, split into train and validation.

Elements are dicts: `{"text": tf.string}` for single documents, or
`{"inputs": tf.string, "targets": tf.string}` for pairs (translation, a
prompt and its completion, or a text and its label for classification).
The split is deterministic: a document goes to validation when a hash of its
text falls under `validation_fraction`, so every run, worker and resume sees
the same split. Every source here yields datasets whose iterators can be
checkpointed (no `from_generator`), which exact resume needs.
"""

import glob
import json
import os

import tensorflow as tf

from keras_llm.data import bible

_HASH_BUCKETS = 100_000


def pydoc_documents():
    """Python's own documentation text, one document per paragraph."""
    from pydoc_data import topics

    documents = []
    for name in sorted(topics.topics):
        for paragraph in topics.topics[name].split("\n\n"):
            paragraph = " ".join(paragraph.split())
            if len(paragraph) > 20:
                documents.append(paragraph)
    return documents


def _expand(pattern, key):
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(
            f"{key}: no file matches {pattern!r} (working directory "
            f"{os.getcwd()})."
        )
    folders = [path for path in files if os.path.isdir(path)]
    if folders:
        example = os.path.join(folders[0], "*.txt")
        raise ValueError(
            f"{key}: {folders[0]} is a directory; name its files with a "
            f"glob such as {example!r}."
        )
    return files


def json_record(line, where, fields):
    """One line of a `.jsonl` file → its object, with the named fields.

    Args:
        line: the line's text.
        where: `path:line`, for the messages.
        fields: `{config key: field name}`, e.g. `{"text_field": "text"}`;
            a `None` field name is not required.

    Raises:
        ValueError: not a JSON object, or a field missing (named with the
            config keys that choose the fields).
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not JSON ({error.msg}).") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object.")
    for field in fields.values():
        if field is not None and field not in record:
            keys = " / ".join(f"data.{key}" for key in fields)
            raise ValueError(
                f"{where}: no field {field!r} (set {keys}). Fields: "
                f"{sorted(record)}"
            )
    return record


def _read_jsonl(files, text_field, target_field):
    fields = {"text_field": text_field, "target_field": target_field}
    texts, targets = [], []
    for path in files:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                record = json_record(line, f"{path}:{number}", fields)
                texts.append(str(record[text_field]))
                if target_field is not None:
                    targets.append(str(record[target_field]))
    if target_field is None:
        return tf.data.Dataset.from_tensor_slices({"text": texts or [""]}).take(
            len(texts)
        )
    return tf.data.Dataset.from_tensor_slices(
        {"inputs": texts or [""], "targets": targets or [""]}
    ).take(len(texts))


def _file_dataset(files, data):
    extensions = {os.path.splitext(path)[1] for path in files}
    if len(extensions) > 1:
        raise ValueError(
            f"data files mix formats {sorted(extensions)}: use one of .txt, "
            ".jsonl, .tsv, .tfrecord per glob."
        )
    extension = extensions.pop()
    if extension == ".jsonl":
        return _read_jsonl(files, data.text_field, data.target_field)
    if extension == ".tsv":
        lines = tf.data.TextLineDataset(files).filter(
            lambda line: tf.strings.length(tf.strings.strip(line)) > 0
        )

        def split(line):
            parts = tf.strings.split(line, "\t", maxsplit=1)
            parts = tf.concat([parts, [""]], 0)[:2]
            return {"inputs": parts[0], "targets": parts[1]}

        return lines.map(split)
    if extension == ".tfrecord":
        fields = [data.text_field] + (
            [data.target_field] if data.target_field else []
        )
        spec = {f: tf.io.FixedLenFeature([], tf.string) for f in fields}

        def parse(record):
            example = tf.io.parse_single_example(record, spec)
            if data.target_field:
                return {
                    "inputs": example[data.text_field],
                    "targets": example[data.target_field],
                }
            return {"text": example[data.text_field]}

        return tf.data.TFRecordDataset(files).map(parse)
    if data.document_per == "file":
        return tf.data.Dataset.from_tensor_slices(files).map(
            lambda path: {"text": tf.io.read_file(path)}
        )
    return tf.data.TextLineDataset(files).map(lambda line: {"text": line})


def _read_labelled(files, data):
    """`(texts, labels, places)` of labelled files: `.tsv` lines
    `text<TAB>label`, `.jsonl` records with `data.text_field` and
    `data.label_field`; `places` are `path:line` for error messages.

    Raises:
        ValueError: a line without a label, naming its file and line.
    """
    texts, labels, places = [], [], []
    for path in files:
        jsonl = path.endswith(".jsonl")
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                if jsonl:
                    text, label = _labelled_record(line, where, data)
                else:
                    text, tab, label = line.partition("\t")
                    if not tab:
                        raise ValueError(
                            f"{where}: no TAB; a classification .tsv has "
                            "text<TAB>label on every line."
                        )
                label = label.strip()
                if not label:
                    raise ValueError(
                        f"{where}: the label is empty; give every line a "
                        "label (text<TAB>label)."
                    )
                texts.append(text)
                labels.append(label)
                places.append(where)
    return texts, labels, places


def _labelled_record(line, where, data):
    record = json_record(line, where, label_fields(data))
    return str(record[data.text_field]), str(record[data.label_field])


def label_fields(data):
    """The `.jsonl` fields of labelled data, by config key."""
    return {"text_field": data.text_field, "label_field": data.label_field}


def training_labels(data):
    """The label set of a classification run: every label of the training
    files, sorted (so the same files give the same ids on every run and
    worker).

    Raises:
        FileNotFoundError, ValueError: see `load_splits`.
    """
    files = _expand(data.train_files, "data.train_files")
    return sorted(set(_read_labelled(files, data)[1]))


def _labelled_dataset(files, data, known=None):
    """Labelled files → `{"inputs", "targets"}` dataset; with `known`,
    a label outside it is an error naming its file and line."""
    texts, labels, places = _read_labelled(files, data)
    if known is not None:
        known_set = set(known)
        for label, where in zip(labels, places):
            if label not in known_set:
                raise ValueError(
                    f"{where}: label {label!r} is not among the training "
                    f"labels {known} (data.train_files); fix the label or "
                    "add examples of it to the training files."
                )
    return tf.data.Dataset.from_tensor_slices(
        {"inputs": texts or [""], "targets": labels or [""]}
    ).take(len(texts))


def _in_validation(element, fraction):
    key = element["text"] if "text" in element else element["inputs"]
    bucket = tf.strings.to_hash_bucket_fast(key, _HASH_BUCKETS)
    return bucket < int(round(fraction * _HASH_BUCKETS))


def _non_empty(element):
    key = element["text"] if "text" in element else element["targets"]
    return tf.strings.length(tf.strings.strip(key)) > 0


def load_splits(data):
    """`(train, validation)` datasets of text elements for a `DataConfig`.

    Raises:
        FileNotFoundError: a glob matches nothing, or a Debian corpus package
            is missing (with the apt command).
        ValueError: a malformed file.
    """
    if data.source == "pydoc":
        full = tf.data.Dataset.from_tensor_slices({"text": pydoc_documents()})
    elif data.source == "bible":
        pairs = bible.read_pairs()
        full = tf.data.Dataset.from_tensor_slices(
            {"inputs": [p[0] for p in pairs], "targets": [p[1] for p in pairs]}
        )
    elif data.objective == "classification":  # labels read in Python
        files = _expand(data.train_files, "data.train_files")
        full = _labelled_dataset(files, data)
    else:
        files = _expand(data.train_files, "data.train_files")
        full = _file_dataset(files, data)
    full = full.filter(_non_empty)
    if data.validation_files:
        files = _expand(data.validation_files, "data.validation_files")
        if data.objective == "classification":
            known = training_labels(data)
            return full, _labelled_dataset(files, data, known)
        return full, _file_dataset(files, data).filter(_non_empty)
    fraction = data.validation_fraction
    train = full.filter(lambda e: tf.logical_not(_in_validation(e, fraction)))
    validation = full.filter(lambda e: _in_validation(e, fraction))
    return train, validation


def sample_texts(dataset, max_characters=20_000_000):
    """Python strings from a text dataset, for training a tokenizer."""
    total = 0
    for element in dataset.as_numpy_iterator():
        for key in ("text", "inputs", "targets"):
            if key in element:
                text = element[key].decode("utf-8", errors="replace")
                total += len(text)
                yield text
        if total >= max_characters:
            return
