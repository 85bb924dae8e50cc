"""Writing a converter's output folder: all of it or nothing.

Shared by the converters (`hf.py`, `keras_hub.py`): the target is checked
before any work, everything is written into a temporary folder beside it,
and that folder is renamed into place, so a failed or interrupted
conversion leaves nothing behind and `--overwrite` never leaves half a
folder.
"""

import os
import shutil
import tempfile


def check_target(out_dir, overwrite):
    """Raises `FileExistsError` if `out_dir` exists and may not be replaced
    (it is not a folder, or `overwrite` is False)."""
    if os.path.lexists(out_dir):
        if not os.path.isdir(out_dir) or os.path.islink(out_dir):
            raise FileExistsError(f"{out_dir} exists and is not a directory.")
        if not overwrite:
            raise FileExistsError(
                f"{out_dir} already exists: pass --overwrite to replace it."
            )


def prepend_comments(path, lines):
    """Puts `lines` as `# ` comments at the top of the text file `path`
    (where a converted config.yaml says what it came from)."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    comments = "".join(f"# {line}\n" for line in lines)
    with open(path, "w", encoding="utf-8") as file:
        file.write(comments + text)


def write_atomically(out_dir, overwrite, write):
    """Runs `write(folder)` on a temporary folder beside `out_dir`, then
    renames it to `out_dir` (the old one, if any, is moved aside first and
    deleted last)."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(os.path.abspath(out_dir))
    scratch = tempfile.mkdtemp(prefix=f".{name}.converting-", dir=parent)
    aside = scratch + ".old"
    try:
        write(scratch)
        check_target(out_dir, overwrite)  # it may have appeared meanwhile
        if os.path.lexists(out_dir):
            os.replace(out_dir, aside)
            try:
                os.replace(scratch, out_dir)
            except BaseException:
                os.replace(aside, out_dir)
                raise
            shutil.rmtree(aside)
        else:
            os.replace(scratch, out_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
