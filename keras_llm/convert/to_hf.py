"""A keras_llm run directory → a Hugging Face checkpoint folder.

```
RUN_DIR/config.yaml + checkpoints/ → OUT/config.json, OUT/model.safetensors
RUN_DIR/tokenizer/                  → OUT/tokenizer.json, tokenizer_config.json
                                      and the legacy vocabulary files
```
`AutoModelFor….from_pretrained(OUT)` and `AutoTokenizer.from_pretrained(OUT)`
open the result with no missing or unexpected weights. Each architecture's
converter module (`keras_llm/convert/<arch>.py`) says how: `HF_ARCHITECTURE`,
`hf_config(model_config, tokenizer)`, `hf_weight_pairs(model)` and
optionally `hf_notes(model_config)` (warnings) — the
same `(variable, name, Layout)` pairs `kllm convert hf` reads with, run
backwards (`weights.read_weights`). Everything is written into a temporary
folder beside OUT that is renamed into place.
"""

import importlib
import json
import logging
import os

import numpy as np

from keras_llm import config as config_lib
from keras_llm.convert import files
from keras_llm.convert import weights

logger = logging.getLogger(__name__)

# arch → its converter module and Hugging Face's model_type.
_ARCHS = {
    "t5": ("keras_llm.convert.t5", "t5"),
    "gpt2": ("keras_llm.convert.gpt2", "gpt2"),
    "bert": ("keras_llm.convert.bert", "bert"),
    "transformer": ("keras_llm.convert.marian", "marian"),
    "llama": ("keras_llm.convert.llama", "llama"),
}
WEIGHTS_FILE = "model.safetensors"


def supported_archs() -> list[str]:
    """The archs `export_hf` writes."""
    return list(_ARCHS)


def export_hf(run_dir: str, out_dir: str, *, overwrite: bool = False) -> str:
    """Writes the model of a run directory as a Hugging Face checkpoint.

    Args:
        run_dir: a run directory (trained here or converted).
        out_dir: the folder to create.
        overwrite: replace `out_dir` if it exists (the old one is deleted
            only once the new one is in place).

    Returns:
        `out_dir`.

    Raises:
        FileExistsError: `out_dir` exists and `overwrite` is False.
        FileNotFoundError: no run dir, config or checkpoint.
        ValueError: an architecture Hugging Face has no class for, or a
            damaged run dir.
    """
    import keras_llm  # TensorFlow

    run_dir, out_dir = os.fspath(run_dir), os.fspath(out_dir)
    files.check_target(out_dir, overwrite)
    model_config = _model_config(run_dir)
    from keras_llm import rundir

    cfg = rundir.read_config(run_dir)
    if config_lib.kind_of(cfg) != model_config.kind:
        raise ValueError(
            f"{rundir.config_path(run_dir)}: a {config_lib.kind_of(cfg)} run "
            f"(data.objective: {cfg.data.objective}) is not converted to "
            "Hugging Face yet; kllm convert to-hf writes the arch's "
            f"{model_config.kind} model."
        )
    arch = config_lib.arch_of(model_config)
    if arch not in _ARCHS:
        raise ValueError(
            f"{run_dir}: kllm convert to-hf writes {', '.join(_ARCHS)} "
            f"models; arch {arch!r} has no Hugging Face equivalent here."
        )
    module_name, model_type = _ARCHS[arch]
    module = importlib.import_module(module_name)
    model = keras_llm.load(run_dir)
    tokenizer = model.tokenizer
    hf_config = {
        "architectures": [module.HF_ARCHITECTURE],
        "model_type": model_type,
        **module.hf_config(model_config, tokenizer),
        "dtype": "float32",
    }
    tensors = weights.read_weights(module.hf_weight_pairs(model))
    tensors = {
        name: np.ascontiguousarray(value, dtype=np.float32)
        for name, value in tensors.items()
    }
    notes = module.hf_notes(model_config) if hasattr(module, "hf_notes") else []

    def write(folder):
        from safetensors.numpy import save_file

        with open(
            os.path.join(folder, "config.json"), "w", encoding="utf-8"
        ) as file:
            json.dump(hf_config, file, indent=2, sort_keys=True)
            file.write("\n")
        save_file(
            tensors,
            os.path.join(folder, WEIGHTS_FILE),
            metadata={"format": "pt"},
        )
        _write_tokenizer(tokenizer, folder, model_type)

    files.write_atomically(out_dir, overwrite, write)
    for note in notes:
        logger.warning(note)
    logger.info(
        "Wrote %s as a Hugging Face checkpoint in %s.", run_dir, out_dir
    )
    return out_dir


def _model_config(run_dir):
    from keras_llm import rundir

    path = rundir.config_path(run_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing: {run_dir} is not a run directory."
        )
    return rundir.read_config(run_dir).model


def _write_tokenizer(tokenizer, folder, model_type):
    from keras_llm.convert import hf_tokenizer

    hf_tokenizer.write_hf_tokenizer(tokenizer, folder, model_type)
