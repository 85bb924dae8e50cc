"""Typed, validated experiment configuration: dataclasses and the YAML loader.

One YAML file describes an experiment: `model` (whose `arch` picks the
dataclass), `data`, `train` and `runtime`. Values resolve as dataclass
defaults <- YAML <- `--set section.key=value`. Every problem is reported in
one `ConfigError`, one per line, shaped
`<file>: <dotted.key>: <problem>. Received: <value> (hint)`.
No TensorFlow or Keras import: validating a config takes milliseconds.

Modules: `errors` (Problem, ConfigError), `schema` (the dataclasses and the
checks across sections), `loader` (YAML in and out), `zoo` (zoo names and
paths), `lengths` (what the objectives need), `parameters` (the zoo's
cached parameter counts) and `reference` (writes docs/config.md from the
schema); the last two are not imported here.
"""

from keras_llm.config import zoo
from keras_llm.config.errors import ConfigError
from keras_llm.config.errors import Problem
from keras_llm.config.lengths import span_corruption_lengths
from keras_llm.config.loader import config_from_dict
from keras_llm.config.loader import dump_config
from keras_llm.config.loader import load_config
from keras_llm.config.loader import parse_override
from keras_llm.config.loader import to_dict
from keras_llm.config.loader import to_yaml
from keras_llm.config.schema import ACTIVATIONS
from keras_llm.config.schema import MODEL_CONFIGS
from keras_llm.config.schema import OBJECTIVES
from keras_llm.config.schema import SECTIONS
from keras_llm.config.schema import BertConfig
from keras_llm.config.schema import DataConfig
from keras_llm.config.schema import ExperimentConfig
from keras_llm.config.schema import GPT2Config
from keras_llm.config.schema import LlamaConfig
from keras_llm.config.schema import ModelConfig
from keras_llm.config.schema import RuntimeConfig
from keras_llm.config.schema import T5Config
from keras_llm.config.schema import TrainConfig
from keras_llm.config.schema import TransformerConfig
from keras_llm.config.schema import arch_of
from keras_llm.config.schema import kind_of
from keras_llm.config.schema import objective_of
from keras_llm.config.schema import objectives_of
from keras_llm.config.zoo import resolve
from keras_llm.config.zoo import zoo_names
from keras_llm.config.zoo import zoo_path

__all__ = [
    "ACTIVATIONS",
    "MODEL_CONFIGS",
    "OBJECTIVES",
    "SECTIONS",
    "BertConfig",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "GPT2Config",
    "LlamaConfig",
    "ModelConfig",
    "Problem",
    "RuntimeConfig",
    "T5Config",
    "TrainConfig",
    "TransformerConfig",
    "arch_of",
    "config_from_dict",
    "dump_config",
    "kind_of",
    "load_config",
    "objective_of",
    "objectives_of",
    "parse_override",
    "resolve",
    "span_corruption_lengths",
    "to_dict",
    "to_yaml",
    "zoo",
    "zoo_names",
    "zoo_path",
]
