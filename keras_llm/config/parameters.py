"""The zoo's parameter counts, cached in zoo/parameters.json.

`kllm zoo list` shows each zoo model's parameter count without building it
(no TensorFlow): the cache maps each name to
`{"parameters": N, "model": <the file's model section>}`, and an entry counts
only while its model section equals the file's. After changing a zoo file's
model section (or adding a file), regenerate the cache from a checkout
(builds every model, about a minute on a CPU):

    python -m keras_llm.config.parameters
"""

import importlib.resources
import json
import os
import sys
from typing import Any

import yaml

from keras_llm.config import zoo

FILE = "parameters.json"
REGENERATE = "python -m keras_llm.config.parameters"


def cache_path() -> str:
    """The cache file, next to the zoo's YAML files."""
    return os.fspath(importlib.resources.files("keras_llm.zoo") / FILE)


def read_cache() -> dict[str, dict[str, Any]]:
    """The cache as stored; `{}` when there is no cache file."""
    try:
        with open(cache_path(), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def model_section(name: str) -> dict[str, Any]:
    """The `model` section of zoo config `name`, as its file states it."""
    with open(zoo.zoo_path(name), encoding="utf-8") as f:
        return yaml.safe_load(f)["model"]


def parameter_counts() -> dict[str, int]:
    """Cached task-model parameter counts by zoo name.

    Only the entries whose model section still equals the zoo file's; a
    name missing here must be built to be counted.
    """
    cache = read_cache()
    counts = {}
    for name in zoo.zoo_names():
        entry = cache.get(name)
        if entry is not None and entry.get("model") == model_section(name):
            counts[name] = entry["parameters"]
    return counts


def write_cache(path: str | None = None) -> dict[str, dict[str, Any]]:
    """Builds every zoo model (TensorFlow) and writes the cache.

    Args:
        path: where to write; default `cache_path()` (in a checkout
            installed with `pip install -e .`, the repository's zoo/).

    Returns:
        The cache written.
    """
    import keras

    from keras_llm import models  # TensorFlow

    cache = {}
    for name in zoo.zoo_names():
        count = models.count_parameters(zoo.zoo_path(name))
        cache[name] = {"parameters": count, "model": model_section(name)}
        keras.backend.clear_session()  # free the model before the next one
    with open(path or cache_path(), "w", encoding="utf-8") as f:
        json.dump(cache, f, indent=2)
        f.write("\n")
    return cache


def main(argv: list[str]) -> int:
    if argv:
        print(f"usage: {REGENERATE}  (rewrites {cache_path()})")
        return 2
    for name, entry in write_cache().items():
        print(f"{name:<20} {entry['parameters']:>15,}")
    print(f"Wrote {cache_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
