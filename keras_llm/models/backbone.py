"""Plumbing shared by backbones (functional models wrapped in a subclass)."""

import inspect

import keras
from keras import ops


class Backbone(keras.Model):
    """Base of every backbone: a functional model built in `__init__`.

    Subclasses create their layers, wire a functional graph over dict inputs,
    call `super().__init__(inputs=..., outputs=..., ...)`, then store their
    constructor arguments as same-name attributes. `get_config` reads the
    argument names from the `__init__` signature, so it cannot drift.
    """

    @classmethod
    def config_keys(cls):
        """The constructor's model arguments (not `dtype` / `**kwargs`)."""
        parameters = inspect.signature(cls.__init__).parameters
        return [
            name
            for name, parameter in parameters.items()
            if name not in ("self", "dtype")
            and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
        ]

    def __init__(self, *args, dtype=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Functional models ignore `dtype`; the sublayers already got it.
        # Record it so `get_config` and `compute_dtype` tell the truth.
        if dtype is not None:
            self.dtype_policy = keras.dtype_policies.get(dtype)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config["dtype"] = keras.dtype_policies.serialize(self.dtype_policy)
        config.update({key: getattr(self, key) for key in self.config_keys()})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


SEQ2SEQ_INPUTS = (
    "encoder_token_ids",
    "encoder_padding_mask",
    "decoder_token_ids",
    "decoder_padding_mask",
)


class Seq2SeqBackbone(Backbone):
    """An encoder-decoder backbone: subclasses define `_encode(token_ids,
    padding_mask, training)` and `_decode(token_ids, padding_mask,
    encoder_output, encoder_padding_mask, training)`, create their layers,
    then call `_init_seq2seq_graph`."""

    def _init_seq2seq_graph(self, dtype=None, **kwargs):
        inputs = {
            name: keras.Input((None,), dtype="int32", name=name)
            for name in SEQ2SEQ_INPUTS
        }
        encoder_output = self._encode(
            inputs["encoder_token_ids"], inputs["encoder_padding_mask"]
        )
        decoder_output = self._decode(
            inputs["decoder_token_ids"],
            inputs["decoder_padding_mask"],
            encoder_output,
            inputs["encoder_padding_mask"],
        )
        super().__init__(
            inputs=inputs,
            outputs={
                "encoder_sequence_output": encoder_output,
                "decoder_sequence_output": decoder_output,
            },
            dtype=dtype,
            **kwargs,
        )


class Task(keras.Model):
    """Base of task models (`*Seq2SeqLM`, `*CausalLM`, ...): wraps a
    backbone."""

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"]
        )
        return cls(**config)


class Seq2SeqTask(Task):
    """Encoder-decoder task plumbing shared by T5 and the Transformer.

    The backbone provides `_encode(token_ids, padding_mask, training)`,
    `decoder_blocks`, `num_layers`, `num_heads` and `head_dim`.
    """

    def encode(self, encoder_token_ids, encoder_padding_mask, training=False):
        """Encoder hidden states `(B, S, D)`."""
        return self.backbone._encode(
            encoder_token_ids, encoder_padding_mask, training=training
        )

    def build_cache(self, encoder_token_ids, encoder_padding_mask, max_length):
        """Runs the encoder and allocates the decoder caches.

        Returns:
            `(encoder_output, self_attention_cache, cross_attention_cache)`:
            `(B, S, D)`, zeros `(B, num_layers, 2, max_length, H, K)` and the
            precomputed cross-attention keys/values
            `(B, num_layers, 2, S, H, K)`.
        """
        backbone = self.backbone
        encoder_output = self.encode(encoder_token_ids, encoder_padding_mask)
        batch_size = ops.shape(encoder_token_ids)[0]
        self_attention_cache = ops.zeros(
            (
                batch_size,
                backbone.num_layers,
                2,
                max_length,
                backbone.num_heads,
                backbone.head_dim,
            ),
            dtype=backbone.compute_dtype,
        )
        cross_attention_cache = ops.stack(
            [
                block.cross_attention.compute_key_value(encoder_output)
                for block in backbone.decoder_blocks
            ],
            axis=1,
        )  # (B, num_layers, 2, S, H, K)
        return encoder_output, self_attention_cache, cross_attention_cache
