"""Shape-checked assignment of named arrays to Keras variables."""

import numpy as np


def assign_weights(pairs, source):
    """Assigns `source[name]` (after `transform`) to each variable.

    Args:
        pairs: iterable of `(variable, name, transform)`; `transform` maps
            the source array to the variable's layout (or is `None`).
        source: mapping from names to numpy arrays.

    Raises:
        ValueError: listing every missing name and every shape mismatch
            (`name: source (a, b) → variable (c, d)`), before anything is
            assigned.
    """
    missing, mismatched, updates = [], [], []
    for variable, name, transform in pairs:
        if name not in source:
            missing.append(name)
            continue
        value = np.asarray(source[name])
        if transform is not None:
            try:
                value = transform(value)
            except ValueError:
                pass  # reported as a shape mismatch below
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(
                f"{name}: checkpoint {tuple(np.shape(source[name]))} → "
                f"{variable.path} {tuple(variable.shape)}"
            )
            continue
        updates.append((variable, value))
    if missing or mismatched:
        lines = []
        if missing:
            lines.append(
                f"{len(missing)} weights missing from the checkpoint: "
                + ", ".join(missing)
            )
        if mismatched:
            lines.append(
                f"{len(mismatched)} weights have the wrong shape: "
                + "; ".join(mismatched)
            )
        raise ValueError(" ".join(lines))
    for variable, value in updates:
        variable.assign(value.astype(variable.dtype))


def find_prefix(state_dict, probe, prefixes):
    """The prefix under which a checkpoint stores its backbone.

    Hugging Face names a base model's weights without a prefix (`BertModel`:
    `embeddings.…`) and a model with a head under one (`BertForMaskedLM`:
    `bert.embeddings.…`).

    Args:
        state_dict: mapping from names to arrays.
        probe: a backbone weight name without prefix, e.g. `"wte.weight"`.
        prefixes: candidate prefixes, e.g. `("transformer.",)`.

    Returns:
        The first prefix `p` with `p + probe` in `state_dict`, else `""`
        (then the missing names are reported without a prefix).
    """
    for prefix in prefixes:
        if prefix + probe in state_dict:
            return prefix
    return ""
