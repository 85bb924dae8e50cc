"""Checkpoint averaging: `kllm average RUN_DIR --last N --out NEW_RUN_DIR`.

The mean of the model weights of a run's last few checkpoints usually
scores better than any one of them (Vaswani et al., 2017, average the last
5 or 20; OpenNMT-tf's `average_checkpoints`). Only the model's variables
are averaged: the checkpoint reader's object graph lists the variables
reachable from the checkpoint's `model`, so optimizer slots, the step and
the data position are left out; every checkpoint must hold the same
variables with the same shapes. Floating-point variables are averaged in
float64; any other (none in the zoo's models) is taken from the newest
checkpoint.

The result is a model-only run dir — `config.yaml`, `tokenizer/`, one
checkpoint at the newest averaged step and `averaged.json` (the source and
the steps) — that `keras_llm.load`, `kllm generate`, `kllm evaluate` and
`kllm export` read like any other; `kllm train NEW_RUN_DIR/config.yaml`
fine-tunes from it. It is written into a temporary folder beside `--out`
and renamed into place.
"""

import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from keras_llm import restore
from keras_llm import rundir

AVERAGED_FILE = "averaged.json"


def parse_steps(text):
    """`"200,400"` → `[200, 400]`.

    Raises:
        ValueError: something other than comma-separated step numbers.
    """
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise ValueError(
            f"--steps: expected comma-separated step numbers such as "
            f"1000,2000. Received: {text!r}"
        )
    return sorted({int(part) for part in parts})


def select_steps(run_dir, last=None, steps=None):
    """The kept steps to average: the `last` newest, or `steps`.

    Raises:
        ValueError: neither or both of `last` and `steps`, or `last` < 1.
        FileNotFoundError: a step not kept, or fewer kept than `last`
            (the message lists the steps kept).
    """
    if (last is None) == (steps is None):
        raise ValueError(
            "Pass one of --last N (the N newest checkpoints) or --steps "
            "a,b,c (those steps)."
        )
    kept = rundir.checkpoint_steps(run_dir)
    listed = ", ".join(map(str, kept)) or "none"
    where = rundir.checkpoint_dir(run_dir)
    if last is not None:
        if last < 1:
            raise ValueError(f"--last: expected at least 1. Received: {last}")
        if last > len(kept):
            raise FileNotFoundError(
                f"--last {last}: {where} keeps {len(kept)} checkpoint"
                f"{'' if len(kept) == 1 else 's'} (steps kept: {listed}); "
                "train.max_checkpoints_to_keep sets how many a run keeps."
            )
        return kept[-last:]
    missing = [step for step in steps if step not in kept]
    if missing:
        raise FileNotFoundError(
            f"--steps: no checkpoint of step "
            f"{', '.join(map(str, missing))} in {where} (steps kept: "
            f"{listed})."
        )
    return sorted(steps)


def model_variables(prefix):
    """`{path: (checkpoint key, shape)}` of the variables reachable from
    the checkpoint's `model` object (not the optimizer's slots, the step
    or the data position), read from its object graph."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(prefix)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    roots = [c for c in graph.nodes[0].children if c.local_name == "model"]
    shapes = reader.get_variable_to_shape_map()
    found, seen = {}, set()
    queue = [(child.node_id, "model") for child in roots]
    while queue:  # breadth first: each variable under its shortest path
        node_id, path = queue.pop(0)
        if node_id in seen:
            continue
        seen.add(node_id)
        node = graph.nodes[node_id]
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE":
                key = attribute.checkpoint_key
                found[path] = (key, tuple(shapes[key]))
        for child in node.children:
            queue.append((child.node_id, f"{path}/{child.local_name}"))
    return found


def _check_same_model(prefixes):
    """Refuses checkpoints whose model variables differ (names or
    shapes), naming the first difference."""
    first = model_variables(prefixes[0])
    if not first:
        raise ValueError(f"{prefixes[0]} holds no model variables.")
    for prefix in prefixes[1:]:
        other = model_variables(prefix)
        names = sorted(set(first) ^ set(other))
        if names:
            raise ValueError(
                f"{prefix} and {prefixes[0]} hold different models (variable "
                f"{names[0]} is in one only): average checkpoints of one run."
            )
        for path, (_, shape) in first.items():
            theirs = other[path][1]
            # A run resumed across the 2-D attention kernels keeps
            # checkpoints of both shapes: the same values.
            if theirs != shape and not (
                restore.merges_axes(theirs, shape)
                or restore.merges_axes(shape, theirs)
            ):
                raise ValueError(
                    f"{prefix} and {prefixes[0]} hold different models "
                    f"({path}: shape {theirs} vs {shape}): average "
                    "checkpoints of one run."
                )


def _check_out(run_dir, out_dir, overwrite):
    if os.path.exists(out_dir):
        if os.path.samefile(out_dir, run_dir):
            raise ValueError(
                f"--out {out_dir} is the run dir itself: write the average "
                "to a new folder."
            )
        if not overwrite:
            raise FileExistsError(
                f"--out {out_dir} exists: pass --overwrite to replace it, "
                "or choose a new folder."
            )
        if not os.path.isfile(rundir.config_path(out_dir)):
            raise FileExistsError(
                f"--out {out_dir} exists and is not a run dir: --overwrite "
                "replaces run dirs only; choose a new folder."
            )
    rundir.check_writable(out_dir, "the averaged run dir")


def average_checkpoints(
    run_dir, out_dir, *, last=None, steps=None, overwrite=False
):
    """Writes a run dir with the mean model weights of kept checkpoints.

    Example:
    ```python
    from keras_llm import averaging
    averaging.average_checkpoints("runs/en_es", "runs/en_es_avg", last=5)
    keras_llm.load("runs/en_es_avg").generate(["Hello."])
    ```

    Args:
        run_dir: a run directory.
        out_dir: the new run dir (must not exist, unless `overwrite`).
        last: average the `last` newest checkpoints ...
        steps: ... or those of these steps (one of the two).
        overwrite: replace an existing run dir at `out_dir`.

    Returns:
        `{"out": out_dir, "steps": [...], "checkpoint": prefix}`.

    Raises:
        FileNotFoundError: no run dir or config, a step not kept.
        FileExistsError: `out_dir` exists and `overwrite` is False.
        ValueError: bad `last` / `steps`, or checkpoints of different
            models.
        PermissionError: `out_dir` cannot be written.
    """
    from keras_llm.models import build_model

    cfg = rundir.read_config(run_dir)
    chosen = select_steps(run_dir, last, steps)
    _check_out(run_dir, out_dir, overwrite)
    directory = rundir.checkpoint_dir(run_dir)
    prefixes = [os.path.join(directory, f"ckpt-{step}") for step in chosen]
    _check_same_model(prefixes)

    model = build_model(cfg.model)
    holder = tf.train.Checkpoint(model=model)
    sums = None
    for prefix in prefixes:  # the newest last: it gives the non-floats
        with restore.restorable(prefix, holder) as path:
            holder.restore(
                path
            ).expect_partial().assert_existing_objects_matched()
        values = [np.asarray(v.numpy(), np.float64) for v in model.variables]
        sums = values if sums is None else [s + v for s, v in zip(sums, values)]
    for variable, total in zip(model.variables, sums):
        if np.issubdtype(np.dtype(variable.dtype), np.floating):
            variable.assign((total / len(prefixes)).astype(variable.dtype))

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(os.path.abspath(out_dir))
    scratch = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(scratch, 0o777 & ~umask)  # mkdtemp's 0700: as a plain folder
    try:
        rundir.write_config(cfg, scratch)
        tokenizer = os.path.join(run_dir, rundir.TOKENIZER_DIR)
        if os.path.isdir(tokenizer):
            shutil.copytree(
                tokenizer, os.path.join(scratch, rundir.TOKENIZER_DIR)
            )
        rundir.save_model(model, scratch, step=chosen[-1])
        info = {
            "run_dir": os.path.abspath(run_dir),
            "steps": chosen,
            "checkpoints": [os.path.basename(p) for p in prefixes],
        }
        with open(os.path.join(scratch, AVERAGED_FILE), "w") as f:
            f.write(json.dumps(info, indent=2) + "\n")
        old = None
        if os.path.exists(out_dir):  # --overwrite: the old one aside first
            old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
            os.replace(out_dir, os.path.join(old, name))
        os.replace(scratch, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    checkpoint = os.path.join(
        rundir.checkpoint_dir(out_dir), f"ckpt-{chosen[-1]}"
    )
    return {"out": out_dir, "steps": chosen, "checkpoint": checkpoint}
