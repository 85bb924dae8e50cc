"""Plumbing shared by backbones (functional models wrapped in a subclass)."""

import inspect

import keras


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

    @property
    def cache_heads(self):
        """Key/value heads a decoding cache holds per layer: `num_heads`,
        fewer where query heads share key/value heads (grouped-query
        attention)."""
        return self.num_heads


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
