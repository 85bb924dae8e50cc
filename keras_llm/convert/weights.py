"""Shape-checked assignment of named arrays to Keras variables, and back.

A converter lists `(variable, name, layout)` pairs: the checkpoint array
`name`, passed through `layout` (or taken as is when it is `None`), is the
variable's value. A `Layout` also knows the way back, so the same pairs
write a checkpoint (`read_weights`) as they read one (`assign_weights`).
"""

from collections.abc import Callable

import numpy as np


class Layout:
    """A checkpoint array → a variable's value, and back.

    Calling it maps a checkpoint array to the variable's layout;
    `inverse` maps a variable's value back. A layout with `columns` set
    takes only the columns `[start, start + width)` of the last axis of a
    `source_shape` array (one of several variables packed into one
    checkpoint array, as GPT-2's fused query/key/value).
    """

    def __init__(
        self,
        forward: Callable,
        inverse: Callable,
        *,
        columns: tuple[int, int] | None = None,
        source_shape: tuple[int, ...] | None = None,
    ):
        self.forward, self.inverse = forward, inverse
        self.columns, self.source_shape = columns, source_shape

    def __call__(self, w):
        if self.source_shape is not None and w.shape != self.source_shape:
            raise ValueError(w.shape)  # reported as a shape mismatch
        return self.forward(w)


def transposed() -> Layout:
    """A torch `Linear` weight `(out, in)` ↔ a Keras kernel `(in, out)`."""
    return Layout(np.transpose, np.transpose)


def reshaped(shape: tuple[int, ...], source_shape: tuple[int, ...]) -> Layout:
    """A checkpoint array of `source_shape` ↔ a variable of `shape`."""
    return Layout(lambda w: w.reshape(shape), lambda v: v.reshape(source_shape))


def columns(
    start: int,
    width: int,
    source_shape: tuple[int, ...],
    shape: tuple[int, ...],
) -> Layout:
    """Columns `[start, start + width)` of the last axis of a
    `source_shape` checkpoint array ↔ a variable of `shape`."""
    return Layout(
        lambda w: w[..., start : start + width].reshape(shape),
        lambda v: v.reshape(source_shape[:-1] + (width,)),
        columns=(start, width),
        source_shape=tuple(source_shape),
    )


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


def read_weights(pairs) -> dict[str, np.ndarray]:
    """The checkpoint arrays that `pairs` describe, from the variables'
    values: the inverse of `assign_weights`.

    Variables packed into one checkpoint array (`columns` layouts) are put
    back side by side; a name listed twice otherwise (a tied weight) is
    written once.

    Raises:
        TypeError: a pair's transform is a plain function, not a `Layout`
            (its inverse is unknown).
        ValueError: packed columns leave part of an array unfilled.
    """
    arrays, filled = {}, {}
    for variable, name, layout in pairs:
        value = np.asarray(variable.numpy())
        if layout is None:
            arrays.setdefault(name, value)
        elif not isinstance(layout, Layout):
            raise TypeError(
                f"{name}: its transform has no inverse (use a Layout)."
            )
        elif layout.columns is None:
            arrays.setdefault(name, layout.inverse(value))
        else:
            start, width = layout.columns
            array = arrays.setdefault(
                name, np.zeros(layout.source_shape, value.dtype)
            )
            array[..., start : start + width] = layout.inverse(value)
            filled[name] = filled.get(name, 0) + width
    for name, width in filled.items():
        if width != arrays[name].shape[-1]:
            raise ValueError(
                f"{name}: {width} of its {arrays[name].shape[-1]} columns "
                "are described."
            )
    return arrays
