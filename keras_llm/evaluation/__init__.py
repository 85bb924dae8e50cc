"""Scoring models on test files: metrics and `kllm evaluate`."""

from keras_llm.evaluation.metrics import METRICS
from keras_llm.evaluation.scoring import EvalData
from keras_llm.evaluation.scoring import evaluate
from keras_llm.evaluation.scoring import read_data

__all__ = ["METRICS", "EvalData", "evaluate", "read_data"]
