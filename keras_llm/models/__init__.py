"""Models and the registry that builds them from a config's `model.arch`."""

import dataclasses
import io
import os

import keras_llm.backend  # noqa: F401
from keras_llm import kinds
from keras_llm.models.backbone import Backbone
from keras_llm.models.bert import BertBackbone
from keras_llm.models.bert import BertClassifier
from keras_llm.models.bert import BertMaskedLM
from keras_llm.models.gpt2 import GPT2Backbone
from keras_llm.models.gpt2 import GPT2CausalLM
from keras_llm.models.llama import LlamaBackbone
from keras_llm.models.llama import LlamaCausalLM
from keras_llm.models.t5 import T5Backbone
from keras_llm.models.t5 import T5Seq2SeqLM
from keras_llm.models.tasks import CausalLM
from keras_llm.models.tasks import Classifier
from keras_llm.models.tasks import MaskedLM
from keras_llm.models.tasks import Seq2SeqLM
from keras_llm.models.tasks import Task
from keras_llm.models.transformer import TransformerBackbone
from keras_llm.models.transformer import TransformerSeq2SeqLM

# arch → (backbone class, task class). One line per architecture.
ARCHITECTURES = {
    "t5": (T5Backbone, T5Seq2SeqLM),
    "gpt2": (GPT2Backbone, GPT2CausalLM),
    "bert": (BertBackbone, BertMaskedLM),
    "transformer": (TransformerBackbone, TransformerSeq2SeqLM),
    "llama": (LlamaBackbone, LlamaCausalLM),
}
# arch → {kind: task class} of the kinds an arch trains as besides its own
# (its config's `other_kinds`), picked by the objective.
OTHER_TASKS = {
    "bert": {kinds.CLASSIFIER: BertClassifier},
}


def task_class(model_config, kind=None):
    """The task model class of a model config (e.g. `T5Seq2SeqLM`); its
    `kind` and `input_format` are known without building it.

    Args:
        model_config: a model dataclass from `keras_llm.config`.
        kind: the kind to train as (`keras_llm.config.kind_of(cfg)`, from
            the objective); `None`: the arch's own (`model_config.kind`).
    """
    from keras_llm import config as config_lib

    arch = config_lib.arch_of(model_config)
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"No model is registered for arch {arch!r}. "
            f"Registered: {sorted(ARCHITECTURES)}"
        )
    if kind is None or kind == model_config.kind:
        return ARCHITECTURES[arch][1]
    task_cls = OTHER_TASKS.get(arch, {}).get(kind)
    if task_cls is None:
        raise ValueError(
            f"Arch {arch!r} has no {kind} task model; it trains as "
            f"{[model_config.kind, *OTHER_TASKS.get(arch, {})]}."
        )
    return task_cls


def build_model(model_config, dtype=None, *, kind=None, **task_kwargs):
    """Builds the task model of a model config (e.g. `config.T5Config`).

    Args:
        model_config: a model dataclass from `keras_llm.config`.
        dtype: optional dtype policy name, e.g. `"mixed_bfloat16"`.
        kind: the kind to build (see `task_class`); `None`: the arch's.
        **task_kwargs: the task's own arguments (a classifier's
            `num_labels`).

    Returns:
        The task model (`keras.Model`); its backbone is `model.backbone`.
    """
    from keras_llm import config as config_lib

    task_cls = task_class(model_config, kind)
    arch = config_lib.arch_of(model_config)
    backbone_cls = ARCHITECTURES[arch][0]
    backbone = backbone_cls(
        **dataclasses.asdict(model_config), dtype=dtype, name=f"{arch}_backbone"
    )
    return task_cls(backbone, name=task_cls.__name__.lower(), **task_kwargs)


def _model_config(config):
    from keras_llm import config as config_lib

    if isinstance(config, (str, os.PathLike)):
        config = config_lib.load_config(config)
    if isinstance(config, config_lib.ExperimentConfig):
        return config.model
    return config


def _task_of(config, num_labels=None):
    """`(model_config, kind, task_kwargs)` of a config: an experiment's
    objective picks the kind (a classifier gets `num_labels`, default 2:
    training reads the count from the data)."""
    from keras_llm import config as config_lib

    if isinstance(config, (str, os.PathLike)):
        config = config_lib.load_config(config)
    if not isinstance(config, config_lib.ExperimentConfig):
        return config, None, {}
    kind = config_lib.kind_of(config)
    kwargs = {}
    if kind == kinds.CLASSIFIER:
        kwargs["num_labels"] = num_labels or 2
    return config.model, kind, kwargs


def build(config, dtype=None, num_labels=None):
    """Builds a task model (random weights) from a zoo name, a YAML path,
    an `ExperimentConfig` or a model config.

    An experiment's objective picks the task (BERT with objective
    classification: a `BertClassifier` of `num_labels`, default 2); a
    model config alone builds the arch's own task.

    Example:
    ```python
    model = keras_llm.build("t5_small")   # or "zoo/t5_small.yaml"
    model.backbone.count_params()
    ```
    """
    model_config, kind, kwargs = _task_of(config, num_labels)
    return build_model(model_config, dtype=dtype, kind=kind, **kwargs)


def count_parameters(model_config):
    """Number of parameters of the task model described by `model_config`
    (a classifier's counted with two labels)."""
    return build(model_config).count_params()


def summarize(model_config):
    """Keras summary of the backbone described by `model_config`, as text."""
    model = build_model(_model_config(model_config))
    lines = io.StringIO()
    model.backbone.summary(
        print_fn=lambda line, **_: lines.write(line + "\n"), line_length=100
    )
    lines.write(
        f"Task model: {type(model).__name__}, "
        f"{model.count_params():,} parameters\n"
    )
    return lines.getvalue()


__all__ = [
    "ARCHITECTURES",
    "Backbone",
    "Task",
    "Seq2SeqLM",
    "CausalLM",
    "MaskedLM",
    "Classifier",
    "BertBackbone",
    "BertClassifier",
    "BertMaskedLM",
    "GPT2Backbone",
    "GPT2CausalLM",
    "LlamaBackbone",
    "LlamaCausalLM",
    "T5Backbone",
    "T5Seq2SeqLM",
    "TransformerBackbone",
    "TransformerSeq2SeqLM",
    "build",
    "build_model",
    "count_parameters",
    "summarize",
    "task_class",
]
