"""Training: `keras_llm.train(cfg, run_dir)` — strategy, precision, the
custom loop, evaluation, checkpoints that resume exactly.

```
prepare.py   run dir checks, data, tokenizer, datasets (nothing trained yet)
state.py     model + optimizer under the strategy, checkpoint, restore
steps.py     the per-replica XLA step, the all-reduce and update; eval step
validation.py  the validation: loss, and train.eval_metrics of decoded pairs
best.py      checkpoints/best/ (train.best_metric) and early stopping
logs.py      metrics.jsonl, TensorBoard, the progress bar
loop.py      train(): prepare → restore → loop
```
"""

from keras_llm.training.loop import OutOfMemoryError
from keras_llm.training.loop import TrainResult
from keras_llm.training.loop import train

__all__ = ["OutOfMemoryError", "TrainResult", "train"]
