"""Runs SavedModel signatures with the TF1 session loader
(`tf.compat.v1.saved_model.loader.load`), by tensor names, and lists the
graph's ops.

Imports only tensorflow and tensorflow_text, never keras_llm.

    python session_client.py EXPORT_DIR REQUESTS_JSON

REQUESTS_JSON: a list of {"signature": ..., "inputs": {key: value}}. Prints
{"results": [...], "ops": [...], "text_ops": [...], "core_ops": [...]}.
"""

import json
import sys

import tensorflow as tf
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session


def registered_ops():
    ops = op_def_pb2.OpList()
    buffer = pywrap_tf_session.TF_GetAllOpList()
    ops.ParseFromString(pywrap_tf_session.TF_GetBuffer(buffer))
    return {op.name for op in ops.op}


CORE_OPS = registered_ops()
import tensorflow_text  # noqa: E402,F401  (TF Serving links TF Text's kernels)

TEXT_OPS = registered_ops() - CORE_OPS


def graph_ops(graph_def):
    ops = {node.op for node in graph_def.node}
    xla_functions = []
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
        attr = function.attr.get("_XlaMustCompile")
        if attr is not None and attr.b:
            xla_functions.append(function.signature.name)
    return ops, xla_functions


def main(path, requests):
    results = []
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        for request in requests:
            signature = meta.signature_def[request["signature"]]
            feeds = {
                signature.inputs[key].name: (
                    [v.encode("utf-8", "surrogateescape") for v in value]
                    if signature.inputs[key].dtype == tf.string.as_datatype_enum
                    else value
                )
                for key, value in request["inputs"].items()
            }
            keys = sorted(signature.outputs)
            values = session.run(
                [signature.outputs[k].name for k in keys], feeds
            )
            result = {}
            for key, value in zip(keys, values):
                if value.dtype == object:
                    value = [
                        v.decode("utf-8", "replace") for v in value.ravel()
                    ]
                else:
                    value = value.tolist()
                result[key] = value
            results.append(result)
        ops, xla_functions = graph_ops(meta.graph_def)
    print(
        json.dumps(
            {
                "results": results,
                "ops": sorted(ops),
                "core_ops": sorted(CORE_OPS),
                "text_ops": sorted(TEXT_OPS),
                "xla_functions": xla_functions,
                "signatures": sorted(meta.signature_def),
            }
        )
    )


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        main(sys.argv[1], json.load(f))
