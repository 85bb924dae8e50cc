"""Names that become one folder, checked without TensorFlow."""

import re

_FOLDER_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_folder_name(name, what="--name"):
    """Returns `name` if it is one plain path component.

    Letters, digits, `_`, `-` and `.`, but not `.` or `..`: so that
    `OUT/NAME` stays inside `OUT` (`--name ../../x` would not).

    Args:
        name: the proposed folder name.
        what: how the message names the value, e.g. `"--name"`.

    Raises:
        ValueError: one line naming `what`, the value and the fix.
    """
    if (
        isinstance(name, str)
        and _FOLDER_NAME.fullmatch(name)
        and name not in (".", "..")
    ):
        return name
    raise ValueError(
        f"{what} must be one folder name: letters, digits, '_', '-' and '.' "
        f"(not '.' or '..', no '/'). Received: {name!r}"
    )
