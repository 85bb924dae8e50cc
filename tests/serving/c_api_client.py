"""Runs a SavedModel signature through the TF C API, as TF Serving's C++
loader does: `TF_LoadSessionFromSavedModel` + `TF_SessionRun` (ctypes on the
tensorflow wheel's libtensorflow_cc.so.2).

Imports only tensorflow and tensorflow_text, never keras_llm: a model that
needs anything else would fail in TF Serving too.

    python c_api_client.py EXPORT_DIR SIGNATURE '{"inputs": ["text", ...]}'

Prints the outputs as one JSON object. Strings go in as UTF-8 (surrogate
escapes let a test send bytes that are not UTF-8) and come back decoded
with replacement.
"""

import ctypes
import json
import os
import sys

import tensorflow as tf
import tensorflow_text  # noqa: F401  (TF Serving links TF Text's kernels)
from tensorflow.core.protobuf import saved_model_pb2

TF_STRING, TF_INT32, TF_FLOAT = 7, 3, 1
_lib = ctypes.CDLL(
    os.path.join(os.path.dirname(tf.__file__), "libtensorflow_cc.so.2")
)
_fw = ctypes.CDLL(
    os.path.join(os.path.dirname(tf.__file__), "libtensorflow_framework.so.2")
)


def fn(lib, name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


P = ctypes.c_void_p


class TF_Output(ctypes.Structure):
    _fields_ = [("oper", P), ("index", ctypes.c_int)]


NewStatus = fn(_lib, "TF_NewStatus", P)
GetCode = fn(_lib, "TF_GetCode", ctypes.c_int, P)
Message = fn(_lib, "TF_Message", ctypes.c_char_p, P)
NewGraph = fn(_lib, "TF_NewGraph", P)
NewSessionOptions = fn(_lib, "TF_NewSessionOptions", P)
Load = fn(
    _lib,
    "TF_LoadSessionFromSavedModel",
    P,
    P,
    P,
    ctypes.c_char_p,
    ctypes.POINTER(ctypes.c_char_p),
    ctypes.c_int,
    P,
    P,
    P,
)
OpByName = fn(_lib, "TF_GraphOperationByName", P, P, ctypes.c_char_p)
Allocate = fn(
    _lib,
    "TF_AllocateTensor",
    P,
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_int64),
    ctypes.c_int,
    ctypes.c_size_t,
)
TensorData = fn(_lib, "TF_TensorData", P, P)
ElementCount = fn(_lib, "TF_TensorElementCount", ctypes.c_int64, P)
NumDims = fn(_lib, "TF_NumDims", ctypes.c_int, P)
Dim = fn(_lib, "TF_Dim", ctypes.c_int64, P, ctypes.c_int)
StringInit = fn(_lib, "TF_StringInit", None, P)
StringCopy = fn(
    _lib, "TF_StringCopy", None, P, ctypes.c_char_p, ctypes.c_size_t
)
StringData = fn(_lib, "TF_StringGetDataPointer", P, P)
StringSize = fn(_lib, "TF_StringGetSize", ctypes.c_size_t, P)
SessionRun = fn(
    _lib,
    "TF_SessionRun",
    None,
    P,
    P,
    ctypes.POINTER(TF_Output),
    ctypes.POINTER(P),
    ctypes.c_int,
    ctypes.POINTER(TF_Output),
    ctypes.POINTER(P),
    ctypes.c_int,
    P,
    ctypes.c_int,
    P,
    P,
)
TSTRING = 24  # sizeof(TF_TString)


def check(status):
    if GetCode(status):
        raise RuntimeError(Message(status).decode())


def string_tensor(values):
    dims = (ctypes.c_int64 * 1)(len(values))
    t = Allocate(TF_STRING, dims, 1, TSTRING * len(values))
    base = TensorData(t)
    for i, v in enumerate(values):
        StringInit(base + TSTRING * i)
        StringCopy(base + TSTRING * i, v, len(v))
    return t


def int_tensor(rows):
    import numpy as np

    a = np.ascontiguousarray(rows, dtype=np.int32)
    dims = (ctypes.c_int64 * a.ndim)(*a.shape)
    t = Allocate(TF_INT32, dims, a.ndim, a.nbytes)
    ctypes.memmove(TensorData(t), a.ctypes.data, a.nbytes)
    return t


def read(t, dtype):
    import numpy as np

    shape = [Dim(t, i) for i in range(NumDims(t))]
    n = ElementCount(t)
    base = TensorData(t)
    if dtype == TF_STRING:
        out = [
            ctypes.string_at(
                StringData(base + TSTRING * i), StringSize(base + TSTRING * i)
            )
            for i in range(n)
        ]
        return np.array(out, dtype=object).reshape(shape)
    ctype = {TF_INT32: ctypes.c_int32, TF_FLOAT: ctypes.c_float}[dtype]
    return (
        np.ctypeslib.as_array((ctype * n).from_address(base))
        .reshape(shape)
        .copy()
    )


def main(path, signature, inputs_json):
    meta = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        meta.ParseFromString(f.read())
    sig = meta.meta_graphs[0].signature_def[signature]
    status, graph = NewStatus(), NewGraph()
    tags = (ctypes.c_char_p * 1)(b"serve")
    session = Load(
        NewSessionOptions(), None, path.encode(), tags, 1, graph, None, status
    )
    check(status)
    feeds = json.loads(inputs_json)
    ins, vals = [], []
    for key, value in feeds.items():
        name, index = sig.inputs[key].name.split(":")
        ins.append(TF_Output(OpByName(graph, name.encode()), int(index)))
        if sig.inputs[key].dtype == TF_STRING:
            vals.append(
                string_tensor(
                    [v.encode("utf-8", "surrogateescape") for v in value]
                )
            )
        else:
            vals.append(int_tensor(value))
    keys = sorted(sig.outputs)
    outs = []
    for key in keys:
        name, index = sig.outputs[key].name.split(":")
        outs.append(TF_Output(OpByName(graph, name.encode()), int(index)))
    out_vals = (P * len(outs))()
    SessionRun(
        session,
        None,
        (TF_Output * len(ins))(*ins),
        (P * len(vals))(*vals),
        len(ins),
        (TF_Output * len(outs))(*outs),
        out_vals,
        len(outs),
        None,
        0,
        None,
        status,
    )
    check(status)
    result = {}
    for key, t in zip(keys, out_vals):
        v = read(t, sig.outputs[key].dtype)
        result[key] = (
            [
                x.decode("utf-8", "replace") if isinstance(x, bytes) else x
                for x in v.tolist()
            ]
            if v.dtype == object
            else v.tolist()
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
