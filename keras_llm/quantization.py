"""Weight-only int8 for inference: `quantize(model, "int8")`.

Every dense kernel (`keras.layers.Dense`, or an `EinsumDense` that is one)
and every `TokenEmbedding` table (the tied output projection included)
becomes int8 with a float32 scale per output channel; norms, biases,
position tables and activations stay as they were. Applied after loading
(`keras_llm.load(run_dir, quantize="int8")`, `kllm generate|evaluate|export
--quantize int8`), in place; a quantized model refuses to train.

What it buys on this project's CPUs is memory, about a quarter of the
float32 weights; its speed and agreement with float32 are measured in
docs/performance.md ("int8 weights").
"""

from keras_llm.layers import int8
from keras_llm.layers.embedding import TokenEmbedding

MODES = ("int8",)


def check_mode(mode):
    """Raises `ValueError` unless `mode` is `None` or one of `MODES`."""
    if mode is not None and mode not in MODES:
        raise ValueError(
            f"`quantize` must be one of {', '.join(MODES)} (or None for "
            f"float weights). Received: quantize={mode!r}"
        )


def quantization_mode(model):
    """`"int8"` if `quantize` was applied to `model`, else `None`."""
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, int8.INT8_LAYERS) or getattr(layer, "int8", False):
            return "int8"
    return None


def quantize(model, mode="int8"):
    """Quantizes a built model's weights in place.

    Quantize before generating: decode functions traced before keep the
    float weights.

    Args:
        model: a built Keras model (a task model from `keras_llm.load`).
        mode: `"int8"`, or `None` (the model is returned unchanged).

    Returns:
        `model`.

    Raises:
        ValueError: an unknown `mode`, or `model` is quantized already.
    """
    check_mode(mode)
    if mode is None:
        return model
    if quantization_mode(model):
        raise ValueError(f"{model.name} is quantized already.")
    for layer in model._flatten_layers(include_self=False):
        if int8.is_projection(layer):
            int8.quantize_dense(layer)
        elif isinstance(layer, TokenEmbedding):
            layer.quantize(mode)
    # Functions traced before hold the float variables: trace anew, as
    # Keras's own `Model.quantize` does.
    model.train_function = model.test_function = None
    model.predict_function = None
    return model
