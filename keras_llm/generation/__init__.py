"""Text generation: greedy, beam search and sampling over a fixed-size KV
cache, in one `tf.while_loop` that XLA compiles whole; fill-mask.

Most users call the task model: `lm.generate(texts, num_beams=5)`,
`lm.fill_mask(texts)`. Underneath:

```
keras_llm.generation
  GenerationConfig        decoding parameters (Hugging Face's names)
  generate(model, input_format, texts, config) -> list[str]
  generate_ids(model, token_ids, config, eos_id=, pad_id=) -> np.ndarray
  fill_mask(model, input_format, texts, top_k) -> list[dict]
  decode(model, token_ids, padding_mask, config, eos_id=, pad_id=)
                          the pure-TF loop (the export traces it)
```
"""

from keras_llm.generation.config import GenerationConfig
from keras_llm.generation.driver import bucket_length
from keras_llm.generation.driver import decoding_function
from keras_llm.generation.driver import generate
from keras_llm.generation.driver import generate_ids
from keras_llm.generation.fill_mask import fill_mask
from keras_llm.generation.search import decode

__all__ = [
    "GenerationConfig",
    "bucket_length",
    "decode",
    "decoding_function",
    "fill_mask",
    "generate",
    "generate_ids",
]
