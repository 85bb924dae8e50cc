"""Token embedding with an optional tied output projection."""

import keras
from keras import ops

from keras_llm.layers import int8
from keras_llm.layers.utils import clone_initializer


@keras.saving.register_keras_serializable(package="keras_llm")
class TokenEmbedding(keras.layers.Layer):
    """Token embedding whose `reverse` call projects back onto the vocabulary.

    With `tie_weights=True` the output projection is the transposed input
    table (T5 v1.0, GPT-2, BERT); otherwise it is a separate `(D, V)` matrix
    (T5 v1.1's `lm_head`).

    Args:
        vocabulary_size: int. `V`.
        hidden_dim: int. `D`.
        tie_weights: bool. Share the input and output matrices. Defaults to
            `True`.
        embeddings_initializer: initializer. Defaults to `"uniform"`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: int tensor `(B, T)`, or float `(B, T, D)` with `reverse=True`.
        reverse: bool. Project hidden states to logits `(B, T, V)`.

    Example:
    ```python
    layer = keras_llm.layers.TokenEmbedding(vocabulary_size=100, hidden_dim=16)
    hidden = layer(np.zeros((2, 8), "int32"))  # (2, 8, 16)
    logits = layer(hidden, reverse=True)  # (2, 8, 100)
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim,
        tie_weights=True,
        embeddings_initializer="uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("vocabulary_size", vocabulary_size),
            ("hidden_dim", hidden_dim),
        ):
            if value <= 0:
                raise ValueError(
                    f"`{name}` must be positive. Received: {name}={value}"
                )
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.tie_weights = tie_weights
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
        )
        self.int8 = False  # `quantize("int8")` makes the tables int8

    def build(self, inputs_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.vocabulary_size, self.hidden_dim),
            initializer=clone_initializer(self.embeddings_initializer),
        )
        if not self.tie_weights:
            self.reverse_embeddings = self.add_weight(
                name="reverse_embeddings",
                shape=(self.hidden_dim, self.vocabulary_size),
                initializer=clone_initializer(self.embeddings_initializer),
            )
        self.built = True

    def call(self, inputs, reverse=False):
        if self.int8:
            return self._int8_call(inputs, reverse)
        if reverse:
            if self.tie_weights:
                kernel = ops.transpose(ops.convert_to_tensor(self.embeddings))
            else:
                kernel = ops.convert_to_tensor(self.reverse_embeddings)
            return ops.matmul(inputs, ops.cast(kernel, inputs.dtype))
        return ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0)

    def untie_weights(self):
        """Gives a tied layer its own output table: `reverse_embeddings`
        `(D, V)`, a copy of the transposed input table. The outputs stay
        the same; the two tables no longer share their values. Does nothing
        to an untied layer.

        What the export does before tracing its decode loop: TensorFlow
        without XLA multiplies a few rows by the transposed `(V, D)` table
        about twice as slowly as by a `(D, V)` one on CPU (where XLA lays
        the product out itself), at the price of a second table in memory.
        """
        if not self.tie_weights or self.int8:
            return  # int8 tables have their own layout (`int8_matmul`)
        self._tracker.unlock()  # state added after build, as Keras' LoRA does
        try:
            self.reverse_embeddings = self.add_weight(
                name="reverse_embeddings",
                shape=(self.hidden_dim, self.vocabulary_size),
                initializer="zeros",
                dtype=self.embeddings.dtype,
            )
        finally:
            self._tracker.lock()
        self.reverse_embeddings.assign(ops.transpose(self.embeddings))
        self.tie_weights = False

    def quantize(self, mode, type_check=True, config=None):
        """Makes the tables int8, in place, for inference (Keras's
        `Layer.quantize` signature; `mode` must be `"int8"`).

        The input table becomes `quantized_embeddings` int8 `(V, D)` with
        `embeddings_scale` `(V,)`, one scale per token: a looked-up row is
        dequantized with its own scale, and the tied output projection has
        one scale per output. An untied output table `(D, V)` becomes
        `quantized_reverse_embeddings` int8 `(V, D)` with
        `reverse_embeddings_scale` `(V,)`. The float tables are dropped.
        """
        if mode != "int8":
            raise ValueError(f"`mode` must be 'int8'. Received: mode={mode!r}")
        if self.int8:
            return
        tables = {"embeddings": int8.quantize_kernel(self.embeddings, 1)}
        if not self.tie_weights:
            tables["reverse_embeddings"] = int8.quantize_kernel(
                ops.transpose(self.reverse_embeddings), 1
            )
        self._tracker.unlock()  # state replaced after build, as Keras does
        try:
            for name, (values, scale) in tables.items():
                delattr(self, name)
                quantized, scales = int8.add_int8_weights(
                    self, name, values, scale
                )
                setattr(self, f"quantized_{name}", quantized)
                setattr(self, f"{name}_scale", scales)
        finally:
            self._tracker.lock()
        self.int8 = True

    def _int8_call(self, inputs, reverse):
        if reverse:
            name = "embeddings" if self.tie_weights else "reverse_embeddings"
            return int8.int8_matmul(
                inputs,
                getattr(self, f"quantized_{name}"),
                getattr(self, f"{name}_scale"),
            )
        ids = ops.cast(inputs, "int32")
        rows = ops.take(self.quantized_embeddings, ids, axis=0)  # (B, T, D)
        scale = ops.take(self.embeddings_scale, ids, axis=0)  # (B, T)
        return ops.cast(rows, self.compute_dtype) * ops.cast(
            ops.expand_dims(scale, -1), self.compute_dtype
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "tie_weights": self.tie_weights,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
