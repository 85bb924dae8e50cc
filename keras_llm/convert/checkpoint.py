"""Reads a Hugging Face checkpoint's weights into a numpy state dict.

`model.safetensors` (or its shards, listed in `model.safetensors.index.json`)
is read with numpy alone: the format is an 8-byte little-endian header size,
a JSON header (`name → {dtype, shape, data_offsets}`), then the raw bytes.
That also reads bfloat16, which the `safetensors` package's numpy API cannot.
`pytorch_model.bin` (or its shards) needs torch (`pip install
'keras_llm[torch]'`) and is opened with `torch.load(weights_only=True)`,
never plain pickle.
"""

import json
import os
import struct

import numpy as np

SAFETENSORS_FILE = "model.safetensors"
TORCH_FILE = "pytorch_model.bin"
INDEX_SUFFIX = ".index.json"

_DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16,
    "U16": np.uint16, "I32": np.int32, "U32": np.uint32, "I64": np.int64,
    "U64": np.uint64, "F16": np.float16, "F32": np.float32, "F64": np.float64,
}  # fmt: skip


def weight_files(directory: str) -> list[str]:
    """The weight files of a checkpoint folder, safetensors first.

    Raises:
        FileNotFoundError: the folder holds none of `model.safetensors`,
            `pytorch_model.bin` or their sharded `.index.json`.
    """
    for name in (SAFETENSORS_FILE, TORCH_FILE):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return [path]
        index = path + INDEX_SUFFIX
        if os.path.isfile(index):
            return _shards(index, directory)
    names = (
        SAFETENSORS_FILE,
        SAFETENSORS_FILE + INDEX_SUFFIX,
        TORCH_FILE,
        TORCH_FILE + INDEX_SUFFIX,
    )
    raise FileNotFoundError(
        f"No weights in {directory}: expected {', '.join(names[:-1])} or "
        f"{names[-1]}."
    )


def _shards(index, directory):
    try:
        with open(index, encoding="utf-8") as file:
            weight_map = json.load(file)["weight_map"]
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{index} is not valid JSON: {error}") from None
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{index} is not a shard index (no weight_map): {error}"
        ) from None
    if not isinstance(weight_map, dict) or not all(
        isinstance(name, str)
        and name == os.path.basename(name)
        and name not in ("", ".", "..")
        for name in weight_map.values()
    ):
        raise ValueError(
            f"{index}: weight_map must map weight names to file names in "
            f"{directory}."
        )
    paths = [
        os.path.join(directory, name)
        for name in sorted(set(weight_map.values()))
    ]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing (listed in {index}).")
    return paths


def read_state_dict(directory: str) -> dict[str, np.ndarray]:
    """All weights of the checkpoint in `directory`, name → numpy array.

    bfloat16 weights come back as float32; other dtypes as stored.

    Raises:
        FileNotFoundError: no weight file (see `weight_files`).
        ValueError: a corrupt or unsupported weight file, or a
            `pytorch_model.bin` without torch installed.
    """
    state_dict = {}
    for path in weight_files(directory):
        if path.endswith(".safetensors"):
            state_dict.update(read_safetensors(path))
        else:
            state_dict.update(_read_torch(path))
    return state_dict


# A header larger than this is no real checkpoint's (a 100,000-tensor
# header is about 10 MB); it is refused before it is read.
MAX_HEADER_BYTES = 100 * 2**20
_FIELDS_IN_ORDER = ("dtype", "shape", "data_offsets")  # of a tensor entry
_FIELDS = frozenset(_FIELDS_IN_ORDER)


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """The tensors of one `.safetensors` file, name → numpy array.

    Raises:
        ValueError: naming the file, if it is not a safetensors file or its
            header does not describe its bytes (see `_check_header`).
    """
    file_size = os.path.getsize(path)
    with open(path, "rb") as file:
        try:
            (size,) = struct.unpack("<Q", file.read(8))
        except struct.error:
            raise ValueError(
                f"{path} is not a safetensors file: shorter than its 8-byte "
                "header size."
            ) from None
        if size > min(file_size - 8, MAX_HEADER_BYTES):
            raise ValueError(
                f"{path} is not a safetensors file (or is truncated): its "
                f"header claims {size:,} bytes of a {file_size:,}-byte file."
            )
        try:
            header = json.loads(file.read(size))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a safetensors file: {e}") from None
    body_size = file_size - 8 - size
    header = _check_header(path, header, body_size)
    if body_size:
        # Mapped, not read: each weight is copied once, when it is assigned.
        body = np.memmap(path, np.uint8, "r", offset=8 + size)
    else:
        body = np.zeros(0, np.uint8)
    tensors = {}
    for name, info in header.items():
        try:
            tensors[name] = _decode(body, info)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: cannot read {name}: {error}") from None
    return tensors


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _itemsize(dtype):
    if dtype == "BF16":
        return 2
    return np.dtype(_DTYPES[dtype]).itemsize if dtype in _DTYPES else None


def _check_header(path, header, body_size):
    """The tensor entries of a safetensors header, each checked: a dict of
    `name → {"dtype", "shape", "data_offsets"}` (plus an optional
    `__metadata__` dict) whose byte ranges lie in the file and match their
    shapes.

    Raises:
        ValueError: naming the file, the tensor and what is wrong.
    """
    if not isinstance(header, dict):
        raise ValueError(
            f"{path} is not a safetensors file: its header is a "
            f"{type(header).__name__}, not a mapping of tensor names."
        )
    header = dict(header)
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"{path}: __metadata__ must be a mapping.")
    for name, info in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(info, dict) or not _FIELDS <= set(info):
            raise ValueError(
                f"{where}: expected {{dtype, shape, data_offsets}}. "
                f"Received: {str(info)[:80]}"
            )
        dtype, shape, offsets = (info[key] for key in _FIELDS_IN_ORDER)
        itemsize = _itemsize(dtype) if isinstance(dtype, str) else None
        if itemsize is None:
            raise ValueError(
                f"{where}: unsupported dtype {dtype!r} (keras_llm reads "
                f"BF16, {', '.join(_DTYPES)})."
            )
        if not (
            isinstance(shape, list)
            and all(_is_int(d) and d >= 0 for d in shape)
        ):
            raise ValueError(
                f"{where}: shape must be a list of sizes >= 0. "
                f"Received: {str(shape)[:80]}"
            )
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= body_size
        ):
            raise ValueError(
                f"{where}: data_offsets {str(offsets)[:80]} are not a range "
                f"within the file's {body_size:,} data bytes (is the file "
                "truncated?)."
            )
        needed = int(np.prod(shape, dtype=object)) * itemsize
        if offsets[1] - offsets[0] != needed:
            raise ValueError(
                f"{where}: shape {shape} of {dtype} needs {needed:,} bytes, "
                f"data_offsets give {offsets[1] - offsets[0]:,}."
            )
    return header


def _decode(body, info):
    dtype = info["dtype"]
    begin, end = info["data_offsets"]
    raw = body[begin:end]
    if dtype == "BF16":  # the top half of a float32
        array = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    elif dtype in _DTYPES:
        array = raw.view(np.dtype(_DTYPES[dtype]).newbyteorder("<"))
    else:
        raise ValueError(
            f"unsupported dtype {dtype} (keras_llm reads BF16, "
            f"{', '.join(_DTYPES)})"
        )
    return array.reshape(tuple(info["shape"]))


def _read_torch(path):
    try:
        import torch
    except ImportError:
        # A ValueError: the CLI prints it as one line (cli/options.py).
        raise ValueError(
            f"Reading {path} needs PyTorch: pip install 'keras_llm[torch]' "
            f"(or convert a checkpoint that has {SAFETENSORS_FILE})."
        ) from None
    try:
        # weights_only: tensors and containers only, never arbitrary pickle.
        state_dict = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # torch raises many kinds on a bad file
        first_line = str(error).strip().split("\n")[0]
        raise ValueError(f"Cannot read {path}: {first_line}") from None
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path} does not hold a state dict.")
    tensors = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        tensor = tensor.detach()
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
            tensor = tensor.float()
        tensors[name] = tensor.numpy()
    return tensors
