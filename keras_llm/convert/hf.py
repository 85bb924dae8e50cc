"""A Hugging Face checkpoint folder → a keras_llm run directory.

```
SRC/config.json            → RUN_DIR/config.yaml   (model mapped, fine-tuning
                                                    defaults for data/train)
SRC/tokenizer.json | spiece.model | vocab.txt | vocab.json + merges.txt
                           → RUN_DIR/tokenizer/
SRC/model.safetensors | pytorch_model.bin (or shards)
                           → RUN_DIR/checkpoints/  (model only, step 0)
```
T5 v1.0 and v1.1 (`model_type` t5), GPT-2, BERT (with or without its
masked-LM head), Llama, and Marian (as the original Transformer; see
`keras_llm/convert/marian.py`). Everything is read and checked first, then
written into a temporary folder beside RUN_DIR that is renamed into place,
so a failed conversion leaves nothing behind.
"""

import json
import logging
import os

from keras_llm import config as config_lib
from keras_llm import rundir
from keras_llm.convert import checkpoint
from keras_llm.convert import hf_archs
from keras_llm.convert.files import check_target as _check_target
from keras_llm.convert.files import prepend_comments as _prepend_comments
from keras_llm.convert.files import write_atomically as _write_atomically
from keras_llm.models import build_model

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


def convert_hf(src_dir: str, out_dir: str, *, overwrite: bool = False) -> str:
    """Converts a Hugging Face checkpoint folder into a run directory.

    Afterwards `keras_llm.load(out_dir)` gives the task model with the
    checkpoint's weights, `load_tokenizer(out_dir + "/tokenizer")` its
    tokenizer, and `kllm train out_dir/config.yaml` fine-tunes it.

    Args:
        src_dir: a folder written by `save_pretrained` (plus the tokenizer
            files): `config.json`, weights, tokenizer.
        out_dir: the run directory to create.
        overwrite: replace `out_dir` if it exists (the old one is deleted
            only once the new one is in place).

    Returns:
        `out_dir`.

    Raises:
        FileExistsError: `out_dir` exists and `overwrite` is False.
        FileNotFoundError: `src_dir`, its `config.json`, its weights or a
            tokenizer file is missing (the message names it).
        ValueError: an unsupported architecture or setting, or weights that
            do not fit the config (every mismatched weight is listed).
    """
    src_dir, out_dir = os.fspath(src_dir), os.fspath(out_dir)
    _check_target(out_dir, overwrite)
    if not os.path.isdir(src_dir):
        raise FileNotFoundError(f"Checkpoint folder not found: {src_dir}")
    if os.path.realpath(src_dir) == os.path.realpath(out_dir):
        raise ValueError(f"--out must differ from the checkpoint: {src_dir}")
    config_path = os.path.join(src_dir, CONFIG_FILE)
    hf_config = _read_json(config_path, required=True)
    model_type = hf_config.get("model_type")
    arch = hf_archs.ARCHS.get(model_type)
    if arch is None:
        raise ValueError(
            f"{config_path}: unsupported model_type {model_type!r}. kllm "
            f"convert hf supports {', '.join(hf_archs.ARCHS)} (T5 v1.0 and "
            "v1.1, GPT-2, BERT, Llama, and Marian as the original "
            "Transformer)."
        )
    try:
        model_config = arch.model_config(hf_config)
    except ValueError as error:  # ConfigError too: one line per problem
        problems = "; ".join(str(error).splitlines())
        raise ValueError(f"{config_path}: {problems}") from None
    checkpoint.weight_files(src_dir)  # missing weights: fail before the rest
    tokenizer_config = _read_json(
        os.path.join(src_dir, hf_archs.TOKENIZER_CONFIG_FILE)
    )
    tokenizer = arch.tokenizer(src_dir, tokenizer_config)
    if tokenizer.vocabulary_size > model_config.vocabulary_size:
        raise ValueError(
            f"The tokenizer in {src_dir} emits {tokenizer.vocabulary_size} "
            f"ids, more than the model's vocab_size "
            f"{model_config.vocabulary_size} in {config_path}."
        )

    model = build_model(model_config)
    state_dict = checkpoint.read_state_dict(src_dir)
    try:
        notes = arch.weights(model, state_dict, hf_config)
    except ValueError as error:
        raise ValueError(
            f"The weights in {src_dir} do not fit {config_path}: {error}"
        ) from None
    for note in notes:
        logger.warning(note)
    cfg = config_lib.ExperimentConfig(
        model=model_config,
        data=arch.data(model_config, tokenizer),
        train=hf_archs.fine_tuning(model_type),
    )
    architectures = ", ".join(hf_config.get("architectures") or [model_type])
    header = [
        f"Converted by `kllm convert hf` from {os.path.abspath(src_dir)} "
        f"({architectures}).",
        *notes,
        "data and train hold fine-tuning defaults: edit them, then run "
        f"`kllm train {os.path.join(out_dir, rundir.CONFIG_FILE)}`.",
    ]

    def write(run_dir):
        rundir.write_config(cfg, run_dir)
        _prepend_comments(rundir.config_path(run_dir), header)
        tokenizer.save(os.path.join(run_dir, rundir.TOKENIZER_DIR))
        rundir.save_model(model, run_dir)

    _write_atomically(out_dir, overwrite, write)
    logger.info("Converted %s into %s.", src_dir, out_dir)
    return out_dir


# --- Files -------------------------------------------------------------------


def _read_json(path, required=False):
    if not os.path.isfile(path):
        if required:
            raise FileNotFoundError(
                f"{path} is missing: not a Hugging Face checkpoint folder."
            )
        return {}
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object.")
    return value
