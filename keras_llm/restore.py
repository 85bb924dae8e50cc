"""Restoring checkpoints written with older variable shapes.

Until the attention projections became 2-D, their kernels were
`(D, H, K)` (query, key, value) and `(H, K, D)` (output) and their biases
`(H, K)`; today they are `(D, H*K)`, `(H*K, D)` and `(H*K,)`: the same
values in the same order, two neighbouring axes merged. `tf.train.Checkpoint`
refuses a saved value whose shape differs from its variable's, so
`restorable` gives the restore a checkpoint it accepts: the one named, or,
when it holds such older shapes, a temporary copy with those values
reshaped. Every saved tensor goes through the copy (the optimizer's slots
of those kernels are reshaped the same way, the data position is kept), so
a run written before the change loads, resumes and averages as before.
"""

import contextlib
import os
import tempfile

import tensorflow as tf

_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def merges_axes(saved_shape, shape):
    """Whether `shape` is `saved_shape` with two neighbouring axes merged
    into one: `(D, H, K)` → `(D, H*K)`, `(H, K, D)` → `(H*K, D)`,
    `(H, K)` → `(H*K,)`."""
    saved, shape = tuple(saved_shape), tuple(shape)
    if len(saved) != len(shape) + 1:
        return False
    return any(
        saved[:i] + (saved[i] * saved[i + 1],) + saved[i + 2 :] == shape
        for i in range(len(shape))
    )


def _saved_variables(reader, root):
    """`{checkpoint key: variable}` for the variables of `root` that the
    checkpoint holds, matched as restoring matches them: node by node along
    the checkpoint's object graph, by the names of the children."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(_GRAPH_KEY))
    objects, queue, found = {0: root}, [0], {}
    while queue:  # breadth first from the root, node 0
        node_id = queue.pop(0)
        obj, node = objects[node_id], graph.nodes[node_id]
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE":
                found[attribute.checkpoint_key] = obj
        children = tf.train.TrackableView.children(obj) if node.children else {}
        for child in node.children:
            if child.node_id not in objects and child.local_name in children:
                objects[child.node_id] = children[child.local_name]
                queue.append(child.node_id)
    return found


def legacy_reshapes(prefix, root):
    """`{checkpoint key: shape}` of the saved values of `root`'s variables
    that have an older shape (see `merges_axes`); empty for a checkpoint of
    today's shapes.

    A checkpoint this cannot read gives `{}`: restoring it then reports the
    damage as it always did.
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
        saved = reader.get_variable_to_shape_map()
        variables = _saved_variables(reader, root)
    except Exception:  # noqa: BLE001 (the restore names what is wrong)
        return {}
    reshapes = {}
    for key, variable in variables.items():
        shape = tuple(variable.shape)
        if key in saved and merges_axes(saved[key], shape):
            reshapes[key] = shape
    return reshapes


def _rewrite(prefix, reshapes, target):
    """Copies every tensor of checkpoint `prefix` to `target`, those named
    in `reshapes` reshaped."""
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    names = sorted(dtypes)
    slices = [""] * len(names)
    with tf.device("CPU:0"):
        tensors = tf.raw_ops.RestoreV2(
            prefix=prefix,
            tensor_names=names,
            shape_and_slices=slices,
            dtypes=[dtypes[name] for name in names],
        )
        tensors = [
            tf.reshape(t, reshapes[name]) if name in reshapes else t
            for name, t in zip(names, tensors)
        ]
        tf.raw_ops.SaveV2(
            prefix=target,
            tensor_names=names,
            shape_and_slices=slices,
            tensors=tensors,
        )


@contextlib.contextmanager
def restorable(prefix, root):
    """A checkpoint prefix that `root` can restore: `prefix`, or a
    temporary copy of it with values of older shapes reshaped (deleted on
    leaving the `with` block, so restore inside it).

    Example:
    ```python
    checkpoint = tf.train.Checkpoint(model=model)
    with restore.restorable(prefix, checkpoint) as path:
        checkpoint.restore(path).expect_partial()
    ```

    Args:
        prefix: a checkpoint prefix (`.../ckpt-N`).
        root: the `tf.train.Checkpoint` that will restore it.

    Yields:
        The prefix to restore from.
    """
    reshapes = legacy_reshapes(prefix, root)
    if not reshapes:
        yield prefix
        return
    with tempfile.TemporaryDirectory(prefix="kllm-restore-") as scratch:
        target = os.path.join(scratch, os.path.basename(prefix))
        _rewrite(prefix, reshapes, target)
        yield target
