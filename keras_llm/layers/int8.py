"""Weight-only int8: int8 kernels with a float32 scale per output channel.

`y = (x @ int8_kernel^T) * scale`: activations stay in the compute dtype
(no int8 x int8 product), and the dequantization is a multiply by one scale
per output after the product, not a dequantized copy of the kernel. Kernels
are stored `(N, D)` (output channel first), the layout XLA on CPU turns,
for one row of `x`, into a loop that converts each int8 row as it reads it
(docs/performance.md, "int8 weights").

`keras_llm.quantization.quantize(model, "int8")` applies this to a loaded
model: `quantize_dense` to every dense layer (`keras.layers.Dense`, or an
`EinsumDense` that is one), and `TokenEmbedding.quantize` to the token
tables. For inference only.
"""

import math
import re

import keras
import numpy as np
import tensorflow as tf
from tensorflow.compiler.tf2xla.ops import gen_xla_ops
from tensorflow.python.ops import control_flow_util

INT8_MAX = 127
# Under XLA on CPU, up to this many rows are multiplied one row at a time:
# a one-row product reads the int8 kernel once (converted in registers),
# while a product of several rows converts a float copy of the kernel
# first (measured on the 2-core Zen 4: one-row products win up to 8 rows).
ROW_LIMIT = 8
# Without XLA, every Cast writes a float copy of what it converts: the
# kernel is converted in slices of this many int8 bytes, whose copies stay
# in the cache (the 512 x 32128 output layer: 3x faster than in one piece).
SLICE_BYTES = 1 << 20


def quantize_kernel(values, axis):
    """Symmetric int8 values and float32 scales of `values`, one scale per
    slice along every axis but `axis` (the reduced, input axis).

    Args:
        values: float array.
        axis: int. The axis each scale covers (a kernel's input axis).

    Returns:
        `(int8 array, float32 scale)`, the scale with `axis` removed;
        `values ~= int8 * expand_dims(scale, axis)`, off by at most
        `scale / 2` per element.
    """
    values = np.asarray(values, np.float32)
    peak = np.max(np.abs(values), axis=axis, keepdims=True)
    scale = np.where(peak > 0, peak / INT8_MAX, 1.0).astype(np.float32)
    quantized = np.clip(np.round(values / scale), -INT8_MAX, INT8_MAX)
    return quantized.astype(np.int8), np.squeeze(scale, axis)


def _in_xla():
    """Whether the graph being traced is compiled with XLA (a
    `tf.function(jit_compile=True)`, TensorFlow's own test)."""
    return control_flow_util.GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph()
    )


def int8_matmul(inputs, kernel, scale):
    """`inputs @ (kernel * scale[:, None])^T` without a float kernel.

    Args:
        inputs: float tensor `(..., D)`.
        kernel: int8 tensor `(N, D)`.
        scale: float32 tensor `(N,)`.

    Returns:
        Tensor `(..., N)` in the dtype of `inputs`.
    """
    dtype = inputs.dtype
    units, depth = kernel.shape
    flat = tf.reshape(inputs, [-1, depth])  # (R, D)
    rows = inputs.shape[:-1]
    rows = math.prod(rows) if rows.is_fully_defined() else None
    if _in_xla():
        # XLA hoists whatever does not change inside a loop out of it: a
        # decode loop would convert every kernel to float once, before the
        # loop, and hold the float copies for the whole call. Tying the
        # kernel to the loop's activations keeps the conversion inside.
        kernel, flat = gen_xla_ops.xla_optimization_barrier([kernel, flat])
        products = (
            [flat[i : i + 1] for i in range(rows)]
            if rows is not None and rows <= ROW_LIMIT and _on_cpu()
            else [flat]
        )
        outputs = [
            tf.matmul(part, tf.cast(kernel, dtype), transpose_b=True)
            for part in products
        ]
        outputs = tf.concat(outputs, axis=0) if len(outputs) > 1 else outputs[0]
    else:
        step = max(1, SLICE_BYTES // depth)
        # After the activations: in a `tf.while_loop` the conversions do not
        # depend on the step, and TensorFlow would run those of the next
        # iterations ahead (`parallel_iterations`), their float copies alive
        # at once.
        with tf.control_dependencies([flat]):
            outputs = [
                tf.matmul(
                    flat, tf.cast(kernel[i : i + step], dtype), transpose_b=True
                )
                for i in range(0, units, step)
            ]
        outputs = tf.concat(outputs, axis=1) if len(outputs) > 1 else outputs[0]
    outputs = outputs * tf.cast(scale, dtype)  # (R, N)
    return tf.reshape(outputs, tf.concat([tf.shape(inputs)[:-1], [units]], 0))


def _on_cpu():
    return not tf.config.list_logical_devices("GPU")


class _Int8Projection:
    """The int8 `call` of `Int8Dense` and `Int8EinsumDense`."""

    @property
    def kernel(self):
        raise AttributeError(
            f"{self.name} holds int8 weights (`quantized_kernel`, "
            "`kernel_scale`), not a float `kernel`."
        )

    def call(self, inputs, training=None):
        if training:
            raise ValueError(
                f"{self.name} holds int8 weights, which are for inference "
                "only: train the float32 model (load it without `quantize`)."
            )
        x = int8_matmul(inputs, self.quantized_kernel, self.kernel_scale)
        if self.bias is not None:
            x = x + tf.cast(self.bias, x.dtype)
        if self.activation is not None:
            x = self.activation(x)
        return x


class Int8Dense(_Int8Projection, keras.layers.Dense):
    """A `keras.layers.Dense` whose kernel is int8 `(N, D)` with a float32
    scale per output: made in place from a built `Dense` by
    `quantize_dense`, for inference (a training call raises).

    Weights: `quantized_kernel` int8 `(units, input_dim)`, `kernel_scale`
    float32 `(units,)`, and the `Dense`'s `bias`. There is no float
    `kernel`.
    """


class Int8EinsumDense(_Int8Projection, keras.layers.EinsumDense):
    """`Int8Dense` for a `keras.layers.EinsumDense` that is a dense layer
    (`"...d,de->...e"`: a 2-D kernel, the last axis projected)."""


INT8_LAYERS = (Int8Dense, Int8EinsumDense)


def is_projection(layer):
    """Whether `quantize_dense` takes `layer`: a `keras.layers.Dense`, or
    an `EinsumDense` of the form `"...d,de->...e"`, without LoRA."""
    if type(layer) is keras.layers.Dense:
        return True
    if type(layer) is not keras.layers.EinsumDense:
        return False
    inputs, kernel, outputs = re.split(r",|->", layer.equation)
    bias = getattr(layer, "bias_axes", None)
    return (
        len(kernel) == 2
        and inputs[-1] == kernel[0]
        and outputs[-1] == kernel[1]
        and inputs[:-1] == outputs[:-1]
        and kernel[0] not in outputs
        and bias in (None, kernel[1])
    )


def quantize_dense(layer):
    """Turns a built dense layer (`is_projection`) into an `Int8Dense` or
    `Int8EinsumDense`, in place.

    In place, as Keras's own `Dense.quantize` does, so a layer called
    anywhere (inside a layer's `call` or as a node of a functional
    backbone) switches without rebuilding the model.
    """
    if not is_projection(layer):
        raise ValueError(
            "`quantize_dense` takes a `keras.layers.Dense` or an "
            "`EinsumDense` of the form '...d,de->...e'. Received: "
            f"{type(layer).__name__} {layer.name!r}"
        )
    if layer.lora_enabled:
        raise ValueError(
            f"{layer.name} has LoRA weights: merge them before quantizing."
        )
    values, scale = quantize_kernel(np.transpose(layer.kernel.numpy()), 1)
    int8_class = (
        Int8Dense if type(layer) is keras.layers.Dense else Int8EinsumDense
    )
    layer._tracker.unlock()  # state replaced after build, as Keras does
    try:
        del layer._kernel
        layer.__class__ = int8_class
        layer.quantized_kernel, layer.kernel_scale = add_int8_weights(
            layer, "kernel", values, scale
        )
    finally:
        layer._tracker.lock()
    return layer


def add_int8_weights(layer, name, values, scale):
    """Adds the int8 `values` as weight `name` and their float32 `scale`
    as `name_scale` to `layer` (its tracker unlocked), both frozen;
    returns the two variables."""
    quantized = layer.add_weight(
        name=name,
        shape=values.shape,
        initializer="zeros",
        dtype="int8",
        trainable=False,
    )
    quantized.assign(values)
    scales = layer.add_weight(
        name=f"{name}_scale",
        shape=scale.shape,
        initializer="ones",
        dtype="float32",
        trainable=False,
    )
    scales.assign(scale)
    return quantized, scales
