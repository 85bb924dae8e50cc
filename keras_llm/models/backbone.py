"""Plumbing shared by backbones (functional models wrapped in a subclass)."""

import keras


class Backbone(keras.Model):
    """Base of every backbone: a functional model built in `__init__`.

    Subclasses create their layers, wire a functional graph over dict inputs,
    call `super().__init__(inputs=..., outputs=..., ...)`, then store their
    constructor arguments as attributes and list them in `CONFIG_KEYS`, so
    `get_config` cannot drift from `__init__`.
    """

    CONFIG_KEYS = ()

    def __init__(self, *args, dtype=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Functional models ignore `dtype`; the sublayers already got it.
        # Record it so `get_config` and `compute_dtype` tell the truth.
        if dtype is not None:
            self.dtype_policy = keras.dtype_policies.get(dtype)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config["dtype"] = keras.dtype_policies.serialize(self.dtype_policy)
        config.update({key: getattr(self, key) for key in self.CONFIG_KEYS})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


class Task(keras.Model):
    """Base of task models (`*Seq2SeqLM`, `*CausalLM`, ...): wraps a backbone."""

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
