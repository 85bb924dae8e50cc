"""`kllm data`: the built-in data sets written as train/validation/test
files that training and `kllm evaluate` read."""

import collections
import os

from click.testing import CliRunner

from keras_llm.cli.main import cli
from keras_llm.data import bible
from keras_llm.data import builtin
from keras_llm.data import sources


def _invoke(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def _lines(path):
    with open(path, encoding="utf-8") as file:
        return file.read().splitlines()


def test_pydoc_splits_are_disjoint_complete_and_stable(tmp_path):
    result = _invoke("data", "pydoc", "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    splits = {
        name: _lines(tmp_path / "a" / f"{name}.txt")
        for name in ("train", "validation", "test")
    }
    documents = sources.pydoc_documents()
    assert sorted(sum(splits.values(), [])) == sorted(documents)
    for name, lines in splits.items():
        assert all(builtin.split_of(line) == name for line in lines)
    # About 2% each way (the hash is not exact on ~2,300 paragraphs).
    for name in ("validation", "test"):
        assert 0.01 < len(splits[name]) / len(documents) < 0.03, name
    assert f"{len(splits['test']):,} lines" in result.output
    # Written again, the same files.
    assert _invoke("data", "pydoc", "--out", tmp_path / "b").exit_code == 0
    for name in splits:
        assert _lines(tmp_path / "b" / f"{name}.txt") == splits[name]


def test_bible_and_testament_rows(tmp_path):
    assert _invoke("data", "bible", "--out", tmp_path / "bible").exit_code == 0
    rows = [
        line.split("\t")
        for name in ("train", "validation", "test")
        for line in _lines(tmp_path / "bible" / f"{name}.tsv")
    ]
    assert all(len(row) == 2 and row[0] and row[1] for row in rows)
    assert len(rows) == len(bible.read_pairs())
    test = _lines(tmp_path / "bible" / "test.tsv")
    assert test[0] == (
        "And God called the firmament Heaven. And the evening and the "
        "morning were the second day.\tY llamó Dios á la expansión Cielos: "
        "y fué la tarde y la mañana el día segundo."
    )

    assert _invoke("data", "testament", "--out", tmp_path / "t").exit_code == 0
    labels = collections.Counter(
        line.split("\t")[1]
        for name in ("train", "validation", "test")
        for line in _lines(tmp_path / "t" / f"{name}.tsv")
    )
    verses = bible.testament_verses()
    expected = collections.Counter(label for _, label in verses)
    assert labels == expected and set(labels) == {"old", "new"}
    # Training lines are shuffled: Bible order would give a shuffle buffer
    # 23,000 Old Testament verses first. Its first 1,000 hold both
    # testaments about as the whole does (26% new).
    first = [
        line.split("\t")[1]
        for line in _lines(tmp_path / "t" / "train.tsv")[:1000]
    ]
    assert 0.2 < first.count("new") / 1000 < 0.32
    # The same verse is in the same split in both data sets.
    english = {line.split("\t")[0] for line in test}
    testament_test = {
        line.split("\t")[0] for line in _lines(tmp_path / "t" / "test.tsv")
    }
    assert english <= testament_test


def test_existing_out_is_one_line_and_untouched(tmp_path):
    out = tmp_path / "pydoc"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    result = _invoke("data", "pydoc", "--out", out)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {out} already exists: pass --overwrite to replace it.\n"
    )
    assert os.listdir(out) == ["keep.txt"]
    result = _invoke("data", "pydoc", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    written = sorted(os.listdir(out))
    assert written == ["test.txt", "train.txt", "validation.txt"]


def test_unknown_name_lists_the_choices(tmp_path):
    result = _invoke("data", "wiki", "--out", tmp_path / "w")
    assert result.exit_code == 2
    assert "'wiki' is not one of 'bible', 'testament', 'pydoc'" in result.stderr
    assert not (tmp_path / "w").exists()
