"""Text generation: greedy, beam search and sampling over a fixed-size KV
cache, in one `tf.while_loop` that XLA compiles whole; BERT fill-mask.

```
keras_llm.generation
  GenerationConfig        decoding parameters (Hugging Face's names)
  generate(model, tokenizer, texts, config) -> list[str]
  generate_ids(model, token_ids, config, eos_id=, pad_id=) -> np.ndarray
  fill_mask(model, tokenizer, texts, top_k) -> list[dict]
  load_generator(run_dir) -> Generator (.generate, .fill_mask)
  decode(model, token_ids, padding_mask, config, eos_id=, pad_id=)
                          the pure-TF loop (export traces it)
  pad_prompts(ragged, pad_id, left, length)   in-graph prompt padding
```
"""

from keras_llm.generation.api import bucket_length
from keras_llm.generation.api import decoding_function
from keras_llm.generation.api import generate
from keras_llm.generation.api import generate_ids
from keras_llm.generation.config import GenerationConfig
from keras_llm.generation.decoders import CAUSAL
from keras_llm.generation.decoders import MASKED
from keras_llm.generation.decoders import SEQ2SEQ
from keras_llm.generation.decoders import model_kind
from keras_llm.generation.decoders import pad_prompts
from keras_llm.generation.fill_mask import fill_mask
from keras_llm.generation.generator import Generator
from keras_llm.generation.generator import load_generator
from keras_llm.generation.search import decode

__all__ = [
    "CAUSAL",
    "MASKED",
    "SEQ2SEQ",
    "GenerationConfig",
    "Generator",
    "bucket_length",
    "decode",
    "decoding_function",
    "fill_mask",
    "generate",
    "generate_ids",
    "load_generator",
    "model_kind",
    "pad_prompts",
]
