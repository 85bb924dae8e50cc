"""The model zoo: zoo/*.yaml, installed as the package `keras_llm.zoo`.

A zoo name (`"t5_small"`) works wherever a config path does: see `resolve`.
"""

import importlib.resources
import os

from keras_llm.config.errors import ConfigError

_SUFFIXES = (".yaml", ".yml")


def zoo_names() -> list[str]:
    """Returns the names of the zoo configs, e.g. `["t5_base", ...]`."""
    files = importlib.resources.files("keras_llm.zoo").iterdir()
    return sorted(
        f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml")
    )


def zoo_path(name: str) -> str:
    """Returns the path of the zoo config `name`, e.g. `"t5_small"`.

    Raises:
        ConfigError: if there is none; the message lists the names.
    """
    names = zoo_names()
    if name not in names:
        available = ", ".join(names)
        raise ConfigError(
            f"zoo: no config named {name!r}. Available: {available}"
        )
    return os.fspath(
        importlib.resources.files("keras_llm.zoo") / f"{name}.yaml"
    )


def _is_name(text: str) -> bool:
    """Whether `text` could name a zoo config: no folder, no YAML suffix."""
    separators = {"/", os.sep, os.altsep} - {None}
    return not any(s in text for s in separators) and not text.endswith(
        _SUFFIXES
    )


def resolve(name_or_path: str | os.PathLike) -> str:
    """Returns the config file that `name_or_path` means.

    An existing file wins; else a name without a folder or YAML suffix that
    is in the zoo gives the installed zoo file (from any working directory).

    Args:
        name_or_path: a YAML path, or a zoo name such as `"t5_small"`.

    Returns:
        The path to read.

    Raises:
        ConfigError: in one line, if it is neither a file nor a zoo name;
            the message says what was tried and lists the zoo.
    """
    path = os.fspath(name_or_path)
    if os.path.isfile(path):
        return path
    names = zoo_names()
    if _is_name(path) and path in names:
        return zoo_path(path)
    if os.path.exists(path):  # a folder, say: load_config says why not
        return path
    available = ", ".join(names)
    if _is_name(path):
        raise ConfigError(
            f"{path}: no such file, and no config named {path!r} in the zoo. "
            f"Available: {available}"
        )
    where = "" if os.path.isabs(path) else f" (in {os.getcwd()})"
    raise ConfigError(
        f"{path}: no such file{where}; a zoo name also works: {available}"
    )
